// Command connrate measures new TCP connections per second, and the
// throughput of an HTTP upload, for bench/egress.sh: a client makes N
// connections one after another, each a connect, a small HTTP/1.0 request
// (so that a policy's Host check sees it), the server's short answer, and
// close; a server answers them.
//
//	connrate serve -addr IP:PORT [-for 30m]
//	connrate client -addr HOST:PORT [-host NAME] [-n 1000] [-warmup 20] [-timeout 5s] [-closer client|server]
//	connrate upload -addr HOST:PORT [-host NAME] [-mb 1024] [-timeout 2m]
//
// The client resolves HOST once (through the system's resolv.conf, as any
// client would), then prints one JSON line: {"n":N,"seconds":S,"per_second":R,…}.
// upload sends one HTTP/1.1 POST of -mb MiB (the server drops the body) and
// prints {"bytes":N,"seconds":S,"gbps":G,…}.
// Every read, write, dial and the server's lifetime are bounded.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	answer  = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
	maxHead = 4096
	// The request line asks who closes first: the client (it closes once
	// it has the answer; the server waits for that) or the server (it
	// closes after answering; the client reads to the end).
	clientCloses = "GET /connrate/client-closes "
	serverCloses = "GET /connrate/server-closes "
	// An upload: an HTTP/1.1 POST with Content-Length, its body discarded.
	uploadLine = "POST /connrate/upload "
	maxUpload  = 64 << 30
	uploadTime = 10 * time.Minute // the server's bound on one upload
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	case "upload":
		err = upload(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "connrate: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: connrate serve -addr IP:PORT [-for 30m] | connrate client -addr HOST:PORT [-host NAME] [-n N] [-warmup N] [-timeout D] [-closer client|server] | connrate upload -addr HOST:PORT [-host NAME] [-mb N] [-timeout D]")
	os.Exit(2)
}

// serve answers every connection: read the request's head (bounded), write
// the answer, close. It stops after -for.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	life := fs.Duration("for", 30*time.Minute, "stop after this long")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	time.AfterFunc(*life, func() { ln.Close() })
	return accept(ln)
}

// accept answers ln's connections until it is closed.
func accept(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		go handle(c)
	}
}

func handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	head, err := readHead(c)
	if err != nil {
		return
	}
	if bytes.HasPrefix(head, []byte(uploadLine)) {
		c.SetDeadline(time.Now().Add(uploadTime))
		if err := discardBody(c, head); err != nil {
			return
		}
	}
	if _, err := io.WriteString(c, answer); err != nil {
		return
	}
	if !bytes.HasPrefix(head, []byte(serverCloses)) {
		// The client closes first: wait (bounded) for its end.
		io.Copy(io.Discard, io.LimitReader(c, maxHead))
	}
}

// discardBody reads and drops an upload's body: Content-Length bytes, of
// which those after the head's end are already in head.
func discardBody(r io.Reader, head []byte) error {
	end := bytes.Index(head, []byte("\r\n\r\n")) + 4
	var n int64 = -1
	for _, l := range strings.Split(string(head[:end]), "\r\n") {
		if v, ok := strings.CutPrefix(strings.ToLower(l), "content-length: "); ok {
			n, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	n -= int64(len(head) - end)
	if n < 0 || n > maxUpload {
		return errors.New("bad Content-Length")
	}
	_, err := io.CopyN(io.Discard, r, n)
	return err
}

// readHead reads until the end of an HTTP head ("\r\n\r\n"), at most
// maxHead bytes.
func readHead(r io.Reader) ([]byte, error) {
	var head []byte
	buf := make([]byte, 512)
	for len(head) < maxHead {
		n, err := r.Read(buf)
		head = append(head, buf[:n]...)
		if bytes.Contains(head, []byte("\r\n\r\n")) {
			return head, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, errors.New("request head too long")
}

// client makes -warmup untimed connections, then -n timed ones; the rate
// counts those that succeeded.
func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "HOST:PORT of the server")
	host := fs.String("host", "", "the request's Host header (default: HOST)")
	n := fs.Int("n", 1000, "timed connections")
	warmup := fs.Int("warmup", 20, "untimed connections first")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of each connection")
	closer := fs.String("closer", "client", "who closes first: client or server")
	fs.Parse(args)
	hostName, port, err := net.SplitHostPort(*addr)
	if err != nil || *n < 1 || *warmup < 0 || *n > 1000000 || (*closer != "client" && *closer != "server") {
		usage()
	}
	if *host == "" {
		*host = hostName
	}
	target, err := resolve(hostName, port, *timeout)
	if err != nil {
		return err
	}
	line := clientCloses
	if *closer == "server" {
		line = serverCloses
	}
	req := []byte(line + "HTTP/1.0\r\nHost: " + *host + "\r\n\r\n")
	serverFirst := *closer == "server"
	for i := 0; i < *warmup; i++ {
		if err := once(target, req, serverFirst, *timeout); err != nil {
			return fmt.Errorf("warm-up connection %d to %s: %w", i+1, target, err)
		}
	}
	// A failed connection is counted and the run goes on (its time stays
	// in the total); more than 1 % of them, at least 5, ends it.
	maxFailed := max(5, *n/100)
	failed, firstErr := 0, ""
	start := time.Now()
	for i := 0; i < *n; i++ {
		if err := once(target, req, serverFirst, *timeout); err != nil {
			failed++
			if firstErr == "" {
				firstErr = fmt.Sprintf("connection %d: %v", i+1, err)
			}
			if failed > maxFailed {
				return fmt.Errorf("%d of %d connections to %s failed, the first: %s", failed, i+1, target, firstErr)
			}
		}
	}
	secs := time.Since(start).Seconds()
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "connrate: %d of %d connections to %s failed, the first: %s\n", failed, *n, target, firstErr)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"n": *n, "seconds": secs, "per_second": float64(*n-failed) / secs, "target": target,
		"failed": failed, "first_error": firstErr,
	})
}

// once is one connection: connect, request, the whole answer, close
// (after the server's close when serverFirst).
func once(target string, req []byte, serverFirst bool, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", target, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		return err
	}
	got := make([]byte, len(answer))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if serverFirst {
		rest, err := io.ReadAll(io.LimitReader(c, int64(len(answer))))
		if err != nil {
			return err
		}
		got = append(got, rest...)
	}
	if string(got) != answer {
		return fmt.Errorf("unexpected answer %q", got)
	}
	return nil
}

// resolve looks host up once (IPv4) and returns IP:port.
func resolve(host, port string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", host)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", host, err)
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

// upload sends one HTTP/1.1 POST of -mb MiB and times it from the first
// byte to the server's answer: the throughput of a request whose Host a
// policy checks and whose body it must pass through.
func upload(args []string) error {
	fs := flag.NewFlagSet("upload", flag.ExitOnError)
	addr := fs.String("addr", "", "HOST:PORT of the server")
	host := fs.String("host", "", "the request's Host header (default: HOST)")
	mb := fs.Int("mb", 1024, "MiB to send")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound of the whole upload")
	fs.Parse(args)
	hostName, port, err := net.SplitHostPort(*addr)
	if err != nil || *mb < 1 || int64(*mb)<<20 > maxUpload {
		usage()
	}
	if *host == "" {
		*host = hostName
	}
	target, err := resolve(hostName, port, 5*time.Second)
	if err != nil {
		return err
	}
	n := int64(*mb) << 20
	secs, err := sendUpload(target, *host, n, *timeout)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"bytes": n, "seconds": secs, "gbps": float64(n) * 8 / secs / 1e9, "target": target,
	})
}

// sendUpload POSTs n bytes to target and returns the seconds from the
// first byte to the server's answer.
func sendUpload(target, host string, n int64, timeout time.Duration) (float64, error) {
	c, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	start := time.Now()
	if _, err := fmt.Fprintf(c, "%sHTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", uploadLine, host, n); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			return 0, fmt.Errorf("after %d of %d bytes: %w", n-left, n, err)
		}
		left -= k
	}
	got := make([]byte, len(answer))
	if _, err := io.ReadFull(c, got); err != nil {
		return 0, fmt.Errorf("the answer: %w", err)
	}
	if string(got) != answer {
		return 0, fmt.Errorf("unexpected answer %q", got)
	}
	return time.Since(start).Seconds(), nil
}
