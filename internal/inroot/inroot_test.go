package inroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// tree builds a root with hostile symlinks and an "outside" directory next
// to it that nothing may reach.
func tree(t *testing.T) (root *os.File, rootDir, outside string) {
	t.Helper()
	base := t.TempDir()
	rootDir = filepath.Join(base, "root")
	outside = filepath.Join(base, "outside")
	for _, d := range []string{rootDir + "/etc", rootDir + "/real", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"abs":      "/",                    // absolute: must mean the root itself
		"up":       "../../../../../../..", // climbs: must stop at the root
		"escape":   outside,                // absolute path of a real outside dir
		"rel":      "real",
		"dangling": "nowhere/deeper",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, rootDir, outside
}

func TestMkdirAllStaysInside(t *testing.T) {
	root, rootDir, outside := tree(t)
	for _, p := range []string{"/abs/a/b", "/up/c", "/../../e", "/rel/f"} {
		h, err := MkdirAll(root, p, 0o755)
		if err != nil {
			t.Errorf("MkdirAll(%q): %v", p, err)
			continue
		}
		h.Close()
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Fatalf("something was created outside the root: %v", ents)
	}
	// "/escape" points (absolutely) at a real directory outside; inside the
	// root that path does not exist: refused, and nothing is created.
	if h, err := MkdirAll(root, "/escape/d", 0o755); err == nil {
		h.Close()
		t.Error("MkdirAll through a symlink to a path missing inside the root succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("something was created outside the root: %v", ents)
	}
	for _, p := range []string{"a/b", "c", "e", "real/f"} {
		if fi, err := os.Stat(filepath.Join(rootDir, p)); err != nil || !fi.IsDir() {
			t.Errorf("%s not created inside the root: %v", p, err)
		}
	}
}

func TestDanglingSymlinkIsAnError(t *testing.T) {
	root, _, _ := tree(t)
	h, err := MkdirAll(root, "/dangling/x", 0o755)
	if err == nil {
		h.Close()
		t.Fatal("MkdirAll through a dangling symlink succeeded")
	}
}

func TestCreateFileInside(t *testing.T) {
	root, rootDir, outside := tree(t)
	if h, err := CreateFile(root, "/escape/file"); err == nil {
		h.Close()
	}
	if _, err := os.Stat(filepath.Join(outside, "file")); err == nil {
		t.Fatal("CreateFile followed a symlink out of the root")
	}
	h, err := CreateFile(root, "/abs/etc/new")
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if fi, err := os.Stat(filepath.Join(rootDir, "etc/new")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("/abs/etc/new not created as <root>/etc/new: %v", err)
	}
	// An existing file is reused, not truncated.
	os.WriteFile(filepath.Join(rootDir, "etc/keep"), []byte("x"), 0o644)
	h, err = CreateFile(root, "/etc/keep")
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if b, _ := os.ReadFile(filepath.Join(rootDir, "etc/keep")); string(b) != "x" {
		t.Error("existing file changed")
	}
}

func TestOpenResolvesInRoot(t *testing.T) {
	root, rootDir, _ := tree(t)
	h, err := Open(root, "/abs/etc")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want, _ := os.Stat(filepath.Join(rootDir, "etc"))
	got, err := os.Stat(ProcPath(h))
	if err != nil || !os.SameFile(want, got) {
		t.Errorf("/abs/etc resolved to something other than <root>/etc")
	}
	if _, err := Open(root, "/proc/self/root"); err == nil {
		t.Error("opened a path through a magic link")
	}
}

func TestCreateFileThroughDanglingSymlink(t *testing.T) {
	root, rootDir, _ := tree(t)
	if err := os.MkdirAll(filepath.Join(rootDir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// As on systemd-resolved hosts, with /run empty inside.
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(rootDir, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	h, err := CreateFile(root, "/etc/resolv.conf")
	if err != nil {
		t.Fatalf("CreateFile through a dangling symlink: %v", err)
	}
	h.Close()
	if _, err := os.Stat(filepath.Join(rootDir, "run/systemd/resolve/stub-resolv.conf")); err != nil {
		t.Errorf("the file was not made where the symlink points, inside the root: %v", err)
	}
}

// TestCreateFileCheckedAsksWhereItMakes: a file made through a symlink is
// made only where the check allows (init allows only the sandbox's own
// file systems): a symlink to a directory it refuses (one shared from the
// host) makes nothing there; one to an allowed place still works.
func TestCreateFileCheckedAsksWhereItMakes(t *testing.T) {
	root, rootDir, _ := tree(t)
	shared := filepath.Join(rootDir, "shared")
	for _, d := range []string{shared, filepath.Join(rootDir, "run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var sharedSt unix.Stat_t
	if err := unix.Stat(shared, &sharedSt); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("shared")
	may := func(dirfd int) error {
		var st unix.Stat_t
		if err := unix.Fstat(dirfd, &st); err != nil {
			return err
		}
		if st.Dev == sharedSt.Dev && st.Ino == sharedSt.Ino {
			return refused
		}
		return nil
	}
	for link, dest := range map[string]string{"etc/hosts": "/shared/hosts", "etc/deep": "/shared/new/deep"} {
		if err := os.Symlink(dest, filepath.Join(rootDir, link)); err != nil {
			t.Fatal(err)
		}
		if h, err := CreateFileChecked(root, "/"+link, may); !errors.Is(err, refused) {
			if h != nil {
				h.Close()
			}
			t.Errorf("CreateFileChecked(/%s -> %s): %v, want the check's refusal", link, dest, err)
		}
	}
	if ents, _ := os.ReadDir(shared); len(ents) != 0 {
		t.Errorf("made in the refused directory: %v", ents)
	}
	if err := os.Symlink("/run/resolv.conf", filepath.Join(rootDir, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	h, err := CreateFileChecked(root, "/etc/resolv.conf", may)
	if err != nil {
		t.Fatalf("CreateFileChecked into an allowed directory: %v", err)
	}
	h.Close()
	if _, err := os.Stat(filepath.Join(rootDir, "run/resolv.conf")); err != nil {
		t.Errorf("not made where the symlink points: %v", err)
	}
}
