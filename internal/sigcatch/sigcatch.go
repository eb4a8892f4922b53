//go:build linux && (amd64 || arm64)

package sigcatch

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"sandbox/internal/sigaction"

	"golang.org/x/sys/unix"
)

// relay is the handler (sigcatch_$GOARCH.s): it writes numbers[signal] to
// pipeFD. Never called from Go; relayAddr is its entry (the ABI0 symbol).
func relay()
func relayAddr() uintptr

// maxSignal is the highest signal number on Linux.
const maxSignal = 64

// numbers[n] is n: what relay writes for signal n, from memory that does
// not move (relay has no stack of its own to write it from).
var numbers [maxSignal + 1]byte

// pipeFD is the pipe's write end for relay (non-blocking), -1 before the
// first Notify. Set once, before any handler is installed.
var pipeFD int32 = -1

// ownPID is this process's pid, set with pipeFD: relay writes only here,
// never in a child forked from here before its exec, which has the
// handler and the pipe until then (os.StartProcess resets the handlers of
// the signals the runtime handles, not those of a signal it left at
// SIG_DFL, which Notify may catch too): the signal sent to that child
// would come out of this process's channel. (A PID 1 catches none at
// SIG_DFL: see current.)
var ownPID int32

var (
	mu      sync.Mutex
	started bool
	chans   [maxSignal + 1]chan<- os.Signal // by signal; nil: not caught
	saved   [maxSignal + 1]sigaction.Action // as before Notify, put back by Stop
)

// template is the signal whose action (the Go runtime's handler) lends its
// flags, restorer and mask to the relay of a signal the runtime left at
// SIG_DFL: SIGURG, the runtime's preemption signal, which it always
// handles and Notify refuses to catch.
const template = syscall.SIGURG

// jobControl are the signals the Go runtime leaves at SIG_DFL until
// os/signal asks for them (its sigtable's _SigDefault): of those, the
// only ones Notify catches at SIG_DFL. The others (the C library's
// signals 32–34, which a pure Go program leaves alone) are not a program's.
var jobControl = [...]syscall.Signal{syscall.SIGTSTP, syscall.SIGCONT, syscall.SIGTTIN, syscall.SIGTTOU}

// Notify relays every one of sigs to c until Stop(c), in place of the Go
// runtime's handling, or, on an error, installs no handler. A signal
// caught already for another channel goes to c from now on. A signal the
// runtime leaves at SIG_DFL until os/signal asks for it (SIGTSTP, SIGCONT,
// SIGTTIN, SIGTTOU: their default acts on the whole process) is caught
// too, with the runtime's flags, restorer and mask (template's), except in
// a PID 1 (below); Stop then puts SIG_DFL back (os/signal's Stop leaves
// the runtime's handler, which drops the signal: here one that comes
// after Stop acts as for any program that does not catch it). One that is
// ignored (SIG_IGN) is refused: the caller chose, and os/signal decides.
func Notify(c chan<- os.Signal, sigs ...os.Signal) error {
	if c == nil {
		return errors.New("sigcatch: Notify with a nil channel")
	}
	mu.Lock()
	defer mu.Unlock()
	in := relayAddr()
	nums := make([]syscall.Signal, 0, len(sigs))
	olds := make([]sigaction.Action, 0, len(sigs))
	likes := make([]sigaction.Action, 0, len(sigs))
	for _, s := range sigs {
		n, ok := s.(syscall.Signal)
		if !ok || n < 1 || n > maxSignal || n == syscall.SIGKILL || n == syscall.SIGSTOP {
			return fmt.Errorf("sigcatch: cannot catch %v", s)
		}
		old, like, err := current(n, in)
		if err != nil {
			return err
		}
		nums, olds, likes = append(nums, n), append(olds, old), append(likes, like)
	}
	if err := start(); err != nil {
		return err
	}
	installed := make([]syscall.Signal, 0, len(nums))
	for i, n := range nums {
		if olds[i].Handler == uint64(in) { // caught already: only the channel changes
			chans[n] = c
			continue
		}
		if err := sigaction.Replace(n, likes[i], in); err != nil {
			for _, m := range installed { // as they were; a moved channel stays moved
				restore(m)
			}
			return err
		}
		saved[n], chans[n] = olds[i], c
		installed = append(installed, n)
	}
	return nil
}

// current is n's action, and the action whose flags, restorer and mask
// n's relay is to take: its own (the runtime's handler, or the relay's),
// or template's for a job-control signal at SIG_DFL. A signal ignored has
// neither.
func current(n syscall.Signal, relay uintptr) (old, like sigaction.Action, err error) {
	if n == template {
		return old, like, fmt.Errorf("sigcatch: %v is the Go runtime's preemption signal", n)
	}
	if old, err = sigaction.Get(n); err != nil {
		return old, like, err
	}
	if old.Handler != sigaction.DFL || !slices.Contains(jobControl[:], n) {
		_, err = sigaction.Runtime(n) // refuses SIG_IGN and SIG_DFL
		return old, old, err
	}
	// The relay tells a child forked from here by its pid, which is 1 in
	// a child made with a new PID namespace: as PID 1 ourselves (a
	// container's first process) we could not. The runtime resets in a
	// child only what it installed, so os/signal's handler is safe there.
	if unix.Getpid() == 1 {
		return old, like, fmt.Errorf("sigcatch: %v is at SIG_DFL, which it catches only outside a PID 1", n)
	}
	if like, err = sigaction.Runtime(template); err == nil && like.Handler == uint64(relay) {
		err = fmt.Errorf("sigcatch: %v, whose handler's flags it takes, is caught", template)
	}
	return old, like, err
}

// Stop puts back the action of every signal caught for c as Notify found
// it: the runtime's handler, or SIG_DFL.
// A signal relayed before is still sent to c if the reader has not yet
// passed it on, as with signal.Stop.
func Stop(c chan<- os.Signal) {
	mu.Lock()
	defer mu.Unlock()
	for n := range chans {
		if chans[n] == c && c != nil {
			restore(syscall.Signal(n))
		}
	}
}

// restore puts back n's saved action; mu held.
func restore(n syscall.Signal) {
	if chans[n] == nil {
		return
	}
	sigaction.Set(n, saved[n]) // read moments before: cannot fail
	chans[n] = nil
}

// start makes the pipe and its reader once; mu held.
func start() error {
	if started {
		return nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("sigcatch: making its pipe: %w", err)
	}
	for i := range numbers {
		numbers[i] = byte(i)
	}
	atomic.StoreInt32(&ownPID, int32(unix.Getpid()))
	atomic.StoreInt32(&pipeFD, int32(p[1]))
	started = true
	go read(os.NewFile(uintptr(p[0]), "sigcatch"))
	return nil
}

// read passes the relayed signals on to their channels, for the process's
// life (the write end is never closed: a handler may still be writing to
// it after any Stop).
func read(r *os.File) {
	var buf [128]byte
	for {
		k, err := r.Read(buf[:])
		if err != nil { // never: the write end stays open
			return
		}
		for _, b := range buf[:k] {
			mu.Lock()
			c := chans[b]
			mu.Unlock()
			if c == nil {
				continue // stopped meanwhile
			}
			select {
			case c <- syscall.Signal(b):
			default: // as os/signal: a full channel drops it
			}
		}
	}
}
