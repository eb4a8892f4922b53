package proto

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// raw is a body with a binary form: its bytes as they are.
type raw []byte

func (r raw) MarshalBinary() ([]byte, error) { return r, nil }

func (r *raw) UnmarshalBinary(b []byte) error {
	*r = append(raw(nil), b...)
	return nil
}

// A binary body arrives byte for byte, with its descriptors, inline or
// (over MaxSize) in a sealed memfd; Decode gives it only to a type with a
// binary form.
func TestSendBinary(t *testing.T) {
	for _, size := range []int{0, 100, MaxSize + 1} {
		a, b, err := Pair()
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		body := make(raw, size)
		for i := range body {
			body[i] = byte(i * 7)
		}
		if err := a.SendBinary(KindConfig, body, int(f.Fd())); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		env, fds, err := b.Recv()
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if env.Kind != KindConfig || !env.Binary || len(fds) != 1 {
			t.Fatalf("%d bytes: got %q (binary %v) with %d fds", size, env.Kind, env.Binary, len(fds))
		}
		CloseFDs(fds)
		var got raw
		if err := env.Decode(&got); err != nil || !bytes.Equal(got, body) {
			t.Errorf("%d bytes: decoded %d bytes, %v", size, len(got), err)
		}
		var m map[string]int
		if err := env.Decode(&m); err == nil || !strings.Contains(err.Error(), "no binary form") {
			t.Errorf("%d bytes: a binary body decoded into a map: %v", size, err)
		}
		f.Close()
		a.Close()
		b.Close()
	}
}

// A binary datagram cut short, with unknown flags, or with a body both
// inline and out of band is refused, its descriptors closed.
func TestBadBinaryRefused(t *testing.T) {
	for _, d := range [][]byte{
		{binaryMark},
		{binaryMark, 6},
		{binaryMark, 6, 'c', 'o', 'n', 'f', 'i', 'g'},
		{binaryMark, 1, 'x', 0x80},
		{binaryMark, 1, 'x', binaryBlob, 'y'},
		{binaryMark, 1, 'x', binaryBlob}, // its descriptor missing
	} {
		a, b, err := Pair()
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Sendmsg(int(a.File().Fd()), d, nil, nil, 0); err != nil {
			t.Fatal(err)
		}
		if env, _, err := b.Recv(); err == nil {
			t.Errorf("%q: accepted as %q", d, env.Kind)
		} else if errors.Is(err, ErrClosed) {
			t.Errorf("%q: %v", d, err)
		}
		a.Close()
		b.Close()
	}
}

// SendBinary and Send share the framing: a JSON body still arrives as JSON.
func TestBinaryBesideJSON(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	a.SendBinary(KindExit, raw("\x00{\"x\":1}"))
	a.Send(KindExit, map[string]int{"x": 1})
	for i, want := range []bool{true, false} {
		env, _, err := b.Recv()
		if err != nil || env.Binary != want {
			t.Fatalf("message %d: binary %v, want %v (%v)", i, env.Binary, want, err)
		}
	}
}
