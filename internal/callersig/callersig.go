// Package callersig owns the signals a caller of sandbox passes on to a
// sandbox's command (run's and exec's) and catching them.
//
// It imports only the standard library: internal/execstart starts exec's
// catch from its package initialisation.
package callersig

import (
	"os"
	"os/signal"
	"syscall"
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

// Catch starts catching sigs on a new channel in the background; enabled
// is closed once every one of them is caught.
func Catch(sigs []os.Signal) (c chan os.Signal, enabled <-chan struct{}) {
	c = make(chan os.Signal, 16)
	done := make(chan struct{})
	go func() {
		signal.Notify(c, sigs...)
		close(done)
	}()
	return c, done
}
