package fds

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseExecFrom: every fd from the one given up is close-on-exec,
// those below are left alone.
func TestCloseExecFrom(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	lo, hi := int(r.Fd()), int(w.Fd())
	if lo > hi {
		lo, hi = hi, lo
	}
	for _, fd := range []int{lo, hi} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := CloseExecFrom(hi); err != nil {
		t.Fatal(err)
	}
	flags := func(fd int) int {
		f, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f & unix.FD_CLOEXEC
	}
	if flags(hi) == 0 || flags(lo) != 0 {
		t.Fatalf("fd %d cloexec %d (want set), fd %d cloexec %d (want clear)", hi, flags(hi), lo, flags(lo))
	}
}
