package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	defer func(l int64) { blobLimit = l }(blobLimit)
	blobLimit = 2 * MaxSize
	err = a.Send(KindConfig, strings.Repeat("x", int(blobLimit)+1))
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversize message: %v", err)
	}
}

// A body over MaxSize (a long command line) goes in a sealed memfd; the
// descriptors sent with it are kept in order.
func TestLargeMessageOutOfBand(t *testing.T) {
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
	args := make([]string, 300000) // ~2 MB of arguments
	for i := range args {
		args[i] = fmt.Sprint(i)
	}
	done := make(chan error, 1)
	go func() { done <- a.Send(KindConfig, args, int(f.Fd())) }()
	env, fds, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	CloseFDs(fds)
	var got []string
	if err := env.Decode(&got); err != nil || len(got) != len(args) || got[len(got)-1] != args[len(args)-1] {
		t.Fatalf("got %d arguments, %v", len(got), err)
	}
	if len(fds) != 1 || env.Blob {
		t.Errorf("want the one descriptor sent and the body in place, got %d fds, blob %v", len(fds), env.Blob)
	}
}

// Recv takes a body only from a sealed memfd: an ordinary file (which
// could change, or block on a FIFO) is refused.
func TestBlobMustBeSealedMemfd(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	f, err := os.CreateTemp(t.TempDir(), "blob")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(`"x"`)
	raw, _ := json.Marshal(Envelope{Kind: KindConfig, Blob: true})
	if err := unix.Sendmsg(int(a.File().Fd()), raw, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Recv(); err == nil || !strings.Contains(err.Error(), "sealed memfd") {
		t.Errorf("a blob in a plain file: want refused, got %v", err)
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

// Recv bounds what it takes from a blob by its size, before reading it.
func TestBlobOverLimitRefused(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Send(KindConfig, strings.Repeat("z", MaxSize+10)); err != nil {
		t.Fatal(err)
	}
	defer func(l int64) { blobLimit = l }(blobLimit)
	blobLimit = MaxSize
	if _, _, err := b.Recv(); err == nil || !strings.Contains(err.Error(), "over the") {
		t.Errorf("a blob over the limit: want refused, got %v", err)
	}
}

// A peer that reports an error and exits while a message of ours is still
// unread (the builtin network helper failing to publish a port while the
// parent hands it the tap): its message must still be read, not lost to
// the ECONNRESET the kernel reports first, whether the peer closes before
// Recv or between Recv's peek at the message's size and its read of the
// message (the window CI hit: "the builtin network stack ended (exit
// status 1): " with the helper's error lost).
func TestRecvAfterPeerClosedWithUnread(t *testing.T) {
	for _, afterThePeek := range []bool{false, true} {
		a, b, err := Pair()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := b.Send(KindError, "port 8080 is in use"); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(KindTap, nil); err != nil {
			t.Fatal(err)
		}
		if afterThePeek {
			afterPeek = func() {
				afterPeek = nil
				b.Close()
			}
		} else {
			b.Close()
		}
		env, _, err := a.Recv()
		afterPeek = nil
		if err != nil {
			t.Fatalf("closed after the peek %v: Recv: %v (the peer's message was lost)", afterThePeek, err)
		}
		var msg string
		if env.Kind != KindError || env.Decode(&msg) != nil || msg != "port 8080 is in use" {
			t.Fatalf("closed after the peek %v: got %v %q", afterThePeek, env.Kind, msg)
		}
		if _, _, err := a.Recv(); !errors.Is(err, ErrClosed) {
			t.Fatalf("closed after the peek %v: after the last message: %v, want ErrClosed", afterThePeek, err)
		}
	}
}

// TestEnvelopeMarshal: the envelope written by hand is what json.Marshal
// writes for it, for bodies encoded by json.Marshal.
func TestEnvelopeMarshal(t *testing.T) {
	for i, body := range []any{nil, map[string]any{"a": 1, "b": []string{"x<y", "\u2028", "q\"\\"}}, "s", 12, nil} {
		// Quoted as it is (quoteKind's lower-case kinds) or by json.Marshal.
		env := Envelope{Kind: []Kind{"k\"<ind", "config"}[i%2]}
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			env.Body = b
		}
		for _, blob := range []bool{false, true} {
			env.Blob = blob
			want, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			got, err := env.marshal()
			if err != nil || string(got) != string(want) {
				t.Errorf("marshal(%+v) = %s, %v; json.Marshal: %s", env, got, err, want)
			}
		}
	}
}
