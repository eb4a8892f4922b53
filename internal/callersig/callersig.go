// Package callersig owns the signals a caller of sandbox passes on to a
// sandbox's command (run's and exec's) and catching them.
package callersig

import (
	"os"
	"os/signal"
	"syscall"

	"sandbox/internal/sigcatch"
)

// Forwarded are the signals the parent passes on to the sandbox: those a
// caller sends to end or tell a command (`timeout -s ALRM`, a UPS's PWR,
// a CPU limit's XCPU among them: the Go runtime ignores those when not
// asked for them, so sandbox neither passed them on nor ended). Not
// SIGPROF (Go's profiler) nor SIGXFSZ (the kernel's answer to the
// writer's own write, which fails with EFBIG as well).
var Forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
	syscall.SIGALRM, syscall.SIGVTALRM, syscall.SIGPWR, syscall.SIGXCPU}

// JobControl are the signals of a terminal's job control that the parent
// passes on when the payload has no pty (Ctrl-Z, then fg or bg): init
// stops and continues the payload's process group with them.
var JobControl = []os.Signal{syscall.SIGTSTP, syscall.SIGCONT}

// ForwardedByCaller is Forwarded without the signals the caller ignores
// (nohup's SIGHUP, the SIGINT of a script's background job): sandbox
// leaves those ignored, as a program that respects them does, rather than
// catch them and end the sandbox. The Go runtime keeps the SIG_IGN it
// inherits for SIGHUP and SIGINT only; it takes over the others at start.
func ForwardedByCaller() []os.Signal {
	var out []os.Signal
	for _, s := range Forwarded {
		if !signal.Ignored(s) {
			out = append(out, s)
		}
	}
	return out
}

// Notify catches sigs into c: with sigcatch where it can (no round trip
// to the Go runtime's signal thread per signal), else with os/signal.
func Notify(c chan os.Signal, sigs ...os.Signal) {
	if len(sigs) > 0 && sigcatch.Notify(c, sigs...) != nil {
		signal.Notify(c, sigs...)
	}
}

// Stop ends Notify's catch into c: its signals have the Go runtime's
// handling again.
func Stop(c chan os.Signal) {
	sigcatch.Stop(c)
	signal.Stop(c)
}
