//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoNewPrivs is returned by Install when no_new_privs is not set on the
// calling thread.
var ErrNoNewPrivs = errors.New("seccomp: no_new_privs is not set on this thread: set it first (SetNoNewPrivs, or prctl(PR_SET_NO_NEW_PRIVS) on the same OS thread, with runtime.LockOSThread)")

// SetNoNewPrivs sets no_new_privs on every thread of the process
// (syscall.AllThreadsSyscall; no_new_privs is a per-thread attribute, and
// a goroutine may move between threads). Without cgo this always works;
// with cgo, AllThreadsSyscall is unsupported, and SetNoNewPrivs sets it
// on the calling thread only: the caller must then hold the thread with
// runtime.LockOSThread until Install has returned.
func SetNoNewPrivs() error {
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	if errno == syscall.ENOTSUP {
		return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	if errno != 0 {
		return fmt.Errorf("setting no_new_privs: %w", errno)
	}
	return nil
}

// Install loads the filter on every thread of the process
// (seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC)); the
// process's future threads and children inherit it, and it cannot be
// removed. no_new_privs must be set on the calling thread (see
// SetNoNewPrivs); TSYNC then sets it on the other threads too. Install of
// a nil program does nothing (unconfined).
func Install(p *Program) error { return install(p, true) }

// InstallPrivileged is Install for a caller that holds CAP_SYS_ADMIN in
// its user namespace, the kernel's other condition for a filter: it does
// not require no_new_privs (an OCI process without noNewPrivileges).
func InstallPrivileged(p *Program) error { return install(p, false) }

func install(p *Program, needNNP bool) error {
	if p == nil {
		return nil
	}
	n := len(p.Instructions)
	if n == 0 || n > MaxInstructions {
		return fmt.Errorf("seccomp: cannot install a filter of %d instructions (1 to %d)", n, MaxInstructions)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("seccomp: reading no_new_privs: %w", err)
	}
	if nnp != 1 && needNNP {
		return ErrNoNewPrivs
	}

	filter := make([]unix.SockFilter, n)
	for i, in := range p.Instructions {
		filter[i] = unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(n), Filter: &filter[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_TSYNC | p.Flags)
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		switch errno {
		case unix.ENOSYS:
			return fmt.Errorf("seccomp: this kernel has no seccomp(2) (needs Linux 3.17 with CONFIG_SECCOMP_FILTER): %w", errno)
		case unix.EINVAL:
			return fmt.Errorf("seccomp: the kernel rejected the filter or its flags (%#x): %w", flags, errno)
		case unix.EACCES:
			return fmt.Errorf("seccomp: no_new_privs is not set and the caller lacks CAP_SYS_ADMIN: %w", errno)
		}
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", errno)
	}
	if r != 0 {
		// With TSYNC, a positive return is the id of a thread that could
		// not be synchronized (it has a filter of its own that is not an
		// ancestor of this thread's); no thread got the new filter.
		return fmt.Errorf("seccomp: thread %d could not be synchronized to the new filter (TSYNC); no filter was installed", r)
	}
	return nil
}
