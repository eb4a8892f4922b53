package netstack

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// forward runs forwardChecked on what send writes, allowing the names in
// allowed; it returns what was sent on and the error.
func forward(t *testing.T, send func(c net.Conn)) (string, error) {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		defer client.Close()
		client.SetDeadline(time.Now().Add(300 * time.Millisecond))
		send(client)
	}()
	var out bytes.Buffer
	server.SetDeadline(time.Now().Add(5 * time.Second))
	err := forwardChecked(server, &out, func(d time.Time) {
		if d.IsZero() {
			d = time.Now().Add(5 * time.Second) // the test's own bound
		}
		server.SetReadDeadline(d)
	}, func(name string) error {
		if strings.EqualFold(name, "allowed.test") {
			return nil
		}
		return fmt.Errorf("no rule allows %s", name)
	})
	return out.String(), err
}

func write(parts ...string) func(net.Conn) {
	return func(c net.Conn) {
		for _, p := range parts {
			c.Write([]byte(p))
		}
	}
}

func tlsHello(name string) func(net.Conn) {
	return func(c net.Conn) {
		tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake()
	}
}

const (
	getAllowed = "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
	getEvil    = "GET /x HTTP/1.1\r\nHost: evil.test:80\r\n\r\n"
	postBody   = "POST /up HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n\r\nhello"
	chunked    = "POST /c HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
)

func TestForwardChecked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		send    func(net.Conn)
		sent    string // what must be sent on ("*": anything non-empty)
		refused string // the nameError's text, "" for none
	}{
		{"tls allowed", tlsHello("allowed.test"), "*", ""},
		{"tls other name", tlsHello("shared.test"), "", "SNI shared.test: no rule allows shared.test"},
		{"tls without sni", tlsHello("198.18.1.10"), "", "without a server name"},
		{"tls garbage", write("\x16\x03\x01\x00\x05hello"), "", "ClientHello"},
		{"http allowed", write(getAllowed), getAllowed, ""},
		{"http other host", write(getEvil), "", "Host evil.test: no rule"},
		{"http keep-alive: the second request's host", write(getAllowed, getEvil), getAllowed, "Host evil.test"},
		{"http pipelined in one write", write(getAllowed + getEvil), getAllowed, "Host evil.test"},
		{"http split request line", write("PO", "ST /up HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n\r\nhello"), postBody, ""},
		{"bodies and a second request", write(postBody+chunked, getAllowed), postBody + chunked + getAllowed, ""},
		{"body then another host", write(postBody + getEvil), postBody, "Host evil.test"},
		{"absolute form names the host", write("GET http://evil.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"), "", "Host evil.test"},
		{"http without host", write("GET / HTTP/1.0\r\n\r\n"), "", "without a Host"},
		{"h2c preface", write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "", "HTTP request"},
		{"malformed header", write("GET / HTTP/1.1\r\nHost allowed.test\r\n\r\n"), "", "could not be read"},
		{"head too long", write("GET / HTTP/1.1\r\nHost: allowed.test\r\nX: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"), "", "could not be read"},
		{"upgrade: the rest passes", write("GET /ws HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "\x81\x05frame"),
			"GET /ws HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05frame", ""},
		{"ssh passes", write("SSH-2.0-OpenSSH_9.2\r\n", "more"), "SSH-2.0-OpenSSH_9.2\r\nmore", ""},
		{"binary passes", write("\x00\x01\x02"), "\x00\x01\x02", ""},
		{"nothing", write(), "", ""},
	} {
		sent, err := forward(t, tc.send)
		var ne *nameError
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.refused != "" && (!errors.As(err, &ne) || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s: error %v, want a refusal containing %q", tc.name, err, tc.refused)
		}
		if tc.sent == "*" && sent == "" || tc.sent != "*" && sent != tc.sent {
			t.Errorf("%s: sent on %q, want %q", tc.name, sent, tc.sent)
		}
	}
}
