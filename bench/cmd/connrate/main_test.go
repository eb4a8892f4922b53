package main

import (
	"net"
	"testing"
	"time"
)

// TestRoundTrips: against the server on the loopback, a connection works
// whoever closes first, an upload's body is read whole (the answer comes
// only after Content-Length bytes, some of them in the head's read), and
// a bad Content-Length gets no answer.
func TestRoundTrips(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go accept(ln)
	target := ln.Addr().String()
	for _, line := range []string{clientCloses, serverCloses} {
		req := []byte(line + "HTTP/1.0\r\nHost: allowed.test\r\n\r\n")
		for i := 0; i < 20; i++ {
			if err := once(target, req, line == serverCloses, 5*time.Second); err != nil {
				t.Fatalf("%q, connection %d: %v", line, i, err)
			}
		}
	}
	for _, n := range []int64{0, 1, 300, 1 << 20} {
		if _, err := sendUpload(target, "allowed.test", n, 10*time.Second); err != nil {
			t.Errorf("upload of %d bytes: %v", n, err)
		}
	}
	c, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(uploadLine + "HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n"))
	if n, _ := c.Read(make([]byte, 100)); n != 0 {
		t.Errorf("a negative Content-Length was answered")
	}
}

func TestDiscardBody(t *testing.T) {
	head := []byte(uploadLine + "HTTP/1.1\r\nContent-Length: 10\r\n\r\nabcd")
	r := &countReader{}
	if err := discardBody(r, head); err != nil || r.n != 6 {
		t.Errorf("discardBody read %d more bytes (%v), want the 6 not in the head", r.n, err)
	}
	if err := discardBody(r, []byte(uploadLine+"HTTP/1.1\r\n\r\n")); err == nil {
		t.Errorf("no Content-Length: no error")
	}
}

type countReader struct{ n int }

func (r *countReader) Read(b []byte) (int, error) {
	r.n += len(b)
	return len(b), nil
}
