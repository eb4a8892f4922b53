package parent

import (
	"testing"

	"sandbox/netns/driver"
)

// fakeNet is a started network driver that only records its Close.
type fakeNet struct {
	driver.ParentDriver
	closed int
}

func (f *fakeNet) Close() { f.closed++ }

func pendingFor(cfg *driver.Config) *fakeNet {
	f := &fakeNet{}
	done := make(chan struct{})
	close(done)
	pendingNet.Store(&earlyNet{done: done, cfg: cfg, d: f})
	return f
}

// TestEarlyNetwork: the builtin helper started while the run is planned
// goes to the run whose plan it was started for, untouched; a run with
// another plan stops it and starts its own; a run that ends before
// taking it (DiscardEarly) stops it: none outlives the run.
func TestEarlyNetwork(t *testing.T) {
	a, b := &driver.Config{}, &driver.Config{}

	f := pendingFor(a)
	d, ok, err := takeEarlyNetwork(a)
	if !ok || err != nil || d != f || f.closed != 0 {
		t.Fatalf("the plan's own early network: %v, %v, %v (closed %d times)", d, ok, err, f.closed)
	}
	if pendingNet.Load() != nil {
		t.Fatal("the early network is still pending once taken")
	}

	f = pendingFor(a)
	if d, ok, _ := takeEarlyNetwork(b); ok || d != nil || f.closed != 1 {
		t.Fatalf("another plan's early network: %v, %v (closed %d times, want 1)", d, ok, f.closed)
	}

	f = pendingFor(a)
	DiscardEarly()
	if f.closed != 1 || pendingNet.Load() != nil {
		t.Fatalf("DiscardEarly closed the early network %d times (want 1), pending %v", f.closed, pendingNet.Load())
	}
	if _, ok, _ := takeEarlyNetwork(a); ok {
		t.Fatal("a discarded early network was taken")
	}
}
