//go:build linux && (amd64 || arm64)

// Package sigaction reads and installs signal handlers by address with the
// kernel's rt_sigaction, for handlers written in assembly that run in
// place of, or in front of, the Go runtime's own (internal/sigdrop,
// internal/sigcatch): os/signal installs only the runtime's.
package sigaction

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Action is the kernel's struct sigaction on amd64 and arm64.
type Action struct {
	Handler, Flags, Restorer, Mask uint64
}

// The handlers that are no function.
const (
	DFL = 0
	IGN = 1
)

// Get reads s's action.
func Get(s syscall.Signal) (Action, error) {
	var a Action
	if err := rtSigaction(s, nil, &a); err != nil {
		return a, fmt.Errorf("reading the handler of %v: %w", s, err)
	}
	return a, nil
}

// Set installs a as the action of s.
func Set(s syscall.Signal, a Action) error {
	if err := rtSigaction(s, &a, nil); err != nil {
		return fmt.Errorf("installing a handler of %v: %w", s, err)
	}
	return nil
}

// Runtime reads s's action and checks that it has a handler (the Go
// runtime's, or one installed in its place): never SIG_DFL or SIG_IGN,
// whose action has no restorer to keep.
func Runtime(s syscall.Signal) (Action, error) {
	a, err := Get(s)
	if err != nil {
		return a, err
	}
	if h := uintptr(a.Handler); h == DFL || h == IGN {
		return a, fmt.Errorf("%v has no handler of the Go runtime to replace", s)
	}
	return a, nil
}

// Replace installs h as s's handler with old's flags (SA_ONSTACK,
// SA_SIGINFO, SA_RESTART, SA_RESTORER), restorer and mask.
func Replace(s syscall.Signal, old Action, h uintptr) error {
	a := old
	a.Handler = uint64(h)
	return Set(s, a)
}

func rtSigaction(s syscall.Signal, act, old *Action) error {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
