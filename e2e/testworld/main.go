// Command testworld is the e2e tests' stand-in for "the internet" (issue 13):
// scripts/testworld.sh runs it as root inside the network namespace sbxworld.
// On every address it is given it serves DNS (:53 UDP and TCP, a fixed
// zone), HTTP (:80), TLS (:443, a self-signed certificate, any SNI), an SSH
// banner (:22) and UDP echo (:5300); it records every DNS query name, every
// connection, datagram, HTTP request, TLS handshake and ICMP packet it sees,
// and a control server (-control) hands the records to the tests:
// GET /queries (one name per line), GET /conns (one record per line).
// Every list and read is bounded.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	maxRecords = 50000 // per list; the oldest go first
	ttl        = 60
)

// record is a bounded list of lines.
type record struct {
	mu    sync.Mutex
	lines []string
}

func (r *record) add(format string, args ...any) {
	l := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) >= maxRecords {
		r.lines = r.lines[len(r.lines)-maxRecords/2:]
	}
	r.lines = append(r.lines, l)
}

func (r *record) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

var queries, conns record

// clean makes bytes from the network one printable, bounded field (a DNS
// name, at most 255 bytes, whole).
func clean(b []byte) string {
	if len(b) > 255 {
		b = b[:255]
	}
	s := strconv.Quote(string(b))
	return strings.ReplaceAll(s[1:len(s)-1], " ", `\x20`)
}

// ------------------------------------------------------------------- DNS

// zone answers an A question: the address, whether the name is in the zone.
func zone(name string) (net.IP, bool) {
	fixed := map[string]string{
		"allowed.test":     "198.18.1.10",
		"other.test":       "198.18.1.11",
		"shared.test":      "198.18.1.10",
		"rebind-lo.test":   "127.0.0.1",
		"rebind-meta.test": "169.254.169.254",
		"rebind-host.test": "198.18.0.1",
	}
	if a, ok := fixed[name]; ok {
		return net.ParseIP(a).To4(), true
	}
	if strings.HasSuffix(name, ".wild.test") && len(name) > len(".wild.test") {
		return net.ParseIP("198.18.1.10").To4(), true
	}
	return nil, false
}

var errMalformed = errors.New("malformed DNS message")

// answer builds the reply to one DNS query message, recording its name.
func answer(q []byte) ([]byte, error) {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil, errMalformed
	}
	// The question's name: plain labels (a query has no compression).
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil, errMalformed
		}
		n := int(q[i])
		if n == 0 {
			i++
			break
		}
		if n > 63 || i+1+n > len(q) || len(labels) > 127 {
			return nil, errMalformed
		}
		labels = append(labels, string(q[i+1:i+1+n]))
		i += 1 + n
	}
	if i+4 > len(q) {
		return nil, errMalformed
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	qend := i + 4
	name := strings.ToLower(strings.Join(labels, "."))
	queries.add("%s", clean([]byte(name)))

	ip, ok := zone(name)
	rcode := byte(0)
	if !ok {
		rcode = 3 // NXDOMAIN
	}
	out := make([]byte, 0, qend+16)
	out = append(out, q[0], q[1])
	out = append(out, 0x84|(q[2]&0x79), 0x80|rcode) // QR, AA, opcode and RD kept; RA
	out = append(out, 0, 1)                         // QDCOUNT
	an := ok && qtype == 1
	if an {
		out = append(out, 0, 1)
	} else {
		out = append(out, 0, 0)
	}
	out = append(out, 0, 0, 0, 0) // NSCOUNT, ARCOUNT
	out = append(out, q[12:qend]...)
	if an {
		out = append(out, 0xc0, 12, 0, 1, 0, 1)
		out = binary.BigEndian.AppendUint32(out, ttl)
		out = append(out, 0, 4)
		out = append(out, ip...)
	}
	return out, nil
}

func serveDNSUDP(c net.PacketConn) {
	buf := make([]byte, 4096)
	for {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			log.Printf("dns udp %s: %v", c.LocalAddr(), err)
			return
		}
		conns.add("udp %s %s %d %s", c.LocalAddr(), peer, n, clean(buf[:n]))
		if out, err := answer(buf[:n]); err == nil {
			c.WriteTo(out, peer)
		}
	}
}

func serveDNSTCP(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for range 100 {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			return
		}
		out, err := answer(msg)
		if err != nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
			return
		}
	}
}

// -------------------------------------------------------------- servers

func localIP(c net.Conn) string {
	h, _, _ := net.SplitHostPort(c.LocalAddr().String())
	return h
}

// acceptLoop records every accepted TCP connection and hands it to serve.
func acceptLoop(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			log.Printf("accept %s: %v", l.Addr(), err)
			return
		}
		conns.add("tcp %s %s", c.LocalAddr(), c.RemoteAddr())
		go serve(c)
	}
}

func serveHTTP(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(io.LimitReader(c, 64<<10))
	req, err := http.ReadRequest(r)
	if err != nil {
		return
	}
	conns.add("http %s %s host=%s path=%s", c.LocalAddr(), c.RemoteAddr(), clean([]byte(req.Host)), clean([]byte(req.URL.Path)))
	body := fmt.Sprintf("world %s host=%s\n", localIP(c), req.Host)
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

func serveTLS(cfg *tls.Config) func(net.Conn) {
	return func(raw net.Conn) {
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Server(raw, cfg)
		if err := c.Handshake(); err != nil {
			conns.add("tlsfail %s %s %s", raw.LocalAddr(), raw.RemoteAddr(), clean([]byte(err.Error())))
			return
		}
		sni := c.ConnectionState().ServerName
		conns.add("tls %s %s sni=%s", raw.LocalAddr(), raw.RemoteAddr(), clean([]byte(sni)))
		fmt.Fprintf(c, "world tls %s sni=%s\n", localIP(raw), sni)
		c.CloseWrite()
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
}

func serveBanner(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "SSH-2.0-world\r\n")
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

func serveEcho(c net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			log.Printf("echo %s: %v", c.LocalAddr(), err)
			return
		}
		conns.add("udp %s %s %d %s", c.LocalAddr(), peer, n, clean(buf[:n]))
		c.WriteTo(append([]byte("echo:"), buf[:n]...), peer)
	}
}

// watchICMP records every ICMP packet that reaches this namespace (a raw
// socket gets a copy; the kernel still answers echo requests itself).
func watchICMP() {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
	if err != nil {
		log.Printf("icmp watch: %v", err)
		return
	}
	buf := make([]byte, 65536)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			log.Printf("icmp watch: %v", err)
			return
		}
		if n < 20 {
			continue
		}
		hl := int(buf[0]&15) * 4
		if hl < 20 || n < hl+8 {
			continue
		}
		src, dst := net.IP(buf[12:16]), net.IP(buf[16:20])
		conns.add("icmp %s %s type=%d %s", dst, src, buf[hl], clean(buf[hl+8:n]))
	}
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "world.test"},
		DNSNames:     []string{"allowed.test", "*.wild.test", "other.test", "shared.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	addrs := flag.String("addrs", "198.18.0.2,198.18.1.10,198.18.1.11,198.18.1.12,169.254.169.254", "addresses to serve on, comma-separated")
	control := flag.String("control", "198.18.0.2:8080", "address of the control server")
	flag.Parse()
	log.SetPrefix("testworld: ")

	cert, err := selfSigned()
	if err != nil {
		log.Fatalf("certificate: %v", err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	for _, a := range strings.Split(*addrs, ",") {
		if net.ParseIP(a).To4() == nil {
			log.Fatalf("-addrs: %q is not an IPv4 address", a)
		}
		// One socket per address: UDP replies then leave from the address
		// the client sent to.
		for _, s := range []struct {
			port  int
			serve func(net.Conn)
		}{{53, serveDNSTCP}, {80, serveHTTP}, {443, serveTLS(tlsCfg)}, {22, serveBanner}} {
			l, err := net.Listen("tcp4", net.JoinHostPort(a, strconv.Itoa(s.port)))
			if err != nil {
				log.Fatalf("listen: %v", err)
			}
			go acceptLoop(l, s.serve)
		}
		for _, s := range []struct {
			port  int
			serve func(net.PacketConn)
		}{{53, serveDNSUDP}, {5300, serveEcho}} {
			c, err := net.ListenPacket("udp4", net.JoinHostPort(a, strconv.Itoa(s.port)))
			if err != nil {
				log.Fatalf("listen: %v", err)
			}
			go s.serve(c)
		}
	}
	go watchICMP()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /queries", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, queries.text()) })
	mux.HandleFunc("GET /conns", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, conns.text()) })
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "world\n") })
	srv := &http.Server{Addr: *control, Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	log.Printf("serving on %s, control %s", *addrs, *control)
	fmt.Fprintln(os.Stderr, "testworld: ready")
	log.Fatal(srv.ListenAndServe())
}
