package netstack

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// What is read of a connection to find the names it asks for.
const (
	sniffTimeout  = 10 * time.Second // from a message's first byte to its name
	maxClientHelo = 64 << 10         // crypto/tls' own bound on a handshake message
	maxHTTPHead   = 16 << 10         // one request's line and headers
)

// httpMethods start a request line; PRI is HTTP/2's preface (h2c), which
// has no Host to check and is refused.
var httpMethods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "CONNECT ", "OPTIONS ", "TRACE ", "PATCH ", "PRI "}

// errNameSeen stops crypto/tls once the ClientHello is parsed.
var errNameSeen = errors.New("name seen")

// nameError is a name check that refused a connection: what was asked
// for (kind SNI or Host, and the name; "" when it could not be read) and
// why.
type nameError struct {
	kind, name string
	err        error
}

func (e *nameError) Error() string {
	if e.name == "" {
		return e.err.Error()
	}
	return e.kind + " " + e.name + ": " + e.err.Error()
}

// forwardChecked copies what the client (in) sends to the server (out),
// checking the names it asks for with check: a TLS ClientHello's SNI, or
// the Host of every HTTP/1 request (keep-alive and pipelined ones too: a
// second request must not name another host on the same address). Other
// protocols pass unchecked. Nothing of a refused message is sent on; the
// error is a *nameError then. A name check that cannot be made (no SNI, no
// Host, a malformed message) refuses.
func forwardChecked(in io.Reader, out io.Writer, deadline func(time.Time), check func(string) error) error {
	var seen bytes.Buffer // read from in, not yet sent on
	lim := &headLimit{r: io.TeeReader(in, &seen), left: -1}
	br := bufio.NewReaderSize(lim, 4096)
	// passThrough sends on everything read, then copies the rest.
	passThrough := func() error {
		if _, err := out.Write(seen.Bytes()); err != nil {
			return err
		}
		seen.Reset()
		_, err := io.Copy(out, in)
		return err
	}
	if _, err := br.Peek(1); err != nil {
		return nil // closed before sending anything
	}
	b, _ := br.Peek(br.Buffered())
	switch {
	case b[0] == 0x16: // a TLS handshake record
		deadline(time.Now().Add(sniffTimeout))
		name, err := clientHelloName(io.LimitReader(br, maxClientHelo))
		deadline(time.Time{})
		if err == nil {
			err = check(name)
		}
		if err != nil {
			return &nameError{"SNI", name, err}
		}
		return passThrough()
	case !maybeHTTP(br):
		return passThrough()
	}
	// sendConsumed sends on what the parser has consumed (not what it
	// has read ahead: that may be the next request, not checked yet).
	sendConsumed := func() error {
		_, err := out.Write(seen.Next(seen.Len() - br.Buffered()))
		return err
	}
	body := make([]byte, 32<<10)
	for {
		if _, err := br.Peek(1); err != nil {
			return nil // the client is done
		}
		lim.left = maxHTTPHead
		deadline(time.Now().Add(sniffTimeout))
		req, err := http.ReadRequest(br)
		deadline(time.Time{})
		lim.left = -1
		if err != nil {
			return &nameError{"Host", "", fmt.Errorf("an HTTP request whose Host could not be read (%v)", err)}
		}
		host := req.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			return &nameError{"Host", "", errors.New("an HTTP request without a Host header")}
		}
		if err := check(host); err != nil {
			return &nameError{"Host", host, err}
		}
		if err := sendConsumed(); err != nil {
			return err
		}
		if req.Method == http.MethodConnect || req.Header.Get("Upgrade") != "" {
			// A tunnel or another protocol from here on (WebSocket):
			// no more requests to check.
			return passThrough()
		}
		for {
			n, err := req.Body.Read(body)
			if n > 0 {
				if err := sendConsumed(); err != nil {
					return err
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		if err := sendConsumed(); err != nil {
			return err
		}
	}
}

// headLimit fails a read once more than left bytes were read (left < 0:
// no limit), bounding one request's head.
type headLimit struct {
	r    io.Reader
	left int
}

func (l *headLimit) Read(b []byte) (int, error) {
	if l.left == 0 {
		return 0, errors.New("request head longer than 16 KiB")
	}
	if l.left > 0 && len(b) > l.left {
		b = b[:l.left]
	}
	n, err := l.r.Read(b)
	if l.left > 0 {
		l.left -= n
	}
	return n, err
}

// maybeHTTP says whether the first bytes start an HTTP request line; it
// waits for more only while they are a method's prefix.
func maybeHTTP(br *bufio.Reader) bool {
	for n := 1; n <= len("OPTIONS "); n++ {
		b, err := br.Peek(n)
		if err != nil {
			return false
		}
		prefix := false
		for _, m := range httpMethods {
			if strings.HasPrefix(string(b), m) {
				return true
			}
			prefix = prefix || strings.HasPrefix(m, string(b))
		}
		if !prefix {
			return false
		}
	}
	return false
}

// clientHelloName parses a ClientHello with crypto/tls and returns its
// SNI.
func clientHelloName(r io.Reader) (string, error) {
	var name string
	var parsed bool
	err := tls.Server(readOnlyConn{r}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name, parsed = h.ServerName, true
			return nil, errNameSeen
		},
	}).Handshake()
	switch {
	case !parsed:
		return "", fmt.Errorf("a TLS handshake without a readable ClientHello (%v)", err)
	case name == "":
		return "", errors.New("a TLS ClientHello without a server name (SNI)")
	}
	return name, nil
}

// readOnlyConn feeds crypto/tls the client's bytes; what it would answer
// is dropped (it never gets that far: errNameSeen).
type readOnlyConn struct{ r io.Reader }

func (c readOnlyConn) Read(b []byte) (int, error)     { return c.r.Read(b) }
func (readOnlyConn) Write(b []byte) (int, error)      { return len(b), nil }
func (readOnlyConn) Close() error                     { return nil }
func (readOnlyConn) LocalAddr() net.Addr              { return nil }
func (readOnlyConn) RemoteAddr() net.Addr             { return nil }
func (readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(time.Time) error { return nil }
