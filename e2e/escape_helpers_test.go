//go:build linux

package e2e

// Helpers of the escape tests (escape_test.go). Everything here is prefixed
// with esc so it cannot collide with the other e2e files.

import (
	"context"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// escTimeout bounds every sandbox command of the escape tests.
const escTimeout = 20 * time.Second

// escPy is the python interpreter used inside host-mode sandboxes (the host's
// /usr is visible there).
const escPy = "/usr/bin/python3"

// escRun is runOpts with the escape tests' time bound. ESC_VERBOSE=1 logs
// every command with its output (the evidence of each attempt).
func escRun(t testing.TB, o opts, args ...string) result {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = escTimeout
	}
	r := runOpts(t, o, args...)
	if os.Getenv("ESC_VERBOSE") != "" {
		t.Logf("%s", r)
	}
	return r
}

// escMustRun is escRun requiring exit status 0.
func escMustRun(t testing.TB, o opts, args ...string) result {
	t.Helper()
	r := escRun(t, o, args...)
	wantCode(t, r, 0)
	return r
}

// escRequirePython fails (CI=true) or skips when python3 is missing.
func escRequirePython(t testing.TB) {
	t.Helper()
	st, err := os.Stat(escPy)
	requireOrSkip(t, err == nil && st.Mode()&0o111 != 0, escPy+" (the escape tests issue raw syscalls with python3 ctypes)")
}

// escRequireTool fails (CI=true) or skips when a host tool is missing.
func escRequireTool(t testing.TB, name string) {
	t.Helper()
	requireOrSkip(t, findHelper(name), name+" on the host (it is what the escape attempt runs inside)")
}

// escPyArgs is `run FLAGS -- python3 -c SCRIPT`.
func escPyArgs(flags []string, script string) []string {
	return append(append(append([]string{"run"}, flags...), "--"), escPy, "-c", script)
}

// escPyPrelude gives a python script ctypes access to libc and syscall().
const escPyPrelude = `
import ctypes, ctypes.util, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    conv = []
    for a in args:
        conv.append(ctypes.c_long(a) if isinstance(a, int) else a)
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *conv)
    return r, ctypes.get_errno()
`

// escSyscalls are the numbers of the syscalls the tests call by number.
func escSyscalls(t testing.TB) map[string]int {
	t.Helper()
	switch runtime.GOARCH {
	case "amd64":
		return map[string]int{"keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
			"userfaultfd": 323, "kexec_load": 246, "init_module": 175, "open_tree": 428, "move_mount": 429, "fsopen": 430}
	case "arm64":
		return map[string]int{"keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
			"userfaultfd": 282, "kexec_load": 104, "init_module": 105, "open_tree": 428, "move_mount": 429, "fsopen": 430}
	}
	requireOrSkip(t, false, "syscall numbers for GOARCH="+runtime.GOARCH+" (amd64 and arm64 are known)")
	return nil
}

// escApplets are the busybox applets linked into the escape tests' rootfs.
var escApplets = []string{"sh", "cat", "ls", "test", "echo", "mount", "umount", "readlink", "stat", "mknod",
	"hostname", "grep", "timeout", "chroot", "tr", "head", "wc", "kill", "id", "touch", "mkdir", "printf",
	"sleep", "nsenter", "unshare", "dirname", "awk", "sort", "env", "pwd", "true", "false", "cut", "uname", "rm"}

// escRootfs builds a busybox root filesystem (see makeRootfs) with the
// applets the escape tests run, and returns it with its marker.
func escRootfs(t testing.TB) (dir, marker string) {
	t.Helper()
	marker = "escape-rootfs-" + randHex(8)
	dir = makeRootfs(t, marker)
	for _, d := range []string{"mnt", "usr", "var", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range escApplets {
		p := filepath.Join(dir, "bin", a)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.Symlink("busybox", p); err != nil {
			t.Fatal(err)
		}
	}
	return dir, marker
}

// escMode is one way to build the sandbox's root.
type escMode struct {
	name   string
	flags  []string
	rootfs string // the --rootfs DIR, "" in host modes
	marker string // content of DIR/marker with --rootfs
	python bool   // the host's python3 is usable inside
}

// escModes returns the requested modes among "default", "read-only",
// "rootfs" and "rootfs-ro" (a rootfs is built for the rootfs ones).
func escModes(t testing.TB, names ...string) []escMode {
	t.Helper()
	var out []escMode
	for _, n := range names {
		switch n {
		case "default":
			out = append(out, escMode{name: n, python: true})
		case "read-only":
			out = append(out, escMode{name: n, flags: []string{"--read-only"}, python: true})
		case "rootfs", "rootfs-ro":
			dir, marker := escRootfs(t)
			m := escMode{name: n, flags: []string{"--rootfs", dir}, rootfs: dir, marker: marker}
			if n == "rootfs-ro" {
				m.flags = append(m.flags, "--read-only")
			}
			out = append(out, m)
		default:
			t.Fatalf("unknown escape mode %q", n)
		}
	}
	return out
}

// escForModes runs f as a parallel subtest per mode; the rootfs is built in
// the subtest (so its temp dir belongs to it).
func escForModes(t *testing.T, names []string, f func(t *testing.T, m escMode)) {
	t.Helper()
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			m := escModes(t, n)[0]
			if m.python {
				escRequirePython(t)
			}
			f(t, m)
		})
	}
}

// escHomeFile creates a file in the caller's real $HOME (hidden inside the
// sandbox) and removes it at the end of the test.
func escHomeFile(t testing.TB, prefix, content string) string {
	t.Helper()
	home := os.Getenv("HOME")
	st, err := os.Stat(home)
	requireOrSkip(t, home != "" && err == nil && st.IsDir(), "a $HOME directory to plant a secret in (HOME="+home+")")
	p := filepath.Join(home, prefix+randHex(10))
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		requireOrSkip(t, false, fmt.Sprintf("a writable $HOME (%s): %v", home, err))
	}
	t.Cleanup(func() { os.Remove(p) })
	return p
}

// escLinesWith returns the output lines that start with prefix.
func escLinesWith(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// escField returns the rest of the first line starting with "KEY " or
// "KEY:" (trimmed), and whether there was one.
func escField(s, key string) (string, bool) {
	for _, l := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(l, key+" "); ok {
			return strings.TrimSpace(rest), true
		}
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// escDenied reports whether an error message is one of a refused access.
func escDenied(msg string) bool {
	for _, s := range []string{"Read-only file system", "Permission denied", "Operation not permitted",
		"permission denied", "operation not permitted", "read-only file system"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// escNotFound reports whether an error message says the path does not exist.
func escNotFound(msg string) bool {
	for _, s := range []string{"No such file", "nonexistent", "not found", "no such file", "can't create"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// escWriteFn is a shell function: `w PATH VALUE` tries to write VALUE to
// PATH and prints "WROTE PATH" or "DENIED PATH: <error>".
const escWriteFn = `w() { if msg=$( (printf '%s' "$2" > "$1") 2>&1 ); then echo "WROTE $1"; else echo "DENIED $1: $msg"; fi; }
`

// escTryFn is a shell function: `try LABEL CMD...` runs CMD and prints
// "OK LABEL" or "FAIL LABEL: <output>".
const escTryFn = `try() { l=$1; shift; if msg=$("$@" 2>&1); then echo "OK $l"; else echo "FAIL $l: $(echo $msg)"; fi; }
`

// escCheckWrites checks the output of escWriteFn calls: each path was denied
// with an access error, or does not exist where missingOK says it may not.
func escCheckWrites(t *testing.T, r result, paths []string, missingOK func(string) bool) {
	t.Helper()
	for _, p := range paths {
		if slices.Contains(lines(r.stdout), "WROTE "+p) {
			t.Errorf("ESCAPE: writing %s inside succeeded\n%s", p, r)
			continue
		}
		msg, ok := escField(r.stdout, "DENIED "+p)
		switch {
		case !ok:
			t.Errorf("no result for the write of %s:\n%s", p, r)
		case escDenied(msg):
		case missingOK != nil && missingOK(p) && escNotFound(msg):
		default:
			t.Errorf("writing %s failed, but not with EROFS/EACCES/EPERM: %q", p, msg)
		}
	}
}

// escCheckTries checks that every escTryFn label failed.
func escCheckTries(t *testing.T, r result, labels []string) {
	t.Helper()
	for _, l := range labels {
		if slices.Contains(lines(r.stdout), "OK "+l) {
			t.Errorf("ESCAPE: `%s` succeeded inside\n%s", l, r)
			continue
		}
		if _, ok := escField(r.stdout, "FAIL "+l); !ok {
			t.Errorf("no result for `%s`:\n%s", l, r)
		}
	}
}

// escHostSleep starts a host `sleep` (the test's own child) with a unique
// argument and returns its pid, start time and argument.
func escHostSleep(t *testing.T) (pid int, start uint64, arg string) {
	t.Helper()
	arg = fmt.Sprintf("60.%06d", mrand.IntN(900000)+100000)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, "sleep", arg)
	if err := cmd.Start(); err != nil {
		cancel()
		requireOrSkip(t, false, "a host `sleep` to attack: "+err.Error())
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		cancel()
		_ = cmd.Wait()
	})
	pid = cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p, ok := readProc(pid); ok && slices.Contains(p.cmdline, arg) {
			return pid, p.start, arg
		}
		if time.Now().After(deadline) {
			t.Fatalf("host sleep %d never showed its argument %s", pid, arg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// escHostProcOK checks that the host process still runs and is not stopped
// or traced.
func escHostProcOK(t *testing.T, pid int, start uint64) {
	t.Helper()
	p, ok := readProc(pid)
	if !ok || !alive(pid, start) {
		t.Errorf("ESCAPE: the host process %d was killed from inside the sandbox", pid)
		return
	}
	if p.state == 'T' || p.state == 't' {
		t.Errorf("ESCAPE: the host process %d was stopped or traced from inside (state %c)", pid, p.state)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		if v, ok := escField(string(b), "TracerPid"); ok && v != "0" {
			t.Errorf("ESCAPE: the host process %d is traced by pid %s", pid, v)
		}
	}
}

// escOpenPty opens a new pty pair; the test keeps both ends.
func escOpenPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	return openPty(t, 24, 80)
}

// escHostRootMount is the host's own mountinfo entry for "/".
func escHostRootMount(t *testing.T) mountEntry {
	t.Helper()
	m, ok := lastMountAt(hostMountinfo(t), "/")
	if !ok {
		t.Fatal("the host's mountinfo has no /")
	}
	return m
}

// escSection returns section i of "---"-separated output (or "").
func escSection(s string, i int) string {
	parts := sections(s)
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

// escDockerCaps is Docker's default capability set (the sandbox's default
// bounding set) as a /proc/PID/status mask.
const escDockerCaps = 0xa80425fb

// escRandUint16 is a random 16-bit number (for a SysV IPC key).
func escRandUint16() uint16 {
	b, _ := hex.DecodeString(randHex(4))
	return uint16(b[0])<<8 | uint16(b[1])
}
