package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultEphemeralSize(t *testing.T) {
	const M, G = 1 << 20, 1 << 30
	for _, c := range []struct{ ram, mem, want int64 }{
		{16 * G, 0, 4 * G},           // a quarter of RAM
		{256 * G, 0, 8 * G},          // at most 8G
		{16 * G, 64 * M, 32 * M},     // at most half of --memory
		{16 * G, 64*G + 1, 4 * G},    // a big --memory changes nothing
		{1000*M + 12345, 0, 250 * M}, // whole MiB
		{2 * M, 0, 1 * M},            // at least 1M
	} {
		if got := DefaultEphemeralSize(c.ram, c.mem); got != c.want {
			t.Errorf("DefaultEphemeralSize(%d, %d) = %d, want %d", c.ram, c.mem, got, c.want)
		}
	}
}

func TestEphemeralConfig(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	s := &Spec{}
	eph, err := ephemeralConfig(Options{EphemeralSize: "8M"}, s)
	if err != nil || eph.Size != 8<<20 || eph.Inodes != 8192 || eph.Dir != "" || s.ephemeralBase != "" {
		t.Errorf("--ephemeral-size 8M: %+v %v", eph, err)
	}
	if eph, err = ephemeralConfig(Options{EphemeralSize: "64G"}, s); err != nil || eph.Inodes != 64<<30/2048 {
		t.Errorf("--ephemeral-size 64G: %+v %v", eph, err)
	}
	if eph, err = ephemeralConfig(Options{EphemeralSize: "1500001"}, s); err != nil || eph.Size%int64(os.Getpagesize()) != 0 {
		t.Errorf("a size is rounded up to whole pages: %+v %v", eph, err)
	}
	if eph, err = ephemeralConfig(Options{Ephemeral: "disk"}, s); err != nil || eph.Size != 0 ||
		s.ephemeralBase != filepath.Join(os.Getenv("XDG_CACHE_HOME"), "sandbox", "ephemeral") {
		t.Errorf("--ephemeral=disk: %+v %q %v", eph, s.ephemeralBase, err)
	}
	for _, o := range []Options{
		{EphemeralSize: "0"}, {EphemeralSize: "512K"}, {EphemeralSize: "-1G"}, {EphemeralSize: "lots"},
		{Ephemeral: "disk", EphemeralSize: "1G"}, {Ephemeral: "ram"},
	} {
		var ue *UsageError
		if _, err := ephemeralConfig(o, &Spec{}); !errors.As(err, &ue) {
			t.Errorf("%+v: want a usage error, got %v", o, err)
		}
	}
}

// TestSweepEphemeral: only unlocked directories named as runs name theirs
// go; a live run's, links, files and other names stay. (Files the user
// cannot remove, which need the sandbox-clean helper, are e2e's part.)
func TestSweepEphemeral(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	base := filepath.Join(cache, "sandbox", "ephemeral")
	live, err := makeEphemeralDir(base, "live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.lock.Close()
	if fi, err := os.Stat(live.path); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the run's directory: %v %v", fi, err)
	}
	dead := filepath.Join(base, "dead-0123abcd")
	outside := filepath.Join(cache, "precious")
	for _, d := range []string{filepath.Join(dead, "tmp", "x"), outside, filepath.Join(base, "other")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "f"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{filepath.Join(dead, "tmp", "link"): outside, filepath.Join(base, "link-0123abcd"): outside} {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "file-0123abcd"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SweepEphemeral(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead run's directory stays: %v", err)
	}
	for _, p := range []string{live.path, filepath.Join(outside, "f"), filepath.Join(base, "other"),
		filepath.Join(base, "link-0123abcd"), filepath.Join(base, "file-0123abcd")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if err := live.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(live.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove left %s: %v", live.path, err)
	}
}
