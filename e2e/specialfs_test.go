//go:build linux

package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestProcRestrictions(t *testing.T) {
	t.Parallel()
	t.Run("kcore", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{}, sh(nil, "head -c 16 /proc/kcore 2>/dev/null | wc -c")...)
		if strings.TrimSpace(r.stdout) != "0" {
			t.Errorf("/proc/kcore should read as empty or fail, read %s bytes", strings.TrimSpace(r.stdout))
		}
	})
	t.Run("sysrq-trigger", func(t *testing.T) {
		t.Parallel()
		// 'h' only prints help to the kernel log, should the write get through.
		r := run(t, sh(nil, "echo h > /proc/sysrq-trigger")...)
		wantFail(t, r)
	})
	t.Run("proc-sys read-only", func(t *testing.T) {
		t.Parallel()
		// Inside its own UTS namespace root could write this file; /proc/sys
		// must be read-only.
		r := mustRun(t, opts{}, sh([]string{"--hostname", "e2e-before"},
			// (guarded: only tried in a UTS namespace of its own)
			`[ "$(uname -n)" = e2e-before ] && echo e2e-after > /proc/sys/kernel/hostname && echo WROTE; uname -n`)...)
		if got := lines(r.stdout); !slices.Equal(got, []string{"e2e-before"}) {
			t.Errorf("writing /proc/sys/kernel/hostname should fail: %s", r)
		}
	})
}

func TestSysReadOnly(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--", "cat", "/proc/self/mountinfo")
	ms, err := parseMountinfo(r.stdout)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lastMountAt(ms, "/sys"); !ok {
		t.Fatalf("no mount at /sys:\n%s", r.stdout)
	}
	for _, m := range ms {
		if m.mountPoint == "/sys" || strings.HasPrefix(m.mountPoint, "/sys/") {
			if !slices.Contains(m.options, "ro") {
				t.Errorf("%s (%s) is mounted %s, want ro", m.mountPoint, m.fstype, strings.Join(m.options, ","))
			}
		}
	}
}

func TestDevContents(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, sh(nil, "ls -A /dev; echo ---; echo x > /dev/null && echo null-ok; head -c 16 /dev/urandom | wc -c; "+
		"head -c 8 /dev/zero | wc -c; if echo x > /dev/full; then echo FULL-WROTE; fi 2>/dev/null; true")...)
	parts := sections(r.stdout)
	if len(parts) != 2 {
		t.Fatalf("unexpected output: %s", r)
	}
	got := lines(parts[0])
	for _, want := range []string{"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm"} {
		if !slices.Contains(got, want) {
			t.Errorf("/dev/%s missing inside (have %q)", want, got)
		}
	}
	allowed := []string{"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
		"fd", "stdin", "stdout", "stderr", "console", "mqueue", "core"}
	for _, e := range got {
		if !slices.Contains(allowed, e) {
			t.Errorf("unexpected /dev/%s inside (host devices must not be exposed)", e)
		}
	}
	for _, bad := range []string{"vda", "sda", "fuse", "kmsg", "mem", "loop0", "tty0", "console0"} {
		if slices.Contains(got, bad) {
			t.Errorf("/dev/%s exists inside", bad)
		}
	}
	if got, want := lines(parts[1]), []string{"null-ok", "16", "8"}; !slices.Equal(got, want) {
		t.Errorf("device I/O: want %q (write /dev/null, read /dev/urandom and /dev/zero, /dev/full fails), got %q", want, got)
	}
}

func TestTmpfsMounts(t *testing.T) {
	t.Parallel()
	name := "e2e-tmpfs-w-" + randHex(8)
	hostPaths := []string{"/tmp/" + name, "/run/" + name, "/dev/shm/" + name}
	for _, p := range hostPaths {
		t.Cleanup(func() { os.Remove(p) })
	}
	r := mustRun(t, opts{}, sh([]string{"--cwd=none"}, "ls -A /tmp; echo ---; cat /proc/self/mountinfo; echo ---; touch "+strings.Join(hostPaths, " ")+" && echo writable")...)
	parts := sections(r.stdout)
	if len(parts) != 3 {
		t.Fatalf("unexpected output: %s", r)
	}
	if got := lines(parts[0]); len(got) != 0 {
		t.Errorf("/tmp inside should be empty at start, lists %q", got)
	}
	ms, err := parseMountinfo(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range []string{"/tmp", "/run", "/dev/shm"} {
		if m, ok := lastMountAt(ms, mp); !ok || m.fstype != "tmpfs" {
			t.Errorf("%s should be a fresh tmpfs, mountinfo has %+v (found %v)", mp, m, ok)
		}
	}
	if strings.TrimSpace(parts[2]) != "writable" {
		t.Errorf("/tmp, /run, /dev/shm should be writable: %s", r)
	}
	for _, p := range hostPaths {
		if exists(p) {
			t.Errorf("%s written inside appeared on the host", p)
		}
	}
}
