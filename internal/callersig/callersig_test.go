package callersig

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestCatch: once enabled is closed, a signal of the set arrives on the
// channel instead of taking its default action (SIGUSR1's ends the
// process).
func TestCatch(t *testing.T) {
	c, enabled := Catch([]os.Signal{syscall.SIGUSR1})
	defer signal.Stop(c)
	select {
	case <-enabled:
	case <-time.After(10 * time.Second):
		t.Fatal("the catch was not enabled within 10 s")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-c:
		if s != syscall.SIGUSR1 {
			t.Errorf("caught %v, want SIGUSR1", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR1 did not arrive within 10 s")
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
