//go:build linux && (amd64 || arm64)

package sigcatch

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/sigaction"

	"golang.org/x/sys/unix"
)

func receive(t *testing.T, c <-chan os.Signal, want syscall.Signal) {
	t.Helper()
	select {
	case s := <-c:
		if s != want {
			t.Errorf("received %v, want %v", s, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%v did not arrive within 10 s", want)
	}
}

// nothingOn fails if c has a signal waiting.
func nothingOn(t *testing.T, c <-chan os.Signal, what string) {
	t.Helper()
	select {
	case s := <-c:
		t.Errorf("%v arrived on %s", s, what)
	default:
	}
}

func handler(t *testing.T, s syscall.Signal) uint64 {
	t.Helper()
	a, err := sigaction.Get(s)
	if err != nil {
		t.Fatal(err)
	}
	return a.Handler
}

// TestNotifyAndStop: caught signals come on the channel (SIGTERM's
// default in the runtime would end the test), by the relay and not by
// the runtime's handler; Stop puts the runtime's handler back exactly.
func TestNotifyAndStop(t *testing.T) {
	runtimeHandler := handler(t, syscall.SIGTERM)
	c := make(chan os.Signal, 4)
	if err := Notify(c, syscall.SIGTERM, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if h := handler(t, syscall.SIGTERM); h != uint64(relayAddr()) {
		t.Fatalf("SIGTERM's handler is %#x, want the relay %#x", h, relayAddr())
	}
	unix.Kill(os.Getpid(), unix.SIGTERM)
	receive(t, c, syscall.SIGTERM)
	unix.Kill(os.Getpid(), unix.SIGUSR2)
	receive(t, c, syscall.SIGUSR2)
	Stop(c)
	if h := handler(t, syscall.SIGTERM); h != runtimeHandler {
		t.Errorf("after Stop SIGTERM's handler is %#x, want the runtime's %#x", h, runtimeHandler)
	}
	// The runtime's handling is whole again: os/signal gets it.
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGUSR2)
	defer signal.Stop(again)
	unix.Kill(os.Getpid(), unix.SIGUSR2)
	receive(t, again, syscall.SIGUSR2)
	nothingOn(t, c, "the stopped channel")
}

// TestAnyThread: a signal sent to one thread of the process (tgkill: the
// one a locked goroutine runs on), not to the process, is relayed too.
func TestAnyThread(t *testing.T) {
	c := make(chan os.Signal, 4)
	if err := Notify(c, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	defer Stop(c)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGUSR1)
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	receive(t, c, syscall.SIGUSR1)
}

// TestMovesToNewChannel: a signal caught again for another channel goes
// there, and the first channel's Stop leaves it caught.
func TestMovesToNewChannel(t *testing.T) {
	a, b := make(chan os.Signal, 1), make(chan os.Signal, 1)
	if err := Notify(a, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := Notify(b, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	defer Stop(b)
	Stop(a)
	unix.Kill(os.Getpid(), unix.SIGUSR1)
	receive(t, b, syscall.SIGUSR1)
	nothingOn(t, a, "the first channel")
}

// TestRefused: what cannot be caught leaves every handler as it was, the
// others of the same call included.
func TestRefused(t *testing.T) {
	before := handler(t, syscall.SIGUSR1)
	c := make(chan os.Signal, 1)
	if err := Notify(c, syscall.SIGUSR1, syscall.SIGKILL); err == nil {
		t.Error("SIGKILL was caught")
	}
	if err := Notify(c, syscall.SIGUSR1, syscall.Signal(65)); err == nil {
		t.Error("signal 65 was caught")
	}
	if err := Notify(nil, syscall.SIGUSR1); err == nil {
		t.Error("a nil channel was taken")
	}
	// An ignored signal has no handler of the runtime's to take the place
	// of (nohup's SIGHUP): refused, and left ignored.
	saved, err := sigaction.Get(syscall.SIGUSR2)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigaction.Set(syscall.SIGUSR2, sigaction.Action{Handler: sigaction.IGN}); err != nil {
		t.Fatal(err)
	}
	defer sigaction.Set(syscall.SIGUSR2, saved)
	if err := Notify(c, syscall.SIGUSR1, syscall.SIGUSR2); err == nil {
		t.Error("an ignored SIGUSR2 was caught")
	}
	if h := handler(t, syscall.SIGUSR2); h != sigaction.IGN {
		t.Errorf("SIGUSR2's handler is %#x after the refusal, want SIG_IGN", h)
	}
	if h := handler(t, syscall.SIGUSR1); h != before {
		t.Errorf("SIGUSR1's handler is %#x after the refusals, want %#x", h, before)
	}
}

// TestPipeNeverBlocks: the relay writes to a non-blocking pipe, so that a
// full one drops a signal rather than hang the thread it came to; and
// the pipe is not inherited by a program started.
func TestPipeNeverBlocks(t *testing.T) {
	c := make(chan os.Signal, 1)
	if err := Notify(c, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	defer Stop(c)
	flags, err := unix.FcntlInt(uintptr(pipeFD), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Error("the relay's pipe blocks")
	}
	fdFlags, err := unix.FcntlInt(uintptr(pipeFD), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fdFlags&unix.FD_CLOEXEC == 0 {
		t.Error("the relay's pipe would be inherited")
	}
}
