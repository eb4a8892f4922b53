package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Egress policy (issue 13, the contract in docs/cli.md): every test talks
// only to the test world (world_test.go), resolves through it (--dns
// 198.18.0.2) and uses names and tokens of its own, so that the world's
// records of one run are not confused with those of another.

// worldDNS points the sandbox's resolver at the test world.
var worldDNS = []string{"--dns", worldIP}

func policy(rules ...string) []string { return append(slices.Clone(worldDNS), rules...) }

func tok() string { return "t" + randHex(12) }

// TestEgressWorld: the arrangement the other tests rely on works from the
// host: the world's DNS answers and records, its servers answer on the
// routed addresses and record. Without this, "the world saw nothing"
// would prove nothing.
func TestEgressWorld(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	name := tok() + ".wild.test"
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "udp4", worldIP+":53")
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := r.LookupIP(ctx, "ip4", name)
	if err != nil || len(ips) != 1 || ips[0].String() != worldAllowed {
		t.Errorf("the world's DNS: %s -> %v, %v; want %s", name, ips, err, worldAllowed)
	}
	if _, err := r.LookupIP(ctx, "ip4", tok()+".nowhere.test"); err == nil {
		t.Errorf("the world's DNS should answer NXDOMAIN outside its zone")
	}
	if n := worldQueries(t, name); n < 1 {
		t.Errorf("the world recorded %d queries for %s, want at least 1", n, name)
	}
	path := "/" + tok()
	c, err := net.DialTimeout("tcp4", worldCIDR+":80", 3*time.Second)
	if err != nil {
		t.Fatalf("the world's HTTP server on %s: %v", worldCIDR, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: w.test\r\nConnection: close\r\n\r\n", path)
	buf := make([]byte, 4096)
	n, _ := io.ReadFull(c, buf)
	if !strings.Contains(string(buf[:n]), "world "+worldCIDR+" host=w.test") {
		t.Errorf("the world's HTTP answer: %q", buf[:n])
	}
	if got := worldConns(t, "http "+worldCIDR+":80", "path="+path); len(got) != 1 {
		t.Errorf("the world should have recorded the request %s once: %q", path, got)
	}
}

// TestEgressAllowed: an allowed name works over TCP (HTTP :80, the SSH
// banner :22), UDP (:5300) and TLS (:443, its SNI), and auto picks the
// builtin driver under a policy.
func TestEgressAllowed(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	k := tok()
	p := egressProbe(t, opts{}, append([]string{"-v"}, policy("--allow-host", "allowed.test")...),
		"resolve,allowed.test",
		"http,allowed.test,80,allowed.test,/"+k,
		"udp,allowed.test,5300,"+k,
		"tls,allowed.test,443,allowed.test",
		"tcp,allowed.test,22")
	p.ok(t, 0, worldAllowed)
	p.ok(t, 1, "body=world "+worldAllowed+" host=allowed.test")
	p.ok(t, 2, "echo:"+k)
	p.ok(t, 3, "world tls "+worldAllowed+" sni=allowed.test")
	p.ok(t, 4, "SSH-2.0-world")
	if !strings.Contains(p.r.stderr, "started the builtin network driver") {
		t.Errorf("--net=auto with a policy should pick builtin\n%s", p)
	}
	if got := worldConns(t, "http "+worldAllowed+":80", "host=allowed.test", "path=/"+k); len(got) != 1 {
		t.Errorf("the world should have one request /%s: %q", k, got)
	}
	if got := worldConns(t, "udp "+worldAllowed+":5300", k); len(got) < 1 {
		t.Errorf("the world saw no datagram %s", k)
	}
	if p.policy == nil || !slices.Equal(p.policy.AllowHost, []string{"allowed.test"}) {
		t.Errorf("network.policy should list allow_host [allowed.test]\n%s", p)
	}
	if strings.Contains(p.r.stderr, "sandbox: blocked") {
		t.Errorf("nothing was blocked, yet a summary line\n%s", p)
	}
}

// TestEgressUnlistedName: a name no rule allows gets NXDOMAIN from the
// sandbox's resolver and the query goes nowhere: the world's DNS server
// sees none of them, also long random labels (the shape of exfiltration
// through DNS). An allowed name of the same run is forwarded (the control).
func TestEgressUnlistedName(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	k := tok()
	label := "x" + randHex(62) // 63 bytes, the most a label holds
	long := strings.Join([]string{label, "x" + randHex(62), "x" + randHex(62), "exfil.test"}, ".")
	unlisted := []string{k + ".other.test", "other.test", long, k + ".nowhere.test"}
	okName := "ok" + k + ".wild.test"
	ops := []string{"dns,10.0.2.2," + okName}
	for _, n := range unlisted {
		ops = append(ops, "dns,10.0.2.2,"+n)
	}
	ops = append(ops, "resolve,"+k+"-gai.other.test", "http,other.test,80,other.test,/"+k)
	p := egressProbe(t, opts{}, policy("--allow-host", "allowed.test", "--allow-host", "*.wild.test"), ops...)
	p.ok(t, 0, "rcode=0 "+worldAllowed)
	for i := range unlisted {
		p.ok(t, 1+i, "rcode=3")
	}
	p.fails(t, len(ops)-2, "getaddrinfo of an unlisted name")
	p.fails(t, len(ops)-1, "other.test is not allowed")
	if n := worldQueries(t, okName); n < 1 {
		t.Errorf("the allowed %s should have reached the world's DNS (the control), it saw %d queries", okName, n)
	}
	for _, n := range []string{k + ".other.test", k + ".nowhere.test", k + "-gai.other.test"} {
		if c := worldQueries(t, n); c != 0 {
			t.Errorf("EXFILTRATION: the world's DNS received %d queries for the unlisted %s", c, n)
		}
	}
	// By its first label: a world that shortens what it records still shows it.
	for _, l := range worldLines(t, "queries") {
		if strings.Contains(l, label) {
			t.Errorf("EXFILTRATION: the world's DNS received the long name %s", l)
		}
	}
	p.wantRecord(t, "dns", k+".other.test", 0, "no rule")
	p.wantRecord(t, "dns", long, 0, "no rule")
}

// TestEgressAddressLiteral: an address no rule covers cannot be reached by
// TCP or UDP and nothing arrives there; one --allow-cidr covers can.
func TestEgressAddressLiteral(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	k := tok()
	before := len(worldConns(t, worldToAddr(worldOther)...))
	p := egressProbe(t, opts{}, policy("--allow-host", "allowed.test", "--allow-cidr", worldCIDR),
		"tcp,"+worldOther+",22",
		"http,"+worldOther+",80,other.test,/"+k,
		"udp,"+worldOther+",5300,"+k,
		"tcp,"+worldCIDR+",22",
		"udp,"+worldCIDR+",5300,"+k)
	p.fails(t, 0, worldOther+" is not allowed")
	p.fails(t, 1, worldOther+" is not allowed")
	p.fails(t, 2, worldOther+" is not allowed")
	p.ok(t, 3, "SSH-2.0-world")
	p.ok(t, 4, "echo:"+k)
	if got := worldConns(t, worldToAddr(worldOther)...); len(got) != before {
		t.Errorf("ESCAPE: the world saw traffic to %s:\n%s", worldOther, strings.Join(worldNew(got, before), "\n"))
	}
	p.wantRecord(t, "tcp", worldOther, 80, "no rule")
	p.wantRecord(t, "udp", worldOther, 5300, "no rule")
}

// TestEgressSNIAndHost: allowed.test's address with another name in the
// TLS SNI or the HTTP Host header (a CDN-shared address, domain fronting),
// or without SNI, is closed before anything reaches the server; UDP to its
// port 443 (QUIC, whose SNI is not checked) is refused.
func TestEgressSNIAndHost(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	k := tok()
	p := egressProbe(t, opts{}, policy("--allow-host", "allowed.test"),
		"tls,allowed.test,443,allowed.test",
		"tls,allowed.test,443,shared.test",
		"tls,allowed.test,443,"+k+".shared.test",
		"http,allowed.test,80,shared.test,/"+k,
		"http,allowed.test,80,allowed.test,/ok"+k,
		"tls,allowed.test,443,",
		"udp,allowed.test,443,quic"+k)
	p.ok(t, 0, "sni=allowed.test")
	p.fails(t, 1, "SNI shared.test is not allowed")
	p.fails(t, 2, "SNI "+k+".shared.test is not allowed")
	p.fails(t, 3, "Host: shared.test is not allowed")
	p.ok(t, 4, "body=world "+worldAllowed+" host=allowed.test")
	p.fails(t, 5, "a ClientHello without SNI is closed")
	p.fails(t, 6, "UDP to port 443 of an address allowed only by name (QUIC)")
	p.wantRecord(t, "udp", worldAllowed, 443, "QUIC")
	if got := worldConns(t, "sni="+k+".shared.test"); len(got) != 0 {
		t.Errorf("ESCAPE: the world completed a TLS handshake with SNI %s.shared.test: %q", k, got)
	}
	if got := worldConns(t, "path=/"+k); len(got) != 0 {
		t.Errorf("ESCAPE: the world answered the request with Host: shared.test: %q", got)
	}
	if got := worldConns(t, "path=/ok"+k); len(got) != 1 {
		t.Errorf("the request with Host: allowed.test should have reached the world once: %q", got)
	}
	p.wantRecord(t, "tcp", worldAllowed, 443, "SNI")
	p.wantRecord(t, "tcp", worldAllowed, 80, "Host")
}

// TestEgressRebinding: an allowed name whose answer points at the host's
// loopback, the metadata address or the host's own address does not
// reach them unless their own flag is given.
func TestEgressRebinding(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	t.Run("loopback", func(t *testing.T) {
		t.Parallel()
		port, accepted := hostServer(t)
		p := egressProbe(t, opts{}, policy("--allow-host", "rebind-lo.test"), "tcp,rebind-lo.test,"+strconv.Itoa(port))
		p.fails(t, 0, "rebind-lo.test resolves to 127.0.0.1")
		if n := accepted.Load(); n != 0 {
			t.Errorf("ESCAPE: the host's 127.0.0.1:%d accepted %d connections through rebind-lo.test", port, n)
		}
	})
	t.Run("host-address", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp4", worldHostIP+":0")
		if err != nil {
			t.Fatalf("listening on the host's %s: %v", worldHostIP, err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		accepted := countingServer(t, l, "hello\n")
		p := egressProbe(t, opts{}, policy("--allow-host", "rebind-host.test"), "tcp,rebind-host.test,"+port)
		p.fails(t, 0, "rebind-host.test resolves to the host's own "+worldHostIP)
		if n := accepted.Load(); n != 0 {
			t.Errorf("ESCAPE: the host's %s:%s accepted %d connections through rebind-host.test", worldHostIP, port, n)
		}
		rec := p.record(func(r blockRecord) bool { return r.Dst == worldHostIP || r.Name == "rebind-host.test" })
		if rec == nil || !strings.Contains(rec.Reason, "--allow-host-loopback") {
			t.Errorf("want a blocked record for rebind-host.test naming --allow-host-loopback, got %+v\n%s", rec, p)
		}
		// The flag lets it through (the control).
		p = egressProbe(t, opts{}, policy("--allow-host", "rebind-host.test", "--allow-host-loopback"), "tcp,rebind-host.test,"+port)
		p.ok(t, 0, "hello")
		if n := accepted.Load(); n != 1 {
			t.Errorf("with --allow-host-loopback the host's %s:%s should have accepted 1 connection, got %d", worldHostIP, port, n)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		t.Parallel()
		worldMetaMu.Lock()
		defer worldMetaMu.Unlock()
		k := tok()
		before := len(worldConns(t, worldToAddr(worldMeta)...))
		p := egressProbe(t, opts{}, policy("--allow-host", "rebind-meta.test"),
			"http,rebind-meta.test,80,rebind-meta.test,/"+k, "tcp,rebind-meta.test,22")
		p.fails(t, 0, "rebind-meta.test resolves to 169.254.169.254")
		p.fails(t, 1, "rebind-meta.test resolves to 169.254.169.254")
		if got := worldConns(t, worldToAddr(worldMeta)...); len(got) != before {
			t.Errorf("ESCAPE: the world saw traffic to %s:\n%s", worldMeta, strings.Join(worldNew(got, before), "\n"))
		}
		p = egressProbe(t, opts{}, policy("--allow-host", "rebind-meta.test", "--allow-link-local"),
			"http,rebind-meta.test,80,rebind-meta.test,/ok"+k)
		p.ok(t, 0, "body=world "+worldMeta+" host=rebind-meta.test")
		if got := worldConns(t, "http "+worldMeta+":80", "path=/ok"+k); len(got) != 1 {
			t.Errorf("with --allow-link-local the request should have reached the world once: %q", got)
		}
	})
}

// TestEgressOtherResolver: DNS straight to another server (the world's
// own, over UDP and TCP) is an ordinary connection to an address no rule
// allows, even for a name that is allowed: the world records nothing.
func TestEgressOtherResolver(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	k := tok()
	viaSandbox, udp, tcp := "ok"+k+".wild.test", "u"+k+".wild.test", "t"+k+".wild.test"
	p := egressProbe(t, opts{}, policy("--allow-host", "*.wild.test"),
		"dns,10.0.2.2,"+viaSandbox, "dns,"+worldIP+","+udp, "dnstcp,"+worldIP+","+tcp)
	p.ok(t, 0, "rcode=0 "+worldAllowed)
	p.fails(t, 1, "DNS over UDP to "+worldIP)
	p.fails(t, 2, "DNS over TCP to "+worldIP)
	if n := worldQueries(t, viaSandbox); n < 1 {
		t.Errorf("the control %s (through the sandbox's resolver) did not reach the world", viaSandbox)
	}
	for _, n := range []string{udp, tcp} {
		if c := worldQueries(t, n); c != 0 {
			t.Errorf("ESCAPE: the world's DNS received %d queries for %s sent straight to it", c, n)
		}
	}
	p.wantRecord(t, "udp", worldIP, 53, "no rule")
	p.wantRecord(t, "tcp", worldIP, 53, "no rule")
}

// pyRootInside: root inside with every capability and no seccomp filter
// tries raw sockets, its own routes, iptables, nft and a new network namespace.
const pyRootInside = `
import os, subprocess, time
tok = sys.argv[1]

def cmd(c):
    try:
        r = subprocess.run(c, shell=True, capture_output=True, text=True, timeout=15)
        out = "%d %s" % (r.returncode, (r.stdout + r.stderr).strip().replace("\n", " | ")[:300])
    except Exception as e:
        out = "EXC %s" % e
    print("CMD %s -> %s" % (c, out), flush=True)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff

def step(name, f):
    try:
        print("%s OK %s" % (name, f()), flush=True)
    except Exception as e:
        print("%s ERR %s %s" % (name, type(e).__name__, e), flush=True)

def raw_udp():
    data = ("raw-" + tok).encode()
    udp = struct.pack("!HHHH", 40000, 5300, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton("10.0.2.100"), socket.inet_aton("198.18.1.11"))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s2 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    for _ in range(3):
        s.sendto(ip + udp, ("198.18.1.11", 0))
        s2.sendto(udp, ("198.18.1.11", 0))
        time.sleep(0.2)
    return "sent"

def icmp():
    data = ("icmp-" + tok).encode()
    h = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + data
    h = h[:2] + struct.pack("!H", csum(h)) + h[4:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(1)
    for _ in range(2):
        s.sendto(h, ("198.18.1.11", 0))
    end = time.time() + 2
    while time.time() < end:
        try:
            b, a = s.recvfrom(2048)
        except socket.timeout:
            break
        if a[0] == "198.18.1.11" and data in b and b[20] == 0:
            return "reply"
    return "sent"

run_ops(["http,allowed.test,80,allowed.test,/before-" + tok], 0)
step("RAWUDP", raw_udp)
step("ICMP", icmp)
cmd("ip route del 169.254.0.0/16")
cmd("iptables -F")
cmd("iptables -P OUTPUT ACCEPT")
cmd("iptables -t nat -F")
cmd("nft flush ruleset")
run_ops(["tcp,169.254.169.254,22", "http,rebind-meta.test,80,rebind-meta.test,/meta-" + tok,
         "tcp,198.18.1.11,22", "http,198.18.1.11,80,other.test,/lit-" + tok, "udp,198.18.1.11,5300,udp-" + tok], 1)
cmd("ip route add 198.18.1.11/32 dev tap0")
cmd("ip route")
run_ops(["tcp,198.18.1.11,22"], 6)
cmd("unshare -n %s -c 'import socket; socket.create_connection((\"198.18.1.11\", 22), 3); print(\"CONNECTED\")'" % sys.executable)
run_ops(["http,allowed.test,80,allowed.test,/after-" + tok], 7)
`

// TestEgressRootInside: root inside with --cap-add ALL and
// --seccomp=unconfined owns its namespace (raw sockets, routes, iptables,
// nft, unshare -n) and still reaches nothing the policy does not allow.
func TestEgressRootInside(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	worldMetaMu.Lock()
	defer worldMetaMu.Unlock()
	k := tok()
	beforeOther := len(worldConns(t, worldToAddr(worldOther)...))
	beforeMeta := len(worldConns(t, worldToAddr(worldMeta)...))
	flags := policy("--allow-host", "allowed.test", "--allow-host", "rebind-meta.test", "--cap-add", "ALL", "--seccomp=unconfined")
	p := egressScript(t, opts{}, flags, pyRootInside, k)
	// ops as numbered by the script
	p.ops = []string{"http allowed.test (before)", "tcp 169.254.169.254:22 (prohibit route removed)",
		"http rebind-meta.test", "tcp 198.18.1.11:22", "http 198.18.1.11", "udp 198.18.1.11:5300",
		"tcp 198.18.1.11:22 (on-link route)", "http allowed.test (after)"}
	p.out = make([]string, len(p.ops))
	for _, l := range lines(p.r.stdout) {
		if k, v, ok := strings.Cut(l, " "); ok && len(k) > 1 && k[0] == 'R' {
			if i, err := strconv.Atoi(k[1:]); err == nil && i >= 0 && i < len(p.ops) {
				p.out[i] = v
			}
		}
	}
	t.Logf("inside:\n%s", p.r.stdout)
	p.ok(t, 0, "host=allowed.test")
	for i := 1; i <= 6; i++ {
		p.fails(t, i, "not allowed, whatever root inside changed")
	}
	p.ok(t, 7, "host=allowed.test")
	// "ICMP OK sent": the echo request went out and no reply came back
	// (not even a made-up one: a blocked host must not look up).
	for _, want := range []string{"RAWUDP OK sent", "ICMP OK sent", "CMD ip route del 169.254.0.0/16 -> 0", "CMD ip route add 198.18.1.11/32 dev tap0 -> 0",
		"CMD iptables -F -> 0", "CMD iptables -P OUTPUT ACCEPT -> 0", "CMD nft flush ruleset -> 0"} {
		if !strings.Contains(p.r.stdout, want) {
			t.Errorf("root inside could not make the attempt: no %q\n%s", want, p)
		}
	}
	if !regexp.MustCompile(`(?m)^CMD unshare -n .* -> [1-9]`).MatchString(p.r.stdout) {
		t.Errorf("a connection from a new network namespace inside worked\n%s", p)
	}
	if got := worldConns(t, worldToAddr(worldOther)...); len(got) != beforeOther {
		t.Errorf("ESCAPE: the world saw traffic to %s:\n%s", worldOther, strings.Join(worldNew(got, beforeOther), "\n"))
	}
	if got := worldConns(t, worldToAddr(worldMeta)...); len(got) != beforeMeta {
		t.Errorf("ESCAPE: the world saw traffic to %s:\n%s", worldMeta, strings.Join(worldNew(got, beforeMeta), "\n"))
	}
	if got := worldConns(t, k); len(got) != 2 || !strings.Contains(got[0], "path=/before-"+k) || !strings.Contains(got[1], "path=/after-"+k) {
		t.Errorf("ESCAPE or lost control: the world's records with %s should be exactly the two allowed requests: %q", k, got)
	}
	if got := worldConns(t, "icmp ", "icmp-"+k); len(got) != 0 {
		t.Errorf("ESCAPE: ICMP from inside reached the world: %q", got)
	}
	p.wantRecord(t, "tcp", worldMeta, 22, "--allow-link-local")
	p.wantRecord(t, "tcp", worldOther, 22, "no rule")
	p.wantRecord(t, "udp", worldOther, 5300, "no rule")
}

// TestEgressDenyWins: a --deny-host inside an allowed wildcard is refused
// (and its queries go nowhere); the rest of the wildcard works.
func TestEgressDenyWins(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	k := tok()
	okName, denied := "ok"+k+".wild.test", k+".bad.wild.test"
	p := egressProbe(t, opts{}, policy("--allow-host", "*.wild.test", "--deny-host", "bad.wild.test", "--deny-host", "*.bad.wild.test"),
		"dns,10.0.2.2,"+okName,
		"dns,10.0.2.2,bad.wild.test",
		"dns,10.0.2.2,"+denied,
		"http,"+okName+",80,"+okName+",/"+k,
		"http,"+denied+",80,"+denied+",/bad"+k)
	p.ok(t, 0, "rcode=0 "+worldAllowed)
	p.ok(t, 1, "rcode=3")
	p.ok(t, 2, "rcode=3")
	p.ok(t, 3, "body=world "+worldAllowed+" host="+okName)
	p.fails(t, 4, denied+" is denied")
	if n := worldQueries(t, denied); n != 0 {
		t.Errorf("the denied %s reached the world's DNS %d times", denied, n)
	}
	if n := worldQueries(t, okName); n < 1 {
		t.Errorf("the allowed %s did not reach the world's DNS", okName)
	}
	p.wantRecord(t, "dns", denied, 0, "--deny-host")
	p.wantRecord(t, "dns", "bad.wild.test", 0, "--deny-host")
}

// TestEgressReport: the policy and every block in --report, a summary
// line on stderr at exit, one line per block with -v; the records are
// capped at 100 with the rest counted; no policy, no policy fields.
func TestEgressReport(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	summary := regexp.MustCompile(`(?m)^sandbox: blocked (\d+) attempts: (.*)$`)
	t.Run("records", func(t *testing.T) {
		t.Parallel()
		k := tok()
		name := "other-" + k + ".test"
		start := time.Now()
		p := egressProbe(t, opts{}, policy("--allow-host", "allowed.test", "--allow-cidr", worldCIDR, "--deny-host", "bad.wild.test"),
			"dns,10.0.2.2,"+name, "dns,10.0.2.2,"+name, "http,"+worldOther+",80,x.test,/"+k,
			"udp,"+worldOther+",5300,"+k, "http,allowed.test,80,allowed.test,/ok"+k)
		p.ok(t, 4, "host=allowed.test")
		pol := p.policy
		if pol == nil {
			t.Fatalf("no network.policy\n%s", p)
		}
		if !slices.Equal(pol.AllowHost, []string{"allowed.test"}) || len(pol.AllowCIDR) != 1 ||
			strings.TrimSuffix(pol.AllowCIDR[0], "/32") != worldCIDR || !slices.Equal(pol.DenyHost, []string{"bad.wild.test"}) ||
			!strings.Contains(pol.DNS, worldIP) {
			t.Errorf("network.policy %+v does not match the flags", *pol)
		}
		b := p.blocked
		if b == nil {
			t.Fatalf("no network.blocked\n%s", p)
		}
		if b.Count < 4 || b.Count != len(b.Records)+b.Dropped {
			t.Errorf("network.blocked count %d, %d records, %d dropped: want at least 4, count = records + dropped", b.Count, len(b.Records), b.Dropped)
		}
		for _, r := range b.Records {
			ts, err := time.Parse(time.RFC3339Nano, r.Time)
			if err != nil || ts.Before(start.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
				t.Errorf("record %+v: time is not an RFC 3339 time of this run (%v)", r, err)
			}
			if r.Reason == "" || (r.Proto != "tcp" && r.Proto != "udp" && r.Proto != "dns") {
				t.Errorf("record %+v: want proto tcp|udp|dns and a reason", r)
			}
		}
		p.wantRecord(t, "dns", name, 0, "no rule")
		p.wantRecord(t, "tcp", worldOther, 80, "no rule")
		p.wantRecord(t, "udp", worldOther, 5300, "no rule")
		m := summary.FindStringSubmatch(p.r.stderr)
		if m == nil {
			t.Fatalf("no summary line `sandbox: blocked N attempts: ...` on stderr\n%s", p)
		}
		if n, _ := strconv.Atoi(m[1]); n != b.Count {
			t.Errorf("summary says %s attempts, the report %d", m[1], b.Count)
		}
		for _, re := range []string{regexp.QuoteMeta(name) + ` \(dns\) ×2(,|$)`, `198\.18\.1\.11:80( ×\d+)?(,|$)`, `198\.18\.1\.11:5300/udp( ×\d+)?(,|$)`} {
			if !regexp.MustCompile(re).MatchString(m[2]) {
				t.Errorf("summary %q lacks %s", m[0], re)
			}
		}
	})
	t.Run("verbose", func(t *testing.T) {
		t.Parallel()
		k := tok()
		name := "v-" + k + ".test"
		p := egressProbe(t, opts{}, append([]string{"-v"}, policy("--allow-host", "allowed.test")...),
			"dns,10.0.2.2,"+name, "tcp,"+worldOther+",22")
		p.ok(t, 0, "rcode=3")
		p.fails(t, 1, "not allowed")
		for _, dst := range []string{name, worldOther} {
			found := false
			for _, l := range strings.Split(p.r.stderr, "\n") {
				if strings.Contains(l, "blocked") && strings.Contains(l, dst) && !strings.HasPrefix(l, "sandbox: blocked ") {
					found = true
				}
			}
			if !found {
				t.Errorf("-v: no line with `blocked` and %s as it happened\n%s", dst, p)
			}
		}
	})
	t.Run("capped", func(t *testing.T) {
		t.Parallel()
		script := "\nfor port in range(20000, 20120):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.sendto(b'x', ('198.18.1.11', port))\n    s.close()\nimport time; time.sleep(1)\nprint('SENT')\n"
		p := egressScript(t, opts{}, policy("--allow-host", "allowed.test"), script)
		if !strings.Contains(p.r.stdout, "SENT") {
			t.Fatalf("the datagrams were not sent\n%s", p)
		}
		b := p.blocked
		if b == nil || b.Count < 120 || len(b.Records) != 100 || b.Dropped != b.Count-100 {
			t.Fatalf("120 blocked datagrams: want count >= 120, 100 records, dropped = count - 100\n%s", p)
		}
		m := summary.FindStringSubmatch(p.r.stderr)
		if m == nil {
			t.Fatalf("no summary line\n%s", p)
		}
		items := strings.Split(m[2], ", ")
		if len(items) != 11 || !regexp.MustCompile(`^… \(\d+ more\)$`).MatchString(items[10]) {
			t.Errorf("summary of 120 destinations should list 10, then `… (N more)`: %q", m[0])
		}
	})
	t.Run("no-policy", func(t *testing.T) {
		t.Parallel()
		p := egressProbe(t, opts{}, []string{"--net=builtin"}, "http,allowed.test,80,allowed.test,/")
		var raw struct {
			Network map[string]json.RawMessage `json:"network"`
		}
		if err := json.Unmarshal(p.report, &raw); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"policy", "blocked"} {
			if v, ok := raw.Network[f]; !ok || string(v) != "null" {
				t.Errorf("without a policy network.%s should be null, is %s", f, v)
			}
		}
		if strings.Contains(p.r.stderr, "sandbox: blocked") {
			t.Errorf("without a policy: a blocked summary\n%s", p)
		}
	})
}

// pyPublishUnderPolicy: an allowed fetch, then serve one connection on
// the published port.
const pyPublishUnderPolicy = `
run_ops(["http,allowed.test,80,allowed.test,/pub-" + sys.argv[1]], 0)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8000)); srv.listen(1)
print("LISTENING", flush=True)
srv.settimeout(30)
c, _ = srv.accept()
c.sendall(b"pong\n")
c.close()
`

// TestEgressPublish: -p keeps working under a policy.
func TestEgressPublish(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	k := tok()
	hp := freePort(t, "tcp")
	args := append(py(policy("--allow-host", "allowed.test", "-p", fmt.Sprintf("%d:8000", hp)), pyProbeLib+pyPublishUnderPolicy), k)
	pr := start(t, opts{timeout: 60 * time.Second}, args...)
	if !pr.waitStdout("LISTENING", 30*time.Second) {
		t.Fatalf("the server inside did not start\n%s", pr.wait())
	}
	got := ""
	for i := 0; i < 50 && got == ""; i++ {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", hp), 2*time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 16)
			n, _ := c.Read(buf)
			got = string(buf[:n])
			c.Close()
		}
		if got == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	r := pr.wait()
	if got != "pong\n" {
		t.Errorf("-p %d:8000 under a policy: got %q, want pong\n%s", hp, got, r)
	}
	if !strings.Contains(r.stdout, "R0 OK body=world "+worldAllowed) {
		t.Errorf("the allowed fetch inside failed\n%s", r)
	}
}

// TestEgressBadInput: a bad rule, a deny without an allow, or a driver
// that cannot enforce a policy stops the run with 125 and one line naming
// the flag (and the value); nothing starts.
func TestEgressBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flags []string
		flag  string
		value string
	}{
		{[]string{"--allow-host", "*."}, "--allow-host", "*."},
		{[]string{"--allow-host", "**.x"}, "--allow-host", "**.x"},
		{[]string{"--allow-host", "a..b"}, "--allow-host", "a..b"},
		{[]string{"--allow-host", "x:99999"}, "--allow-host", "x:99999"},
		{[]string{"--allow-host", "a.test:0"}, "--allow-host", "a.test:0"},
		{[]string{"--allow-host", ""}, "--allow-host", ""},
		{[]string{"--allow-cidr", "300.1.1.1/8"}, "--allow-cidr", "300.1.1.1/8"},
		{[]string{"--allow-cidr", "1.2.3.4/33"}, "--allow-cidr", "1.2.3.4/33"},
		{[]string{"--allow-cidr", ""}, "--allow-cidr", ""},
		{[]string{"--allow-host", "allowed.test", "--deny-host", "**.x"}, "--deny-host", "**.x"},
		{[]string{"--deny-host", "bad.test"}, "--deny-host", ""}, // no allow rule to narrow
	} {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, append(append([]string{"run"}, tc.flags...), "--", "echo", "PAYLOAD-RAN")...)
			wantCode(t, r, exitSandbox)
			if strings.Contains(r.stdout, "PAYLOAD-RAN") {
				t.Errorf("the payload ran\n%s", r)
			}
			if !strings.Contains(r.stderr, tc.flag) || !strings.Contains(r.stderr, tc.value) {
				t.Errorf("stderr should name %s and %q\n%s", tc.flag, tc.value, r)
			}
			if n := len(lines(r.stderr)); n != 1 {
				t.Errorf("want one line on stderr, got %d\n%s", n, r)
			}
		})
	}
	for _, d := range []string{"pasta", "slirp4netns", "none", "host"} {
		t.Run("--net="+d, func(t *testing.T) {
			t.Parallel()
			r := run(t, "run", "--net="+d, "--allow-host", "allowed.test", "--", "echo", "PAYLOAD-RAN")
			wantCode(t, r, exitSandbox)
			if strings.Contains(r.stdout, "PAYLOAD-RAN") {
				t.Errorf("the payload ran with --net=%s and a policy\n%s", d, r)
			}
			if !strings.Contains(r.stderr, "--net="+d) || !strings.Contains(r.stderr, "--net=builtin") {
				t.Errorf("stderr should name --net=%s and say to use --net=builtin\n%s", d, r)
			}
		})
	}
}

// TestEgressProfileAndEnv: the lists come from a profile (TOML, YAML) and
// from SANDBOX_ALLOW_HOST / SANDBOX_DNS (`;`-separated).
func TestEgressProfileAndEnv(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	for _, pf := range []struct{ name, text string }{
		{"p.toml", "allow-host = [\"allowed.test\"]\ndns = \"" + worldIP + "\"\n"},
		{"p.yaml", "allow-host: [allowed.test]\ndns: " + worldIP + "\n"},
	} {
		t.Run(pf.name, func(t *testing.T) {
			t.Parallel()
			prof := profileFile(t, pf.name, pf.text)
			k := tok()
			p := egressProbe(t, opts{}, []string{"--profile", prof},
				"http,allowed.test,80,allowed.test,/"+k, "dns,10.0.2.2,"+k+".wild.test")
			p.ok(t, 0, "body=world "+worldAllowed)
			p.ok(t, 1, "rcode=3")
			if p.policy == nil || !slices.Equal(p.policy.AllowHost, []string{"allowed.test"}) {
				t.Errorf("the profile's allow-host is not the policy\n%s", p)
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		t.Parallel()
		k := tok()
		p := egressProbe(t, opts{env: []string{"SANDBOX_ALLOW_HOST=allowed.test;*.wild.test", "SANDBOX_DNS=" + worldIP}}, nil,
			"dns,10.0.2.2,"+k+".wild.test", "http,allowed.test,80,allowed.test,/"+k, "dns,10.0.2.2,other.test")
		p.ok(t, 0, "rcode=0 "+worldAllowed)
		p.ok(t, 1, "body=world "+worldAllowed)
		p.ok(t, 2, "rcode=3")
		if p.policy == nil || !slices.Equal(p.policy.AllowHost, []string{"allowed.test", "*.wild.test"}) {
			t.Errorf("SANDBOX_ALLOW_HOST is not the policy\n%s", p)
		}
	})
}

// TestEgressCheck: `sandbox check` says whether the policy can be enforced
// here (on the test host it can).
func TestEgressCheck(t *testing.T) {
	t.Parallel()
	requireDriver(t, "builtin")
	r := mustRun(t, opts{}, "check", "--json")
	_, byID := parseCheck(t, r.stdout)
	want(t, byID, "net.egress", "OK", false, nil, nil)
	r = mustRun(t, opts{}, "check")
	if !regexp.MustCompile(`(?m)^OK +net\.egress +\S`).MatchString(r.stdout) {
		t.Errorf("no `OK  net.egress` line\n%s", r)
	}
}
