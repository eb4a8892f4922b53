package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Network tests talk only to 127.0.0.0/8, the sandbox's own addresses and
// the test world (world_test.go: a network namespace scripts/testworld.sh
// makes, where the host routes 198.18.1.0/24 and 169.254.169.254), so that
// even a link-local block that fails open reaches only this machine.

var netDrivers = []string{"pasta", "slirp4netns", "builtin"}

// requireDriver fails (CI) or skips when driver d cannot run here.
func requireDriver(t testing.TB, d string) {
	t.Helper()
	escRequirePython(t)
	switch d {
	case "pasta":
		requireOrSkip(t, findHelper("pasta"), "pasta (package passt) for --net=pasta")
	case "slirp4netns":
		requireOrSkip(t, findHelper("slirp4netns"), "slirp4netns for --net=slirp4netns")
	}
	err := syscall.Access("/dev/net/tun", 6)
	requireOrSkip(t, err == nil, "/dev/net/tun readable and writable (sudo chmod 0666 /dev/net/tun)")
}

// freePort is a TCP (or UDP) port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func py(flags []string, script string) []string {
	return append(append(append([]string{"run"}, flags...), "--"), escPy, "-c", script)
}

func TestNetworkDefaultIsAuto(t *testing.T) {
	t.Parallel()
	requireDriver(t, "slirp4netns")
	r := mustRun(t, opts{}, "run", "-v", "--", "cat", "/sys/class/net/tap0/mtu")
	if strings.TrimSpace(r.stdout) != "65520" {
		t.Errorf("default run: tap0 MTU = %q, want 65520\n%s", r.stdout, r)
	}
	if !strings.Contains(r.stderr, "started the slirp4netns network driver") {
		t.Errorf("default run (auto, slirp4netns installed): -v does not report slirp4netns\n%s", r)
	}
}

// TestNetworkRootUnmapped: with no uid 0 in the sandbox (--map=single
// --uid=5), the default network is a driver that can join it, and
// --net=slirp4netns, which becomes root there, is refused before anything
// starts. Before, auto picked slirp4netns, which failed once the sandbox
// ran ("setegid(0)", 125).
func TestNetworkRootUnmapped(t *testing.T) {
	t.Parallel()
	requireDriver(t, "slirp4netns")
	requireDriver(t, "pasta")
	r := mustRun(t, opts{}, "run", "-v", "--map=single", "--uid=5", "--gid=5", "--cwd=none", "--", "id", "-u")
	if !strings.HasPrefix(r.stdout, "5\n") || !strings.Contains(r.stderr, "started the pasta network driver") {
		t.Errorf("--map=single --uid=5: want uid 5 on pasta\n%s", r)
	}
	r = run(t, "run", "--map=single", "--uid=5", "--net=slirp4netns", "--", "true")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "uid 0 or gid 0 is not mapped") || strings.Contains(r.stderr, "setegid") {
		t.Errorf("--net=slirp4netns without uid 0: want the refusal before the start\n%s", r)
	}
}

func TestNetworkDrivers(t *testing.T) {
	t.Parallel()
	for _, d := range netDrivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			requireDriver(t, d)
			t.Run("interface", func(t *testing.T) { t.Parallel(); netInterface(t, d) })
			t.Run("non-root-inside", func(t *testing.T) {
				t.Parallel()
				// The driver's setup must not depend on being root inside.
				r := mustRun(t, opts{}, "run", "--net="+d, "--uid", "1000", "--gid", "1000", "--", "cat", "/sys/class/net/tap0/mtu")
				if strings.TrimSpace(r.stdout) != "65520" {
					t.Errorf("--uid 1000: tap0 MTU %q, want 65520\n%s", r.stdout, r)
				}
			})
			t.Run("host-loopback", func(t *testing.T) { t.Parallel(); netHostLoopback(t, d) })
			t.Run("link-local", func(t *testing.T) { t.Parallel(); netLinkLocal(t, d) })
			t.Run("publish-udp", func(t *testing.T) { t.Parallel(); netPublishUDP(t, d) })
			t.Run("bulk-100MB", func(t *testing.T) { t.Parallel(); netBulk(t, d) })
		})
	}
}

func netInterface(t *testing.T, d string) {
	script := "ip -o -4 addr show dev tap0; echo ---; cat /sys/class/net/tap0/mtu; echo ---; ip route; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; hostname"
	r := mustRun(t, opts{}, sh([]string{"--net=" + d}, script)...)
	s := sections(r.stdout)
	if len(s) != 6 {
		t.Fatalf("unexpected output\n%s", r)
	}
	if !strings.Contains(s[0], "inet 10.0.2.100/24") {
		t.Errorf("tap0 address: %q, want 10.0.2.100/24", s[0])
	}
	if strings.TrimSpace(s[1]) != "65520" {
		t.Errorf("tap0 MTU %q, want 65520", s[1])
	}
	if !regexp.MustCompile(`(?m)^default via 10\.0\.2\.2 dev tap0`).MatchString(s[2]) {
		t.Errorf("no default route via 10.0.2.2:\n%s", s[2])
	}
	if !regexp.MustCompile(`(?m)^prohibit 169\.254\.0\.0/16`).MatchString(s[2]) {
		t.Errorf("no prohibit route for 169.254.0.0/16:\n%s", s[2])
	}
	want := "10.0.2.3"
	if d == "builtin" {
		want = "10.0.2.2"
	}
	ns := regexp.MustCompile(`(?m)^nameserver\s+(\S+)`).FindAllStringSubmatch(s[3], -1)
	if len(ns) != 1 || ns[0][1] != want {
		t.Errorf("resolv.conf nameservers %v, want only %s (the driver's forwarder):\n%s", ns, want, s[3])
	}
	host := strings.TrimSpace(s[5])
	if !regexp.MustCompile(`(?m)^127\.0\.1\.1\s+` + regexp.QuoteMeta(host) + `$`).MatchString(s[4]) {
		t.Errorf("/etc/hosts lacks the hostname %q:\n%s", host, s[4])
	}
	if strings.Contains(s[4], "host.sandbox.internal") {
		t.Errorf("/etc/hosts names the host without --allow-host-loopback:\n%s", s[4])
	}
}

// hostServer listens on the host's 127.0.0.1 and answers every connection
// with "hello"; it counts connections.
func hostServer(t *testing.T) (port int, accepted *atomic.Int32) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l.Addr().(*net.TCPAddr).Port, countingServer(t, l, "hello\n")
}

const pyConnect = `
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)
    print("GOT", s.recv(16).decode().strip())
except OSError as e:
    print("ERR", e.errno, e)
`

func netHostLoopback(t *testing.T, d string) {
	port, accepted := hostServer(t)
	// Without the flag: neither the gateway nor the sandbox's own
	// 127.0.0.1 reaches the host's loopback.
	for _, addr := range []string{"10.0.2.2", "127.0.0.1"} {
		r := mustRun(t, opts{}, append(py([]string{"--net=" + d}, pyConnect), addr, strconv.Itoa(port))...)
		if strings.Contains(r.stdout, "GOT") {
			t.Errorf("ESCAPE: the host's 127.0.0.1:%d was reachable as %s without --allow-host-loopback\n%s", port, addr, r)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the host's server accepted %d connections without --allow-host-loopback", n)
	}
	r := mustRun(t, opts{}, append(py([]string{"--net=" + d, "--allow-host-loopback"}, pyConnect), "host.sandbox.internal", strconv.Itoa(port))...)
	if !strings.Contains(r.stdout, "GOT hello") {
		t.Errorf("with --allow-host-loopback, host.sandbox.internal:%d should reach the host's 127.0.0.1\n%s", port, r)
	}
}

// netLinkLocal: 169.254.169.254 is the test world's (routed there from the
// host), so a block that fails open is seen there and goes nowhere else.
func netLinkLocal(t *testing.T, d string) {
	requireWorld(t)
	worldMetaMu.Lock()
	defer worldMetaMu.Unlock()
	before := len(worldConns(t, worldToAddr(worldMeta)...))
	// Refused inside by the prohibit route: nothing leaves the sandbox.
	r := mustRun(t, opts{}, append(py([]string{"--net=" + d}, pyConnect), worldMeta, "80")...)
	if !strings.Contains(r.stdout, fmt.Sprintf("ERR %d", syscall.EACCES)) {
		t.Errorf("169.254.169.254 should be refused at once (EACCES, prohibit route)\n%s", r)
	}
	if got := worldConns(t, worldToAddr(worldMeta)...); len(got) != before {
		t.Errorf("ESCAPE: without --allow-link-local the test world saw traffic to 169.254.169.254:\n%s", strings.Join(worldNew(got, before), "\n"))
	}
	r = mustRun(t, opts{}, sh([]string{"--net=" + d, "--allow-link-local"}, "ip route")...)
	if strings.Contains(r.stdout, "169.254") {
		t.Errorf("--allow-link-local: a route still blocks 169.254.0.0/16\n%s", r)
	}
	// With the flag the address is reachable (the world answers).
	tok := "/ll-" + randHex(12)
	p := egressProbe(t, opts{}, []string{"--net=" + d, "--allow-link-local"}, "http,"+worldMeta+",80,meta.test,"+tok)
	p.ok(t, 0, "world "+worldMeta)
	if got := worldConns(t, "http "+worldMeta+":80", "path="+tok); len(got) != 1 {
		t.Errorf("with --allow-link-local the world should have one request %s, has %q", tok, got)
	}
}

const pyUDPEcho = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 8001))
print("LISTENING", flush=True)
for _ in range(50):
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo:" + data, peer)
    if data == b"bye":
        break
`

// oldPasta: this host's pasta cannot return UDP replies to the host's
// loopback (passt before 2024; Debian 12 prints "pasta unknown version").
func oldPasta() bool {
	out, _ := exec.Command("pasta", "--version").Output()
	f := strings.Fields(string(out))
	return len(f) < 2 || len(f[1]) < 4 || f[1][:4] < "2024" || f[1][:4] > "9999"
}

func netPublishUDP(t *testing.T, d string) {
	var flags []string
	switch {
	case d == "pasta" && oldPasta():
		r := run(t, "run", "--net=pasta", "-p", "40000:8001/udp", "--", "true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "--net=builtin") {
			t.Errorf("UDP publish with this pasta should be refused, pointing at --net=builtin\n%s", r)
		}
		return
	case d == "slirp4netns":
		r := run(t, "run", "--net=slirp4netns", "-p", "40000:8001/udp", "--", "true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "--allow-host-loopback") {
			t.Errorf("UDP publish with slirp4netns and no host loopback should be refused, naming --allow-host-loopback\n%s", r)
		}
		flags = []string{"--allow-host-loopback"}
	}
	udpEcho(t, append(flags, "--net="+d))
}

// TestNetworkAutoUDP: auto picks a driver that can publish UDP (without
// --allow-host-loopback slirp4netns cannot).
func TestNetworkAutoUDP(t *testing.T) {
	t.Parallel()
	requireDriver(t, "pasta")
	requireDriver(t, "slirp4netns")
	r := mustRun(t, opts{}, "run", "-v", "-p", fmt.Sprintf("%d:8001/udp", freePort(t, "udp")), "--", "true")
	want := "pasta"
	if oldPasta() {
		want = "builtin"
	}
	if !strings.Contains(r.stderr, "started the "+want+" network driver") {
		t.Errorf("auto with a UDP port should use %s here\n%s", want, r)
	}
	udpEcho(t, nil)
}

// udpEcho publishes a UDP port and checks a datagram's round trip.
func udpEcho(t *testing.T, flags []string) {
	hp := freePort(t, "udp")
	p := start(t, opts{}, py(append(flags, "-p", fmt.Sprintf("%d:8001/udp", hp)), pyUDPEcho)...)
	if !p.waitStdout("LISTENING", 20*time.Second) {
		t.Fatalf("the UDP server inside did not start\n%s", p.wait())
	}
	c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", hp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	got := ""
	for i := 0; i < 40 && got == ""; i++ {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			got = string(buf[:n])
		}
	}
	c.Write([]byte("bye"))
	if got != "echo:ping" {
		t.Errorf("UDP through -p %d:8001/udp: got %q, want echo:ping", hp, got)
	}
	if r := p.wait(); r.code != 0 {
		t.Errorf("the sandbox did not end cleanly after bye\n%s", r)
	}
}

// pyBulk: receive one stream on the published port and print its digest,
// then send n bytes to the host's sink and print their digest.
const pyBulk = `
import hashlib, os, socket, sys
n, sink_port = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8000)); srv.listen(1)
print("LISTENING", flush=True)
c, _ = srv.accept()
c.sendall(b"ready\n")
h, got = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    h.update(b); got += len(b)
print("IN", got, h.hexdigest(), flush=True)
c.close()
s = socket.create_connection(("host.sandbox.internal", sink_port), 10)
h, chunk = hashlib.sha256(), os.urandom(1 << 20)
for i in range(n >> 20):
    s.sendall(chunk); h.update(chunk)
# Wait for the host's close: data still queued in this namespace is lost
# when the sandbox (and so its network namespace) ends.
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
print("OUT", n, h.hexdigest(), flush=True)
`

// netBulk moves 100 MB host→sandbox through a published TCP port and 100 MB
// sandbox→host through the gateway (host loopback allowed), checking both
// digests.
func netBulk(t *testing.T, d string) {
	const n = 100 << 20
	sink, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sinkSum := make(chan string, 1)
	go func() {
		c, err := sink.Accept()
		if err != nil {
			sinkSum <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		h := sha256.New()
		k, _ := io.Copy(h, c)
		sinkSum <- fmt.Sprintf("%d %s", k, hex.EncodeToString(h.Sum(nil)))
	}()
	hp := freePort(t, "tcp")
	args := append(py([]string{"--net=" + d, "--allow-host-loopback", "-p", fmt.Sprintf("%d:8000", hp)}, pyBulk),
		strconv.Itoa(n), strconv.Itoa(sink.Addr().(*net.TCPAddr).Port))
	p := start(t, opts{timeout: 120 * time.Second}, args...)
	if !p.waitStdout("LISTENING", 20*time.Second) {
		t.Fatalf("the server inside did not start\n%s", p.wait())
	}
	var conn net.Conn
	for i := 0; i < 50 && conn == nil; i++ {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", hp), 2*time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && line == "ready\n" {
				conn = c
				break
			}
			c.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if conn == nil {
		t.Fatalf("could not reach the published port 127.0.0.1:%d\n%s", hp, p.wait())
	}
	conn.SetDeadline(time.Now().Add(90 * time.Second))
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.New(rand.NewSource(1)), n), h)
	if _, err := io.Copy(conn, src); err != nil {
		t.Fatalf("sending %d bytes into the sandbox: %v", n, err)
	}
	conn.(*net.TCPConn).CloseWrite()
	want := hex.EncodeToString(h.Sum(nil))
	r := p.wait()
	conn.Close()
	if !strings.Contains(r.stdout, fmt.Sprintf("IN %d %s", n, want)) {
		t.Errorf("host→sandbox through -p: want IN %d %s\n%s", n, want, r)
	}
	out := regexp.MustCompile(`OUT (\d+) ([0-9a-f]{64})`).FindStringSubmatch(r.stdout)
	select {
	case got := <-sinkSum:
		if out == nil || got != out[1]+" "+out[2] {
			t.Errorf("sandbox→host: the host received %q, the sandbox sent %v\n%s", got, out, r)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("sandbox→host: the host's sink got nothing\n%s", r)
	}
}

// pyAfterSIGINT handles SIGINT as a payload that shuts down gracefully
// does, and uses the network once it has had it.
const pyAfterSIGINT = `
import signal, socket, sys, time
got = []
signal.signal(signal.SIGINT, lambda *a: got.append(1))
print("ready", flush=True)
deadline = time.monotonic() + 30
while not got and time.monotonic() < deadline:
    time.sleep(0.02)
if not got:
    print("no SIGINT"); sys.exit(3)
time.sleep(0.3)
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)
    print("GOT", s.recv(16).decode().strip())
except OSError as e:
    print("ERR", e.errno, e)
`

// TestNetworkSurvivesCtrlC: Ctrl-C at a terminal is SIGINT to the whole
// foreground job (start runs sandbox as a process group of its own, as a
// shell runs a job). It reaches the payload through sandbox, and a payload
// that handles it may go on using the network: the network helper must
// not get it too (before, it died with "lost its network").
func TestNetworkSurvivesCtrlC(t *testing.T) {
	t.Parallel()
	for _, d := range netDrivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			requireDriver(t, d)
			port, _ := hostServer(t)
			p := start(t, opts{}, append(py([]string{"--net=" + d, "--allow-host-loopback"}, pyAfterSIGINT), "host.sandbox.internal", strconv.Itoa(port))...)
			if !p.waitStdout("ready", 30*time.Second) {
				t.Fatalf("the payload never said it was ready\n%s", p.wait())
			}
			if err := syscall.Kill(-p.pid(), syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			r := p.wait()
			wantCode(t, r, 0)
			if !strings.Contains(r.stdout, "GOT hello") || strings.Contains(r.stderr, "lost its network") {
				t.Errorf("after Ctrl-C (SIGINT to sandbox's process group) the payload lost the network of --net=%s\n%s", d, r)
			}
		})
	}
}

// TestNetworkHelperWrapper: a driver's program that is a wrapper running
// the real one as its child (a shell script without exec): the run still
// ends, and leaves nothing running (before, sandbox waited forever for the
// helper's output, which the orphaned child kept open).
func TestNetworkHelperWrapper(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"pasta", "slirp4netns"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			requireDriver(t, d)
			real, err := exec.LookPath(d)
			if err != nil {
				t.Fatal(err)
			}
			dir := tempDir(t)
			writeFile(t, filepath.Join(dir, d), "#!/bin/sh\n'"+real+"' \"$@\"\n", 0o755)
			since := bootTicks()
			r := runOpts(t, opts{env: []string{"PATH=" + dir + ":" + os.Getenv("PATH")}, timeout: 60 * time.Second},
				"run", "--net="+d, "--", "cat", "/sys/class/net/tap0/mtu")
			if r.timedOut {
				t.Fatalf("sandbox run with a wrapper for %s did not end within 60s\n%s", d, r)
			}
			wantCode(t, r, 0)
			if strings.TrimSpace(r.stdout) != "65520" {
				t.Errorf("through the wrapper: tap0 MTU %q, want 65520\n%s", r.stdout, r)
			}
			requireNoLeftovers(t, since, true, 5*time.Second)
		})
	}
}

// TestNetworkCleanupAfterSIGKILL kills `sandbox` with SIGKILL while its
// network helper runs: the helper must end too, and the published port must
// be free again.
func TestNetworkCleanupAfterSIGKILL(t *testing.T) {
	for _, d := range netDrivers {
		t.Run(d, func(t *testing.T) {
			requireDriver(t, d)
			since := bootTicks()
			hp := freePort(t, "tcp")
			p := start(t, opts{}, "run", "--net="+d, "-p", fmt.Sprintf("%d:8000", hp), "--", "sleep", "60")
			// The helper is up once the published port is bound on the host.
			bound := false
			for i := 0; i < 100 && !bound; i++ {
				l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", hp))
				if err != nil {
					bound = true
					break
				}
				l.Close()
				time.Sleep(50 * time.Millisecond)
			}
			if !bound {
				t.Fatalf("the published port %d was never bound\n%s", hp, p.wait())
			}
			helpers := 0
			for _, q := range descendants(p.pid())[1:] {
				if q.ppid == p.pid() {
					helpers++
				}
			}
			if helpers < 2 {
				t.Errorf("expected init and a network helper as children of sandbox, found %d", helpers)
			}
			syscall.Kill(p.pid(), syscall.SIGKILL)
			p.wait()
			requireNoLeftovers(t, since, true, 5*time.Second)
			var err error
			for i := 0; i < 50; i++ {
				var l net.Listener
				if l, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", hp)); err == nil {
					l.Close()
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("the published port %d is still bound after SIGKILL: %v", hp, err)
			}
		})
	}
}

func TestNetworkBadInput(t *testing.T) {
	t.Parallel()
	requireDriver(t, "pasta")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"publish no port", []string{"-p", "80"}, "HOSTPORT:SANDBOXPORT"},
		{"publish bad proto", []string{"-p", "8080:80/sctp"}, "tcp or udp"},
		{"publish port 0", []string{"-p", "0:80"}, "port number"},
		{"publish bad ip", []string{"-p", "1.2.3:8080:80"}, "not an IP address"},
		{"publish with none", []string{"--net=none", "-p", "8080:80"}, "needs a user-mode network"},
		{"publish with host", []string{"--net=host", "-p", "8080:80"}, "needs a user-mode network"},
		// Accepted before: a driver failed on the second in its own words,
		// and nothing listens on a broadcast or multicast address.
		{"publish twice", []string{"--net=builtin", "-p", "8080:80", "-p", "0.0.0.0:8080:81"}, "published twice"},
		{"publish broadcast", []string{"-p", "255.255.255.255:8080:80"}, "not an address a host listens on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, append(append([]string{"run"}, tc.args...), "--", "true")...)
			wantCode(t, r, exitSandbox)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr should say %q\n%s", tc.want, r)
			}
		})
	}
	t.Run("driver not installed", func(t *testing.T) {
		empty := tempDir(t)
		r := runOpts(t, opts{env: []string{"PATH=" + empty}}, "run", "--net=pasta", "--", "/bin/true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "pasta is not installed") {
			t.Errorf("stderr should name the missing pasta\n%s", r)
		}
	})
}

// TestNetworkAllowWithoutNetwork: --allow-host-loopback or
// --allow-link-local with --net=none or --net=host runs, saying the flag
// has no effect; before, it passed without a word.
func TestNetworkAllowWithoutNetwork(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"none", "host"} {
		for _, flag := range []string{"--allow-host-loopback", "--allow-link-local"} {
			r := mustRun(t, opts{}, "run", "--net="+mode, flag, "--", "true")
			if !strings.Contains(r.stderr, flag+" has no effect with") || !strings.Contains(r.stderr, "--net="+mode) || len(lines(r.stderr)) != 1 {
				t.Errorf("%s with --net=%s: want one warning line: %s", flag, mode, r)
			}
		}
	}
}

// TestNetworkPortInUse: a published port that is taken stops the run with
// 125, a message naming the port, and nothing left running.
func TestNetworkPortInUse(t *testing.T) {
	for _, d := range netDrivers {
		t.Run(d, func(t *testing.T) {
			requireDriver(t, d)
			since := bootTicks()
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			hp := l.Addr().(*net.TCPAddr).Port
			r := run(t, "run", "--net="+d, "-p", fmt.Sprintf("%d:8000", hp), "--", "echo", "PAYLOAD-RAN")
			wantCode(t, r, exitSandbox)
			if strings.Contains(r.stdout, "PAYLOAD-RAN") {
				t.Errorf("the payload ran although its port could not be published\n%s", r)
			}
			if !strings.Contains(r.stderr, strconv.Itoa(hp)) {
				t.Errorf("stderr should name the port %d\n%s", hp, r)
			}
			requireNoLeftovers(t, since, true, 5*time.Second)
		})
	}
}

const pyServerClosesFirst = `
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
failed, done, first = 0, 0, ""
end = time.time() + 60
for i in range(n):
    if time.time() > end or failed >= 3:
        break
    try:
        s = socket.create_connection((host, port), 2)
        while s.recv(64):
            pass
        s.close()
        done += 1
    except OSError as e:
        failed += 1
        first = first or "connection %d: %s" % (i, e)
print("DONE", done, "FAILED", failed, first)
`

// TestNetworkServerClosesFirst: thousands of short connections whose
// server closes first, through the builtin stack. Its side of each one
// then sits in TIME_WAIT, and a new SYN from a port the sandbox's kernel
// reuses was dropped for the whole TIME_WAIT (about one connection in 200
// hung until its client gave up).
func TestNetworkServerClosesFirst(t *testing.T) {
	requireDriver(t, "builtin")
	port, accepted := hostServer(t)
	const n = 4000
	r := mustRun(t, opts{timeout: 2 * time.Minute}, append(py([]string{"--net=builtin", "--allow-host-loopback"}, pyServerClosesFirst),
		"host.sandbox.internal", strconv.Itoa(port), strconv.Itoa(n))...)
	if !strings.Contains(r.stdout, fmt.Sprintf("DONE %d FAILED 0", n)) {
		t.Errorf("every connection should work (the host's server accepted %d)\n%s", accepted.Load(), r)
	}
}

// TestNetworkTapByStage: with a holder, init's stage makes slirp4netns'
// tap (persistent, in init's network namespace, after the maps) so that
// slirp4netns starts before init runs; so does the stage without a holder
// for maps the caller writes itself (--map=single: it joins init's user
// namespace, which it owns, to enter the network namespace); when the
// helpers write the maps, init makes it as before. Either way the tap is
// configured, its files in /sys belong to root inside (made after the
// maps), and slirp4netns serves it: the host's loopback answers through
// the gateway.
func TestNetworkTapByStage(t *testing.T) {
	t.Parallel()
	requireDriver(t, "slirp4netns")
	const line = "the tap made by init's stage went to the driver"
	for _, way := range []string{"holder", "stage", "helpers"} {
		t.Run(way, func(t *testing.T) {
			t.Parallel()
			var h holderSetup
			args := []string{"-v", "--net=slirp4netns"}
			if way == "stage" {
				h = holderWay(t, "helpers") // no holder; --map=single needs none
				args = append(args, "--map=single")
			} else {
				h = holderWay(t, way)
			}
			r := mustRun(t, opts{env: h.env}, sh(args,
				"stat -c %u /sys/class/net/tap0/address; ip -o -4 addr show dev tap0; ip route")...)
			if via := mapsVia(t, r); via != way {
				t.Fatalf("maps written by %s, want %s", via, way)
			}
			if got := strings.Contains(r.stderr, line); got != (way != "helpers") {
				t.Errorf("-v says %q: %v, want %v\n%s", line, got, way != "helpers", r)
			}
			if owner, _, _ := strings.Cut(r.stdout, "\n"); owner != "0" {
				t.Errorf("tap0's files in /sys belong to uid %q inside, want 0 (the tap made after the maps)\n%s", owner, r)
			}
			if !strings.Contains(r.stdout, "inet 10.0.2.100/24") || !regexp.MustCompile(`(?m)^default via 10\.0\.2\.2 dev tap0`).MatchString(r.stdout) {
				t.Errorf("tap0 not configured\n%s", r)
			}
			port, accepted := hostServer(t)
			r = mustRun(t, opts{env: h.env}, append(py(append(args[1:], "--allow-host-loopback"), pyConnect), "10.0.2.2", strconv.Itoa(port))...)
			if !strings.Contains(r.stdout, "GOT hello") || accepted.Load() != 1 {
				t.Errorf("the host's 127.0.0.1:%d through slirp4netns' gateway: %d connections\n%s", port, accepted.Load(), r)
			}
		})
	}
}

// TestNetworkTapPersistent: the tap of slirp4netns and builtin is
// persistent (IFF_PERSIST, 0x0800 in tun_flags), so that it goes with the
// sandbox's network namespace: a helper's last close of a non-persistent
// one unregistered the device, and the end of every --net=builtin run
// waited ~20 ms for that helper's exit on the CI machine.
func TestNetworkTapPersistent(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"slirp4netns", "builtin"} {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			requireDriver(t, d)
			r := mustRun(t, opts{}, "run", "--net="+d, "--", "cat", "/sys/class/net/tap0/tun_flags")
			flags, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(r.stdout), "0x"), 16, 32)
			if err != nil {
				t.Fatalf("tun_flags of tap0: %q: %v\n%s", r.stdout, err, r)
			}
			if flags&0x0800 == 0 {
				t.Errorf("tap0 is not persistent with --net=%s: tun_flags %#x, want IFF_PERSIST (0x0800)", d, flags)
			}
		})
	}
}

// TestBuiltinClaimsOnlyTheGateway: the builtin stack answers as every
// destination (promiscuous, spoofing), but ARP for the gateway only: a
// neighbour of the sandbox's subnet that does not exist stays unresolved
// (netstack's linkGate drops the stack's other replies), rather than being
// taken for the gateway's MAC.
func TestBuiltinClaimsOnlyTheGateway(t *testing.T) {
	t.Parallel()
	requireDriver(t, "builtin")
	r := runOpts(t, opts{}, "run", "--net=builtin", "--", "bash", "-c",
		`timeout 2 bash -c 'exec 3<>/dev/tcp/10.0.2.77/80' 2>/dev/null; ip neigh show; echo end`)
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "end") {
		t.Fatalf("the script did not finish\n%s", r)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "10.0.2.77 ") && strings.Contains(l, "lladdr") {
			t.Errorf("a subnet address that no one holds was resolved: %q\n%s", l, r)
		}
	}
}
