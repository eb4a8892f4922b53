package fuseoverlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOptions(t *testing.T) {
	cases := []struct {
		name string
		l    Layers
		want string
		err  bool
	}{
		{"upper", Layers{Lower: []string{"/usr"}, Upper: "/u", Work: "/w"}, "lowerdir=/usr,upperdir=/u,workdir=/w,userxattr", false},
		{"stack", Layers{Lower: []string{"/l2", "/l1"}, Upper: "/u", Work: "/w"}, "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr", false},
		{"readonly", Layers{Lower: []string{"/a", "/b"}}, "lowerdir=/a:/b,userxattr", false},
		{"escape", Layers{Lower: []string{`/a,b:c\d`}, Upper: "/u", Work: "/w"}, `lowerdir=/a\,b\:c\\d,upperdir=/u,workdir=/w,userxattr`, false},
		{"no lower", Layers{Upper: "/u", Work: "/w"}, "", true},
		{"upper without work", Layers{Lower: []string{"/a"}, Upper: "/u"}, "", true},
		{"single readonly", Layers{Lower: []string{"/a"}}, "", true},
	}
	for _, c := range cases {
		got, err := c.l.Options()
		if (err != nil) != c.err {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseDriver(t *testing.T) {
	for in, want := range map[string]Driver{"": Auto, "auto": Auto, "kernel": Kernel, "fuse": Fuse} {
		if got, err := ParseDriver(in); err != nil || got != want {
			t.Errorf("ParseDriver(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseDriver("fuse-overlayfs"); err == nil || !strings.Contains(err.Error(), "auto, kernel or fuse") {
		t.Errorf("ParseDriver(fuse-overlayfs): %v, want an error listing the drivers", err)
	}
}

func TestMarker(t *testing.T) {
	dir := t.TempDir()
	if d, err := ReadMarker(dir); err != nil || d != "" {
		t.Fatalf("a new upper: %q, %v; want no driver", d, err)
	}
	// An upper from before the marker: kernel overlayfs made it.
	if err := os.MkdirAll(filepath.Join(dir, "upper", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d, err := ReadMarker(dir); err != nil || d != Kernel {
		t.Fatalf("an unmarked upper with content: %q, %v; want kernel", d, err)
	}
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteMarker(int(f.Fd()), Fuse); err != nil {
		t.Fatal(err)
	}
	if d, err := ReadMarker(dir); err != nil || d != Fuse {
		t.Fatalf("after WriteMarker(fuse): %q, %v", d, err)
	}
	if d, err := CheckMarker(dir, Auto); err != nil || d != Fuse {
		t.Errorf("auto on a fuse upper: %q, %v; want fuse", d, err)
	}
	if d, err := CheckMarker(dir, Fuse); err != nil || d != Fuse {
		t.Errorf("fuse on a fuse upper: %q, %v", d, err)
	}
	_, err = CheckMarker(dir, Kernel)
	for _, want := range []string{"fuse-overlayfs", "--overlay=kernel", "--overlay=fuse", "new --upper"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("kernel on a fuse upper: %v, want %q in the error", err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, MarkerName), []byte("zfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMarker(dir); err == nil {
		t.Error("an unknown driver in the marker was accepted")
	}
}

func TestReadable(t *testing.T) {
	dir := t.TempDir()
	if err := Readable(Layers{Lower: []string{dir}}); err != nil {
		t.Errorf("a readable lower: %v", err)
	}
	if err := Readable(Layers{Lower: []string{dir, filepath.Join(dir, "missing")}}); err == nil {
		t.Error("a missing lower passed")
	}
}
