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

// What is read of a connection's first bytes to find its server name.
const (
	sniffTimeout  = 10 * time.Second // from the first byte to the name
	maxClientHelo = 64 << 10         // crypto/tls' own bound on a handshake message
	maxHTTPHead   = 16 << 10
)

// serverName is the name a connection's first bytes ask for: kind "SNI"
// (a TLS ClientHello) or "Host" (an HTTP/1 request); kind "" when they
// are neither.
type serverName struct{ kind, name string }

// httpMethods start a request line.
var httpMethods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "CONNECT ", "OPTIONS ", "TRACE ", "PATCH "}

// errNameSeen stops crypto/tls once the ClientHello is parsed.
var errNameSeen = errors.New("name seen")

// sniff reads c's first bytes until they show a TLS SNI or an HTTP Host,
// or that they are neither. It returns every byte it read, to be sent on.
// A ClientHello without SNI, a malformed one, or a request without Host
// is an error: a name check that cannot be made is not passed.
func sniff(c net.Conn) (serverName, []byte, error) {
	var seen bytes.Buffer
	br := bufio.NewReaderSize(io.TeeReader(c, &seen), 4096)
	if _, err := br.Peek(1); err != nil {
		return serverName{}, seen.Bytes(), nil // nothing sent: nothing to check
	}
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	defer c.SetReadDeadline(time.Time{})
	b, _ := br.Peek(br.Buffered())
	if b[0] == 0x16 { // a TLS handshake record
		name, err := clientHelloName(io.LimitReader(br, maxClientHelo))
		return serverName{"SNI", name}, seen.Bytes(), err
	}
	if !maybeHTTP(br) {
		return serverName{}, seen.Bytes(), nil
	}
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(br, maxHTTPHead)))
	if err != nil {
		return serverName{}, nil, fmt.Errorf("an HTTP request whose Host could not be read (%v)", err)
	}
	host := req.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		return serverName{}, nil, errors.New("an HTTP request without a Host header")
	}
	return serverName{"Host", host}, seen.Bytes(), nil
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
