package callersig

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestNotify: a signal of the set arrives on the channel instead of
// taking its default action (SIGTERM's ends the process); after Stop it
// no longer does, and os/signal has it again.
func TestNotify(t *testing.T) {
	c := make(chan os.Signal, 4)
	Notify(c, syscall.SIGTERM, syscall.SIGUSR1)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-c:
			if s != sig {
				t.Errorf("caught %v, want %v", s, sig)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v did not arrive within 10 s", sig)
		}
	}
	Stop(c)
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGUSR1)
	defer signal.Stop(again)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR1 did not reach os/signal after Stop")
	}
	select {
	case s := <-c:
		t.Errorf("%v arrived on the stopped channel", s)
	default:
	}
}

// TestForwardedByCaller: a signal the caller ignores (nohup's SIGHUP) is
// left ignored, not caught.
func TestForwardedByCaller(t *testing.T) {
	if !slices.Contains(ForwardedByCaller(), os.Signal(syscall.SIGHUP)) {
		t.Fatalf("SIGHUP is not forwarded while not ignored: %v", ForwardedByCaller())
	}
	signal.Ignore(syscall.SIGHUP)
	defer signal.Reset(syscall.SIGHUP)
	got := ForwardedByCaller()
	if slices.Contains(got, os.Signal(syscall.SIGHUP)) {
		t.Errorf("SIGHUP is forwarded while ignored: %v", got)
	}
	if len(got) != len(Forwarded)-1 {
		t.Errorf("forwarded %v, want all of %v but SIGHUP", got, Forwarded)
	}
}
