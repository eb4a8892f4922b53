//go:build linux && (amd64 || arm64)

package sigdrop

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gate is the handler Faults installs (sigdrop_$GOARCH.s): it jumps to
// next when the signal's si_code is above zero and returns otherwise.
// drop is All's: it returns. Neither is ever called from Go.
func gate()
func drop()

// gateAddr and dropAddr are their entries (the ABI0 symbols, not a Go
// func value's wrapper).
func gateAddr() uintptr
func dropAddr() uintptr

// next is the Go runtime's handler, where gate passes what the kernel
// raised. Set before the first rt_sigaction that installs gate.
var next uintptr

// sigaction is the kernel's struct sigaction on amd64 and arm64.
type sigaction struct {
	handler, flags, restorer, mask uint64
}

const (
	sigDFL = 0
	sigIGN = 1
)

// Faults puts gate in front of the Go runtime's handler of each of sigs,
// keeping its flags (SA_ONSTACK, SA_SIGINFO, SA_RESTORER), restorer and
// mask. Call it after the runtime has started: every one of sigs must
// have the runtime's handler (the same for all). The runtime never sets
// the handler of a fault's signal again (a program cannot catch one), so
// the gate stays in place.
func Faults(sigs ...syscall.Signal) error {
	in := gateAddr()
	for _, s := range sigs {
		old, err := runtimeHandler(s, in)
		if err != nil {
			return err
		}
		if old.handler == uint64(in) {
			continue // gated already
		}
		switch h := uintptr(old.handler); {
		case next == 0:
			next = h
		case h != next:
			return fmt.Errorf("%v has a handler other than the Go runtime's", s)
		}
		if err := install(s, old, in); err != nil {
			return err
		}
	}
	return nil
}

// All replaces the Go runtime's handler of each of sigs by drop. Call it
// after the runtime has started, and never ask os/signal for sigs after:
// signal.Notify, Ignore or Reset would put the runtime's handler back.
func All(sigs ...syscall.Signal) error {
	in := dropAddr()
	for _, s := range sigs {
		old, err := runtimeHandler(s, in)
		if err != nil {
			return err
		}
		if old.handler != uint64(in) {
			if err := install(s, old, in); err != nil {
				return err
			}
		}
	}
	return nil
}

// runtimeHandler reads s's sigaction: the runtime's handler, or ours
// (handler == ours) if already installed; never SIG_DFL or SIG_IGN.
func runtimeHandler(s syscall.Signal, ours uintptr) (sigaction, error) {
	var old sigaction
	if err := rtSigaction(s, nil, &old); err != nil {
		return old, fmt.Errorf("reading the handler of %v: %w", s, err)
	}
	if h := uintptr(old.handler); h == sigDFL || h == sigIGN {
		return old, fmt.Errorf("%v has no handler of the Go runtime to replace", s)
	}
	return old, nil
}

// install sets s's handler to h, with old's flags, restorer and mask.
func install(s syscall.Signal, old sigaction, h uintptr) error {
	act := old
	act.handler = uint64(h)
	if err := rtSigaction(s, &act, nil); err != nil {
		return fmt.Errorf("installing a handler of %v: %w", s, err)
	}
	return nil
}

func rtSigaction(s syscall.Signal, act, old *sigaction) error {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
