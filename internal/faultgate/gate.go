//go:build linux && (amd64 || arm64)

package faultgate

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gate is the handler the kernel calls (gate_$GOARCH.s): it jumps to next
// when the signal's si_code is above zero and returns otherwise. Never
// called from Go.
func gate()

// gateAddr is gate's entry (its ABI0 symbol, not a Go func value's
// wrapper).
func gateAddr() uintptr

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

// Install puts gate in front of the Go runtime's handler of each of sigs,
// keeping its flags (SA_ONSTACK, SA_SIGINFO, SA_RESTORER), restorer and
// mask. Call it once, after the runtime has started: every one of sigs
// must have the runtime's handler (the same for all). The runtime never
// sets these handlers again (they are not signals it lets a program
// catch), so the gate stays in place.
func Install(sigs ...syscall.Signal) error {
	in := gateAddr()
	for _, s := range sigs {
		var old sigaction
		if err := rtSigaction(s, nil, &old); err != nil {
			return fmt.Errorf("reading the handler of %v: %w", s, err)
		}
		switch h := uintptr(old.handler); {
		case h == in:
			continue
		case h == sigDFL || h == sigIGN:
			return fmt.Errorf("%v has no handler of the Go runtime to gate", s)
		case next == 0:
			next = h
		case h != next:
			return fmt.Errorf("%v has a handler other than the Go runtime's", s)
		}
		act := old
		act.handler = uint64(in)
		if err := rtSigaction(s, &act, nil); err != nil {
			return fmt.Errorf("gating %v: %w", s, err)
		}
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
