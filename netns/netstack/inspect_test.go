package netstack

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// clientSends runs send on the client end of a pipe and sniffs the server
// end.
func clientSends(t *testing.T, send func(c net.Conn)) (serverName, []byte, error) {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		defer client.Close()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		send(client)
	}()
	server.SetDeadline(time.Now().Add(5 * time.Second))
	return sniff(server)
}

func tlsHello(name string) func(net.Conn) {
	return func(c net.Conn) {
		tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake()
	}
}

func write(s string) func(net.Conn) {
	return func(c net.Conn) { c.Write([]byte(s)) }
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		send     func(net.Conn)
		kind     string
		host     string
		errWords string
	}{
		{"tls", tlsHello("allowed.test"), "SNI", "allowed.test", ""},
		{"tls without sni", tlsHello("198.18.1.10"), "SNI", "", "without a server name"},
		{"not tls", write("\x16\x03\x01\x00\x05hello"), "SNI", "", "ClientHello"},
		{"http", write("GET / HTTP/1.1\r\nHost: allowed.test:8080\r\nUser-Agent: x\r\n\r\n"), "Host", "allowed.test", ""},
		{"http split", func(c net.Conn) { c.Write([]byte("PO")); c.Write([]byte("ST /x HTTP/1.1\r\nHost: a.test\r\n\r\nbody")) }, "Host", "a.test", ""},
		{"http no host", write("GET / HTTP/1.0\r\n\r\n"), "", "", "without a Host"},
		{"http bad", write("GET / HTTP/1.1\r\nHost a.test\r\n\r\n"), "", "", "Host could not be read"},
		{"ssh", write("SSH-2.0-OpenSSH_9.2\r\n"), "", "", ""},
		{"binary", write("\x00\x01\x02"), "", "", ""},
		{"nothing", func(net.Conn) {}, "", "", ""},
	} {
		got, first, err := clientSends(t, tc.send)
		if tc.errWords != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errWords) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.errWords)
			}
			continue
		}
		if err != nil || got.kind != tc.kind || got.name != tc.host {
			t.Errorf("%s: sniff = %+v, %v; want %q %q", tc.name, got, err, tc.kind, tc.host)
		}
		if tc.kind != "" && len(first) == 0 {
			t.Errorf("%s: the bytes read are not returned", tc.name)
		}
	}
	// Every byte read is returned, to be sent on.
	req := "GET / HTTP/1.1\r\nHost: a.test\r\n\r\nand more"
	_, first, err := clientSends(t, write(req))
	if err != nil || !strings.HasPrefix(req, string(first)) || !strings.Contains(string(first), "\r\n\r\n") {
		t.Errorf("returned %q, %v; want a prefix of the request holding its head", first, err)
	}
}
