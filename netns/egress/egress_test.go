package egress

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseBadValues(t *testing.T) {
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"--allow-host", "*.", "--allow-host"},
		{"--allow-host", "**.x", "not allowed in a name"},
		{"--allow-host", "a..b", "empty label"},
		{"--allow-host", "x:99999", "not a port"},
		{"--allow-host", "x:0", "not a port"},
		{"--allow-host", "x:", "not a port"},
		{"--allow-host", "", "empty value"},
		{"--allow-host", ":443", "no name"},
		{"--allow-host", "-a.test", "starts or ends with '-'"},
		{"--allow-host", "1.2.3.4", "use --allow-cidr"},
		{"--allow-host", "a b", "not allowed in a name"},
		// Named by its first byte before ("Ã"), with no way out.
		{"--allow-host", "münchen.de", `"ü" is not allowed in a name: write an international name in its ASCII form`},
		{"--allow-host", strings.Repeat("a", 64) + ".test", "longer than 63"},
		{"--allow-cidr", "300.1.1.1/8", "not an IPv4 CIDR"},
		{"--allow-cidr", "1.2.3.4/33", "not an IPv4 CIDR"},
		{"--allow-cidr", "example.org", "not an IPv4 address"},
		{"--allow-cidr", "2001:db8::/32", "IPv4"},
		// Told it was an IPv6 complaint before.
		{"--allow-host", "x.com:80:90", "one ':' before the ports, which ',' separates"},
		{"--allow-cidr", "10.0.0.1:80:90", "one ':' before the ports"},
		{"--allow-host", "fe80::1", "only IPv4 and names"},
		{"--allow-cidr", "10.0.0.0/8:1,x", "not a port"},
		{"--deny-host", "*.", "--deny-host"},
	} {
		p := Policy{AllowHost: []string{"ok.test"}}
		switch tc.flag {
		case "--allow-host":
			p.AllowHost = []string{tc.value}
		case "--allow-cidr":
			p.AllowCIDR = []string{tc.value}
		case "--deny-host":
			p.DenyHost = []string{tc.value}
		}
		err := p.Check()
		if err == nil {
			t.Errorf("%s %q: accepted", tc.flag, tc.value)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.flag+" ") || !strings.Contains(msg, tc.want) || (tc.value != "" && !strings.Contains(msg, tc.value)) {
			t.Errorf("%s %q: error %q, want it to start with the flag and name the value and %q", tc.flag, tc.value, msg, tc.want)
		}
	}
	if err := (&Policy{DenyHost: []string{"a.test"}}).Check(); err == nil || !strings.Contains(err.Error(), "--allow-host") {
		t.Errorf("--deny-host alone: %v, want a refusal naming --allow-host", err)
	}
	if err := (&Policy{AllowHost: []string{"a.test"}, DNS: "not-ip"}).Check(); err == nil || !strings.Contains(err.Error(), "--dns") {
		t.Errorf("--dns not-ip: %v", err)
	}
}

func TestParseGood(t *testing.T) {
	r, err := ParseHost("API.Example.org.:443,80,443")
	if err != nil || r.Name != "api.example.org" || len(r.Ports) != 2 {
		t.Errorf("ParseHost = %+v, %v", r, err)
	}
	r, err = ParseHost("*.example.org")
	if err != nil || r.Suffix != ".example.org" || !r.matchName("a.b.example.org") || r.matchName("example.org") || r.matchName("badexample.org") {
		t.Errorf("wildcard: %+v, %v", r, err)
	}
	r, err = ParseCIDR("198.18.0.7:22")
	if err != nil || r.Prefix.String() != "198.18.0.7/32" || r.Ports[0] != 22 {
		t.Errorf("ParseCIDR = %+v, %v", r, err)
	}
}

// enforcer is a policy at a fixed clock.
func enforcer(t *testing.T, p Policy, s Special, now *time.Time) *Enforcer {
	t.Helper()
	s.Gateway = netip.MustParseAddr("10.0.2.2")
	s.Subnet = netip.MustParsePrefix("10.0.2.0/24")
	e, err := NewEnforcer(&p, s)
	if err != nil {
		t.Fatal(err)
	}
	e.Table.now = func() time.Time { return *now }
	return e
}

func TestQuery(t *testing.T) {
	now := time.Unix(1000, 0)
	e := enforcer(t, Policy{AllowHost: []string{"a.test:443", "*.wild.test"}, DenyHost: []string{"bad.wild.test", "ssh.wild.test:22"}}, Special{}, &now)
	for name, ok := range map[string]bool{
		"a.test": true, "A.TEST.": true, "x.wild.test": true, "ssh.wild.test": true,
		"bad.wild.test": false, "wild.test": false, "other.test": false, "a.test.evil": false,
	} {
		if err := e.Query(name); (err == nil) != ok {
			t.Errorf("Query(%q) = %v, want allowed=%v", name, err, ok)
		}
	}
	if err := e.Query("bad.wild.test"); err == nil || !strings.Contains(err.Error(), "--deny-host") {
		t.Errorf("denied name: %v", err)
	}
}

func TestConnect(t *testing.T) {
	now := time.Unix(1000, 0)
	host := netip.MustParseAddr("192.0.2.1")
	e := enforcer(t, Policy{AllowHost: []string{"a.test:443", "*.wild.test", "rebind.test"}, AllowCIDR: []string{"198.51.100.0/24:22"},
		DenyHost: []string{"ssh.wild.test:22"}}, Special{HostAddrs: []netip.Addr{host}}, &now)
	a := netip.MustParseAddr("203.0.113.1")
	w := netip.MustParseAddr("203.0.113.2")
	e.Table.Learn("a.test", []netip.Addr{a}, 5*time.Second)
	e.Table.Learn("ssh.wild.test", []netip.Addr{w}, 0)
	for _, ip := range []string{"127.0.0.1", "169.254.169.254", "192.0.2.1", "10.0.2.2", "10.0.2.5", "224.0.0.1", "0.1.2.3"} {
		e.Table.Learn("rebind.test", []netip.Addr{netip.MustParseAddr(ip)}, time.Minute)
	}
	for _, tc := range []struct {
		addr   string
		port   uint16
		allow  bool
		byName bool
		reason string
	}{
		{"203.0.113.1", 443, true, true, ""},
		{"203.0.113.1", 80, false, false, "no rule allows port 80 of a.test"},
		{"203.0.113.2", 80, true, true, ""},
		{"203.0.113.2", 22, false, false, "--deny-host ssh.wild.test:22"},
		{"203.0.113.9", 443, false, false, "no rule allows this address"},
		{"198.51.100.7", 22, true, false, ""},
		{"198.51.100.7", 23, false, false, "no rule allows this address"},
		{"127.0.0.1", 80, false, false, "--allow-host-loopback"},
		{"169.254.169.254", 80, false, false, "--allow-link-local"},
		{"192.0.2.1", 80, false, false, "host's own addresses (--allow-host-loopback)"},
		{"10.0.2.2", 80, false, false, "--allow-host-loopback"},
		{"10.0.2.5", 80, false, false, "own subnet"},
		{"224.0.0.1", 80, false, false, "not a unicast"},
		{"0.1.2.3", 80, false, false, "not a unicast"},
	} {
		v := e.Connect(netip.MustParseAddr(tc.addr), tc.port)
		if v.Allow != tc.allow || v.ByName != tc.byName || !strings.Contains(v.Reason, tc.reason) {
			t.Errorf("Connect(%s:%d) = %+v, want allow=%v byName=%v reason ~ %q", tc.addr, tc.port, v, tc.allow, tc.byName, tc.reason)
		}
	}
	// The answer expires after MinTTL; a connection holds it.
	release := e.Table.Hold(a, []string{"a.test"})
	now = now.Add(MinTTL + time.Second)
	if v := e.Connect(a, 443); !v.Allow {
		t.Errorf("a held address expired: %+v", v)
	}
	release()
	release() // twice is once
	if v := e.Connect(a, 443); v.Allow {
		t.Errorf("an expired answer still allows: %+v", v)
	}
	// The special ranges open with their own flags only.
	now2 := time.Unix(1000, 0)
	open := enforcer(t, Policy{AllowHost: []string{"rebind.test"}}, Special{AllowHostLoopback: true, AllowLinkLocal: true, HostAddrs: []netip.Addr{host}}, &now2)
	for _, ip := range []string{"127.0.0.1", "169.254.169.254", "192.0.2.1"} {
		open.Table.Learn("rebind.test", []netip.Addr{netip.MustParseAddr(ip)}, time.Minute)
		if v := open.Connect(netip.MustParseAddr(ip), 80); !v.Allow {
			t.Errorf("with their flags, %s should be allowed: %+v", ip, v)
		}
	}
	if v := open.Connect(netip.MustParseAddr("10.0.2.2"), 80); !v.Allow {
		t.Errorf("--allow-host-loopback: the gateway should be allowed: %+v", v)
	}
	if v := open.Connect(netip.MustParseAddr("169.254.1.1"), 80); v.Allow {
		t.Errorf("--allow-link-local does not allow what no rule allows: %+v", v)
	}
}

func TestServerName(t *testing.T) {
	now := time.Unix(1000, 0)
	e := enforcer(t, Policy{AllowHost: []string{"a.test:443", "*.cdn.test"}, DenyHost: []string{"x.cdn.test"}}, Special{}, &now)
	for _, tc := range []struct {
		name string
		port uint16
		ok   bool
	}{{"a.test", 443, true}, {"A.test.", 443, true}, {"a.test", 80, false}, {"b.test", 443, false}, {"y.cdn.test", 8443, true}, {"x.cdn.test", 443, false}} {
		if err := e.ServerName(tc.name, tc.port); (err == nil) != tc.ok {
			t.Errorf("ServerName(%q, %d) = %v, want ok=%v", tc.name, tc.port, err, tc.ok)
		}
	}
}

func TestTableBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := NewTable(func() time.Time { return now })
	for i := range maxAddrs + 10 {
		tb.Learn("n.test", []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}, time.Minute)
	}
	if n := len(tb.byAddr); n != maxAddrs {
		t.Errorf("table holds %d addresses, want the bound %d", n, maxAddrs)
	}
	now = now.Add(2 * time.Minute)
	tb.Learn("m.test", []netip.Addr{netip.MustParseAddr("192.0.2.9")}, time.Minute)
	if names := tb.Names(netip.MustParseAddr("192.0.2.9")); len(names) != 1 {
		t.Errorf("a full table of expired entries must make room: %v", names)
	}
}

func TestLogAndSummary(t *testing.T) {
	var l Log
	if s := l.Snapshot(); s.Summary() != "" {
		t.Errorf("empty summary = %q", s.Summary())
	}
	add := func(r Record, n int) {
		for range n {
			l.Add(r)
		}
	}
	add(Record{Proto: TCP, Dst: "203.0.113.5", Port: 443, Name: "evil.example"}, 2)
	add(Record{Proto: TCP, Dst: "203.0.113.9", Port: 22}, 1)
	add(Record{Proto: DNS, Dst: "10.0.2.2", Port: 53, Name: "x.example"}, 1)
	add(Record{Proto: UDP, Dst: "203.0.113.9", Port: 53}, 1)
	b := l.Snapshot()
	want := "blocked 5 attempts: evil.example:443 ×2, 203.0.113.9:22, x.example (dns), 203.0.113.9:53/udp"
	if got := b.Summary(); got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	for i := range MaxRecords + 300 {
		l.Add(Record{Proto: TCP, Dst: "203.0.113.7", Port: uint16(i + 1)})
	}
	b = l.Snapshot()
	if len(b.Records) != MaxRecords || b.Dropped != b.Count-MaxRecords || len(b.Targets) != maxTargets || b.Other == 0 {
		t.Errorf("bounds: %d records, %d dropped of %d, %d targets, %d other", len(b.Records), b.Dropped, b.Count, len(b.Targets), b.Other)
	}
	if s := b.Summary(); !strings.Contains(s, "more)") || strings.Count(s, ",") != summaryItems {
		t.Errorf("a long summary is cut: %q", s)
	}
}
