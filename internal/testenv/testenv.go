// Package testenv holds what the tests of several packages share about
// their environment, and the protocol tests' shared pieces (a raw peer's
// sendmsg, checks of what was received, the fuzz inputs' chunks).
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// RequireOrSkip skips the test when a prerequisite is missing, except with
// CI=true, where a missing prerequisite is a failure naming it.
func RequireOrSkip(t testing.TB, cond bool, why string) {
	t.Helper()
	if cond {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing prerequisite (CI=true, not skipping): %s", why)
	}
	t.Skipf("skipping, missing prerequisite: %s", why)
}

// DelegatedCgroup returns a fresh child of the test process's own cgroup
// v2, which must be delegated to the caller (scripts/test.sh, run as root,
// starts the tests in one); it is killed and removed when the test ends.
func DelegatedCgroup(t testing.TB) string {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2"))
	if err != nil {
		t.Fatal(err)
	}
	var mnt string
	for _, m := range infos {
		if m.Root == "/" {
			mnt = m.Mountpoint
		}
	}
	RequireOrSkip(t, mnt != "", "a cgroup2 mount")
	text, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var base string
	for _, l := range strings.Split(string(text), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			base = filepath.Join(mnt, p)
		}
	}
	writable := base != "" && unix.Access(base, unix.W_OK|unix.X_OK) == nil &&
		unix.Access(filepath.Join(base, "cgroup.procs"), unix.W_OK) == nil
	RequireOrSkip(t, writable, fmt.Sprintf("the test's cgroup %q delegated to uid %d (scripts/test.sh run as root sets this up)", base, os.Getuid()))
	dir := filepath.Join(base, fmt.Sprintf("cgtest-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Kill what is left, then remove the tree depth first.
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		var dirs []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 50; try++ {
				if err := unix.Rmdir(dirs[i]); err == nil || err == unix.ENOENT {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("could not remove the test cgroup %s", dir)
		}
	})
	return dir
}

// EndedBy waits (at most 5 s) for the started cmd to end and says whether
// signal sig ended it.
func EndedBy(cmd *exec.Cmd, sig syscall.Signal) bool {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ws := ee.Sys().(syscall.WaitStatus)
			return ws.Signaled() && ws.Signal() == sig
		}
		return false
	case <-time.After(5 * time.Second):
		return false
	}
}

// CheckOneLine fails unless err reads as one line of printable text (a
// tab allowed): what a peer sends ends up in the one-line diagnostic the
// user sees, and must not write lines or terminal controls of its own.
func CheckOneLine(t testing.TB, what string, err error) {
	t.Helper()
	for _, r := range err.Error() {
		if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 || r == '\u2028' || r == '\u2029' {
			t.Fatalf("%s: error %q has a control character %U", what, err, r)
		}
	}
}

// OpenFDs counts this process's open descriptors.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// CheckReceivedFD fails unless fd, received from a peer, is open,
// close-on-exec, and a character device or a regular file (/dev/null, a
// memfd: what the protocol tests send).
func CheckReceivedFD(t testing.TB, fd int) {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("received fd %d: flags %#x, %v; want open and close-on-exec", fd, flags, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("received fd %d: %v", fd, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR && st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("received fd %d: mode %#o, not what was sent", fd, st.Mode)
	}
}

// Chunk splits a chunk with a 2-byte little-endian length off a fuzz
// input; the chunk has no room to grow into the rest of in (the fuzzer's
// input is not to be written).
func Chunk(in []byte) (c, rest []byte) {
	if len(in) < 2 {
		return nil, nil
	}
	n := min(int(in[0])|int(in[1])<<8, len(in)-2)
	return in[2 : 2+n : 2+n], in[2+n:]
}

// BinaryDatagram reads a binary datagram of proto's as its doc gives it,
// for the receivers' fuzz models (proto's and wire's): NUL, the kind's
// length (a byte) and the kind, a flags byte (1: the body is out of band,
// and nothing follows), the body. The caller has seen the NUL.
func BinaryDatagram(p []byte) (kind string, body []byte, blob, ok bool) {
	if len(p) < 3 || len(p) < 3+int(p[1]) {
		return "", nil, false, false
	}
	k := int(p[1])
	switch {
	case p[2+k] == 0:
		return string(p[2 : 2+k]), p[3+k:], false, true
	case p[2+k] == 1 && len(p) == 3+k:
		return string(p[2 : 2+k]), nil, true, true
	}
	return "", nil, false, false
}

// SendRaw is sendmsg(2) as a hostile peer calls it: unix.Sendmsg sends a
// byte of its own with descriptors and no data, where an empty datagram
// with descriptors is what was asked for.
func SendRaw(fd int, p, oob []byte) unix.Errno {
	var msg unix.Msghdr
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
		msg.Iov = &iov
		msg.SetIovlen(1)
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_NOSIGNAL)
		if errno != unix.EINTR {
			return errno
		}
	}
}
