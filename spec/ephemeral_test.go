package spec

import (
	"errors"
	"os"
	"path/filepath"
	"sandbox/journal"
	"strings"
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
	if err != nil || eph.Size != 8<<20 || eph.Inodes != 8192 || eph.Dir != "" || s.EphemeralBase != "" {
		t.Errorf("--ephemeral-size 8M: %+v %v", eph, err)
	}
	if eph, err = ephemeralConfig(Options{EphemeralSize: "64G"}, s); err != nil || eph.Inodes != 64<<30/2048 {
		t.Errorf("--ephemeral-size 64G: %+v %v", eph, err)
	}
	if eph, err = ephemeralConfig(Options{EphemeralSize: "1500001"}, s); err != nil || eph.Size%int64(os.Getpagesize()) != 0 {
		t.Errorf("a size is rounded up to whole pages: %+v %v", eph, err)
	}
	if eph, err = ephemeralConfig(Options{Ephemeral: "disk"}, s); err != nil || eph.Size != 0 ||
		s.EphemeralBase != filepath.Join(os.Getenv("XDG_CACHE_HOME"), "sandbox", "ephemeral") {
		t.Errorf("--ephemeral=disk: %+v %q %v", eph, s.EphemeralBase, err)
	}
	for _, o := range []Options{
		{EphemeralSize: "0"}, {EphemeralSize: "512K"}, {EphemeralSize: "-1G"}, {EphemeralSize: "lots"},
		{Ephemeral: "disk", EphemeralSize: "1G"}, {Ephemeral: "ram"},
	} {
		var ue *journal.UsageError
		if _, err := ephemeralConfig(o, &Spec{}); !errors.As(err, &ue) {
			t.Errorf("%+v: want a usage error, got %v", o, err)
		}
	}
}

// TestEphemeralBaseRelativeHome: a relative HOME (and no XDG_CACHE_HOME)
// is refused, not taken below the working directory (before, `HOME=rel
// sandbox run --ephemeral=disk` made ./rel/.cache/sandbox/…).
func TestEphemeralBaseRelativeHome(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "relative-home")
	if d, err := EphemeralBase(); err == nil || !strings.Contains(err.Error(), `$HOME "relative-home" is not an absolute path`) {
		t.Errorf("EphemeralBase with HOME=relative-home: %q, %v; want an error naming HOME", d, err)
	}
	t.Setenv("HOME", "/home/someone")
	if d, err := EphemeralBase(); err != nil || d != "/home/someone/.cache/sandbox/ephemeral" {
		t.Errorf("EphemeralBase with HOME=/home/someone: %q, %v", d, err)
	}
}
