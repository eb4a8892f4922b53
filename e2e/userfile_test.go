//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUserNamedFilesBounded: a --profile or --seccomp naming /dev/zero, a
// FIFO or a huge file is refused at once with one line (125); it used to
// read forever (or block on the FIFO).
func TestUserNamedFilesBounded(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := func(name string) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(8 << 30); err != nil { // sparse: 8 GiB of zeros
			t.Fatal(err)
		}
		return p
	}
	zero := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink("/dev/zero", p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, flag, path, want string
	}{
		{"seccomp /dev/zero", "--seccomp", "/dev/zero", "not a regular file (a character device)"},
		{"seccomp FIFO", "--seccomp", fifo("s.json"), "not a regular file (a FIFO)"},
		{"seccomp huge", "--seccomp", huge("s-huge.json"), "over the limit of 1048576 bytes"},
		{"profile /dev/zero", "--profile", zero("zero.toml"), "not a regular file (a character device)"},
		{"profile FIFO", "--profile", fifo("p.yaml"), "not a regular file (a FIFO)"},
		{"profile huge", "--profile", huge("p-huge.toml"), "over the limit of 1048576 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			r := runOpts(t, opts{dir: dir, timeout: 20 * time.Second}, "run", "--net=none", c.flag, c.path, "--", "true")
			wantCode(t, r, exitSandbox)
			if !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, c.path) {
				t.Errorf("want one line naming %s and saying %q\n%s", c.path, c.want, r)
			}
			if n := len(lines(r.stderr)); n != 1 {
				t.Errorf("want one line on stderr, got %d\n%s", n, r)
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("took %v", d.Round(time.Millisecond))
			}
		})
	}
}
