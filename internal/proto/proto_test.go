package proto

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestRoundTripWithFD(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := a.Send(KindPTY, map[string]int{"n": 7}, int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	env, fds, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if env.Kind != KindPTY || len(fds) != 1 {
		t.Fatalf("got %v with %d fds", env.Kind, len(fds))
	}
	var body map[string]int
	if err := env.Decode(&body); err != nil || body["n"] != 7 {
		t.Errorf("body %v %v", body, err)
	}
	got := os.NewFile(uintptr(fds[0]), "received")
	defer got.Close()
	st1, _ := f.Stat()
	st2, err := got.Stat()
	if err != nil || !os.SameFile(st1, st2) {
		t.Error("the received fd is not /dev/null")
	}
}

func TestOversizeRefused(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	err = a.Send(KindConfig, strings.Repeat("x", MaxSize+1))
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversize message: %v", err)
	}
}

func TestPeerClosed(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	defer b.Close()
	if _, _, err := b.Recv(); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after the peer closed: %v, want ErrClosed", err)
	}
}

func TestLargestMessageFits(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	// Close to MaxSize once encoded: must pass the socket whole.
	big := strings.Repeat("y", MaxSize-100)
	done := make(chan error, 1)
	go func() { done <- a.Send(KindConfig, big) }()
	env, _, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var s string
	if err := env.Decode(&s); err != nil || len(s) != len(big) {
		t.Errorf("got %d bytes, %v", len(s), err)
	}
}
