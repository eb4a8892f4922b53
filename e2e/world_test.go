package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test world (scripts/testworld.sh, e2e/testworld): network namespace
// sbxworld, reached from the host through a veth, standing in for "the
// internet" of the egress tests. Its addresses (198.18.0.0/15, the
// benchmarking range, and 169.254.169.254) are routed from the host into
// the veth, so whatever a test tries — also what it expects to be blocked
// — ends on this machine.
const (
	worldIP      = "198.18.0.2"  // the world's end of the veth: DNS server, control
	worldHostIP  = "198.18.0.1"  // the host's end of the veth: one of the host's own addresses
	worldAllowed = "198.18.1.10" // allowed.test, shared.test, *.wild.test
	worldOther   = "198.18.1.11" // other.test; only ever tried where it must be blocked
	worldCIDR    = "198.18.1.12" // no name; reached through --allow-cidr
	worldMeta    = "169.254.169.254"
	worldControl = "http://" + worldIP + ":8080"
)

// worldMetaMu serialises this process's tests that reach or must not reach
// 169.254.169.254: they compare the world's count of connections to it.
var worldMetaMu sync.Mutex

var (
	worldOnce sync.Once
	worldErr  error
)

// requireWorld fails (CI=true) or skips when the test world does not answer;
// the egress tests also need python3 and the builtin driver.
func requireWorld(t testing.TB) {
	t.Helper()
	requireDriver(t, "builtin")
	worldOnce.Do(func() {
		var b string
		b, worldErr = worldGet("/ping")
		if worldErr == nil && b != "world\n" {
			worldErr = io.ErrUnexpectedEOF
		}
	})
	if worldErr != nil {
		requireOrSkip(t, false, "the test world (sudo scripts/testworld.sh up): "+worldControl+" does not answer: "+worldErr.Error())
	}
}

func worldGet(path string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(worldControl + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = io.ErrUnexpectedEOF
	}
	return string(b), err
}

// worldLines is one of the world's lists: "queries" (DNS names asked, one
// a line) or "conns" (`tcp LOCAL REMOTE`, `udp LOCAL REMOTE LEN DATA`,
// `http LOCAL REMOTE host=H path=P`, `tls LOCAL REMOTE sni=S`,
// `icmp DST SRC type=T DATA`).
func worldLines(t testing.TB, list string) []string {
	t.Helper()
	b, err := worldGet("/" + list)
	if err != nil {
		t.Fatalf("reading the test world's /%s: %v", list, err)
	}
	return lines(b)
}

// worldQueries counts the DNS queries the world received for name.
func worldQueries(t testing.TB, name string) int {
	t.Helper()
	n := 0
	for _, l := range worldLines(t, "queries") {
		if l == strings.ToLower(name) {
			n++
		}
	}
	return n
}

// worldConns returns the world's connection records holding every one of subs.
func worldConns(t testing.TB, subs ...string) []string {
	t.Helper()
	var out []string
next:
	for _, l := range worldLines(t, "conns") {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// worldNew is what a list gained since it held before entries.
func worldNew(got []string, before int) []string {
	if before > len(got) {
		return got
	}
	return got[before:]
}

// worldToAddr matches the records of anything that reached addr (a
// connection, datagram or ICMP packet to it).
func worldToAddr(addr string) []string {
	return []string{" " + addr}
}

// pyProbeLib: what the probes inside the sandbox do. run_ops takes ops
// `KIND,ARG,...` and prints `R<i> OK <text>` or `R<i> ERR <why>` for each:
//
//	dns,SERVER,NAME       one A query over UDP: rcode=N IP,...
//	dnstcp,SERVER,NAME    the same over TCP
//	resolve,NAME          getaddrinfo (the sandbox's resolv.conf): IP,...
//	http,HOST,PORT,HOSTHEADER,PATH   a GET: body=...
//	tls,HOST,PORT,SNI     a handshake (no SNI when empty), then what the server says
//	tcp,HOST,PORT         connect, read what the server says first
//	udp,HOST,PORT,DATA    a datagram, the answer (3 tries of 1 s)
//
// A TCP connection that gets no answer at all is an ERR.
const pyProbeLib = `
import random, socket, ssl, struct, sys

def dnsq(name):
    h = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    return h + b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)

def dnsparse(m):
    rc, an = m[3] & 15, struct.unpack(">H", m[6:8])[0]
    i = 12
    while m[i]:
        i += 1 + m[i]
    i += 5
    ips = []
    for _ in range(an):
        if m[i] & 0xc0 == 0xc0:
            i += 2
        else:
            while m[i]:
                i += 1 + m[i]
            i += 1
        t, c, ttl, l = struct.unpack(">HHIH", m[i:i+10])
        i += 10
        if t == 1 and l == 4:
            ips.append(socket.inet_ntoa(m[i:i+4]))
        i += l
    return "rcode=%d %s" % (rc, ",".join(ips))

def recvn(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            break
        b += d
    return b

def op(kind, a):
    if kind == "dns":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.connect((a[0], 53))
        s.send(dnsq(a[1]))
        return dnsparse(s.recv(4096))
    if kind == "dnstcp":
        s = socket.create_connection((a[0], 53), 3)
        s.settimeout(3)
        q = dnsq(a[1])
        s.sendall(struct.pack(">H", len(q)) + q)
        l = recvn(s, 2)
        if len(l) != 2:
            raise OSError("no answer")
        return dnsparse(recvn(s, struct.unpack(">H", l)[0]))
    if kind == "resolve":
        return ",".join(sorted({ai[4][0] for ai in socket.getaddrinfo(a[0], None, socket.AF_INET, socket.SOCK_STREAM)}))
    if kind == "http":
        s = socket.create_connection((a[0], int(a[1])), 3)
        s.settimeout(3)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (a[3], a[2])).encode())
        b = recvn(s, 4096)
        if not b:
            raise OSError("no answer")
        return "body=" + b.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
    if kind == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((a[0], int(a[1])), 3)
        raw.settimeout(3)
        s = ctx.wrap_socket(raw, server_hostname=a[2] or None)
        b = s.recv(200)
        if not b:
            raise OSError("no answer")
        return b.decode(errors="replace").strip()
    if kind == "tcp":
        s = socket.create_connection((a[0], int(a[1])), 3)
        s.settimeout(3)
        b = s.recv(200)
        if not b:
            raise OSError("no answer")
        return b.decode(errors="replace").strip()
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.connect((a[0], int(a[1])))
        for _ in range(3):
            s.send(a[2].encode())
            try:
                return s.recv(2048).decode(errors="replace")
            except socket.timeout:
                pass
        raise OSError("no answer")
    raise ValueError("unknown op " + kind)

def run_ops(ops, first=0):
    for i, o in enumerate(ops, first):
        kind, *a = o.split(",")
        try:
            r = "OK " + op(kind, a)
        except Exception as e:
            r = "ERR %s %s" % (type(e).__name__, e)
        print("R%d %s" % (i, r.replace("\n", " ")), flush=True)
`

// egressReport is what the egress tests read of a run's --report.
type egressReport struct {
	Network *struct {
		Policy  json.RawMessage `json:"policy"`
		Blocked json.RawMessage `json:"blocked"`
	} `json:"network"`
}

type egressPolicy struct {
	AllowHost []string `json:"allow_host"`
	AllowCIDR []string `json:"allow_cidr"`
	DenyHost  []string `json:"deny_host"`
	DNS       string   `json:"dns"`
}

type egressBlocked struct {
	Count   int           `json:"count"`
	Records []blockRecord `json:"records"`
	Dropped int           `json:"dropped"`
}

type blockRecord struct {
	Time   string `json:"time"`
	Proto  string `json:"proto"`
	Dst    string `json:"dst"`
	Port   int    `json:"port"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// probeRun is one sandbox run of probes: its result, the outcome of each op
// (`OK ...` or `ERR ...`, "" when the op printed nothing) and the report.
type probeRun struct {
	r       result
	out     []string
	ops     []string
	report  []byte
	policy  *egressPolicy
	blocked *egressBlocked
}

// egressProbe runs `sandbox run --report F flags... -- python3 -c LIB+main ops...`
// (the command must exit 0) and parses its report.
func egressProbe(t testing.TB, o opts, flags []string, ops ...string) probeRun {
	t.Helper()
	return egressScript(t, o, flags, "\nrun_ops(sys.argv[1:])\n", ops...)
}

// egressScript is egressProbe with a main of the caller's (pyProbeLib is
// prepended; the ops are its arguments).
func egressScript(t testing.TB, o opts, flags []string, main string, ops ...string) probeRun {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 90 * time.Second
	}
	file := filepath.Join(tempDir(t), "report.json")
	args := append(py(append([]string{"--report", file}, flags...), pyProbeLib+main), ops...)
	p := probeRun{r: runOpts(t, o, args...), ops: ops}
	wantCode(t, p.r, 0)
	p.out = make([]string, len(ops))
	for _, l := range lines(p.r.stdout) {
		if k, v, ok := strings.Cut(l, " "); ok && len(k) > 1 && k[0] == 'R' {
			if i, err := strconv.Atoi(k[1:]); err == nil && i >= 0 && i < len(ops) {
				p.out[i] = v
			}
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report written: %v\n%s", err, p.r)
	}
	p.report = b
	var rep egressReport
	if err := json.Unmarshal(b, &rep); err != nil || rep.Network == nil {
		t.Fatalf("report without network (%v):\n%s", err, b)
	}
	if s := string(rep.Network.Policy); s != "" && s != "null" {
		p.policy = new(egressPolicy)
		if err := json.Unmarshal(rep.Network.Policy, p.policy); err != nil {
			t.Errorf("network.policy: %v\n%s", err, rep.Network.Policy)
		}
	}
	if s := string(rep.Network.Blocked); s != "" && s != "null" {
		p.blocked = new(egressBlocked)
		if err := json.Unmarshal(rep.Network.Blocked, p.blocked); err != nil {
			t.Errorf("network.blocked: %v\n%s", err, rep.Network.Blocked)
		}
	}
	return p
}

func (p probeRun) String() string {
	return p.r.String() + "\n--- report network: " + clip(reportNetwork(p.report))
}

func reportNetwork(b []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return string(b)
	}
	return string(m["network"])
}

// ok requires op i to have worked and its text to hold every one of subs.
func (p probeRun) ok(t testing.TB, i int, subs ...string) {
	t.Helper()
	got := p.out[i]
	good := strings.HasPrefix(got, "OK ")
	for _, s := range subs {
		good = good && strings.Contains(got, s)
	}
	if !good {
		t.Errorf("%s: got %q, want OK with %q\n%s", p.ops[i], got, subs, p)
	}
}

// fails requires op i to have failed (ran, and printed ERR).
func (p probeRun) fails(t testing.TB, i int, why string) {
	t.Helper()
	if !strings.HasPrefix(p.out[i], "ERR ") {
		t.Errorf("%s should fail (%s); got %q\n%s", p.ops[i], why, p.out[i], p)
	}
}

// record returns the first blocked record matching f.
func (p probeRun) record(f func(blockRecord) bool) *blockRecord {
	if p.blocked == nil {
		return nil
	}
	for i := range p.blocked.Records {
		if f(p.blocked.Records[i]) {
			return &p.blocked.Records[i]
		}
	}
	return nil
}

// wantRecord requires a blocked record to dst (IP, or name when dst holds
// a letter) on port (0: any) whose reason contains reason.
func (p probeRun) wantRecord(t testing.TB, proto, dst string, port int, reason string) {
	t.Helper()
	r := p.record(func(r blockRecord) bool {
		return r.Proto == proto && (r.Dst == dst || r.Name == dst) && (port == 0 || r.Port == port)
	})
	switch {
	case r == nil:
		t.Errorf("no network.blocked record {proto %s, dst/name %s, port %d}\n%s", proto, dst, port, p)
	case !strings.Contains(r.Reason, reason):
		t.Errorf("blocked record %+v: reason should contain %q", *r, reason)
	}
}
