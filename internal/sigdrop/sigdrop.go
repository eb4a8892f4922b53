//go:build linux && (amd64 || arm64)

package sigdrop

import (
	"fmt"
	"syscall"

	"sandbox/internal/sigaction"
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

// Faults puts gate in front of the Go runtime's handler of each of sigs,
// keeping its flags (SA_ONSTACK, SA_SIGINFO, SA_RESTORER), restorer and
// mask. Call it after the runtime has started: every one of sigs must
// have the runtime's handler (the same for all). The runtime never sets
// the handler of a fault's signal again (a program cannot catch one), so
// the gate stays in place.
func Faults(sigs ...syscall.Signal) error {
	in := gateAddr()
	for _, s := range sigs {
		old, err := sigaction.Runtime(s)
		if err != nil {
			return err
		}
		if old.Handler == uint64(in) {
			continue // gated already
		}
		switch h := uintptr(old.Handler); {
		case next == 0:
			next = h
		case h != next:
			return fmt.Errorf("%v has a handler other than the Go runtime's", s)
		}
		if err := sigaction.Replace(s, old, in); err != nil {
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
		old, err := sigaction.Runtime(s)
		if err != nil {
			return err
		}
		if old.Handler != uint64(in) {
			if err := sigaction.Replace(s, old, in); err != nil {
				return err
			}
		}
	}
	return nil
}
