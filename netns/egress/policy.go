package egress

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Policy is the egress policy as the user gave it: what the CLI checks,
// the helper is sent and the report shows.
type Policy struct {
	AllowHost []string `json:"allow_host"`
	AllowCIDR []string `json:"allow_cidr"`
	DenyHost  []string `json:"deny_host"`
	// DNS is the upstream server allowed names are forwarded to ("" for
	// the host's).
	DNS string `json:"dns,omitempty"`
}

// Active says whether p restricts anything: one allow rule is enough.
func (p *Policy) Active() bool {
	return p != nil && len(p.AllowHost)+len(p.AllowCIDR) > 0
}

// Check parses every rule, naming the flag and the value of the first bad
// one.
func (p *Policy) Check() error {
	_, err := p.compile()
	return err
}

// Special are the addresses that stay blocked under a policy unless their
// own flag allows them, even when an allowed name resolves to them (DNS
// rebinding) or an --allow-cidr covers them.
type Special struct {
	AllowHostLoopback bool // 127.0.0.0/8, the host's own addresses, the gateway
	AllowLinkLocal    bool // 169.254.0.0/16
	// HostAddrs are the host's own addresses (its interfaces').
	HostAddrs []netip.Addr
	// Gateway is the sandbox's gateway (the host's loopback when allowed),
	// Subnet the sandbox's own subnet.
	Gateway netip.Addr
	Subnet  netip.Prefix
}

// Enforcer takes the decisions of one sandbox's policy. It is safe for
// concurrent use.
type Enforcer struct {
	allow, cidr, deny []Rule
	special           Special
	Table             *Table
	now               func() time.Time
}

func (p *Policy) compile() (*Enforcer, error) {
	e := &Enforcer{}
	for _, s := range p.AllowHost {
		r, err := ParseHost(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-host %v", err)
		}
		e.allow = append(e.allow, r)
	}
	for _, s := range p.AllowCIDR {
		r, err := ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-cidr %v", err)
		}
		e.cidr = append(e.cidr, r)
	}
	for _, s := range p.DenyHost {
		r, err := ParseHost(s)
		if err != nil {
			return nil, fmt.Errorf("--deny-host %v", err)
		}
		e.deny = append(e.deny, r)
	}
	if len(e.deny) > 0 && len(e.allow)+len(e.cidr) == 0 {
		return nil, fmt.Errorf("--deny-host narrows the --allow-host rules, and there are none: add one (--allow-host '*' allows any name, and then only addresses names resolved to)")
	}
	if p.DNS != "" {
		a, err := netip.ParseAddr(p.DNS)
		if err != nil || !a.Unmap().Is4() {
			return nil, fmt.Errorf("--dns %q is not an IPv4 address", p.DNS)
		}
	}
	return e, nil
}

// NewEnforcer compiles p for the stack, with the addresses special
// guards.
func NewEnforcer(p *Policy, special Special) (*Enforcer, error) {
	e, err := p.compile()
	if err != nil {
		return nil, err
	}
	e.special, e.now = special, time.Now
	e.Table = NewTable(e.now)
	return e, nil
}

// Verdict is the decision on one connection.
type Verdict struct {
	Allow bool
	// ByName: allowed only because allowed names resolved to the address
	// (Names), so a TLS SNI or an HTTP Host must name one of the allowed
	// names too; false when an --allow-cidr covers it.
	ByName bool
	Names  []string
	Reason string // why it is blocked
	Name   string // the name the address is known by, for the record
}

// Query decides a DNS query for name: forward it (nil) or answer it
// locally with NXDOMAIN, for the reason returned.
func (e *Enforcer) Query(name string) error {
	name = NormalName(name)
	for i := range e.deny {
		if d := &e.deny[i]; len(d.Ports) == 0 && d.matchName(name) {
			return fmt.Errorf("denied by --deny-host %s", d.Text)
		}
	}
	for i := range e.allow {
		if e.allow[i].matchName(name) {
			return nil
		}
	}
	return fmt.Errorf("no rule allows this name (--allow-host)")
}

// ServerName says whether a TLS SNI or an HTTP Host header naming name may
// pass on port (nil) or why not.
func (e *Enforcer) ServerName(name string, port uint16) error {
	name = NormalName(name)
	for i := range e.deny {
		if d := &e.deny[i]; d.port(port) && d.matchName(name) {
			return fmt.Errorf("denied by --deny-host %s", d.Text)
		}
	}
	for i := range e.allow {
		if a := &e.allow[i]; a.port(port) && a.matchName(name) {
			return nil
		}
	}
	return fmt.Errorf("no rule allows %s on port %d", name, port)
}

// Connect decides a TCP or UDP connection to addr:port.
func (e *Enforcer) Connect(addr netip.Addr, port uint16) Verdict {
	addr = addr.Unmap()
	names := e.Table.Names(addr)
	v := Verdict{}
	if len(names) > 0 {
		v.Name = names[0]
	}
	if why := e.special.blocks(addr); why != "" {
		v.Reason = why
		return v
	}
	if addr == e.special.Gateway {
		v.Allow = true // --allow-host-loopback: the host's loopback, asked for by its own flag
		return v
	}
	for i := range e.cidr {
		if c := &e.cidr[i]; c.Prefix.Contains(addr) && c.port(port) {
			v.Allow = true
			return v
		}
	}
	var denied, portless []string
	for _, n := range names {
		switch err := e.ServerName(n, port); {
		case err == nil:
			v.Names = append(v.Names, n)
		case strings.HasPrefix(err.Error(), "denied"):
			denied = append(denied, err.Error())
		default:
			portless = append(portless, n)
		}
	}
	switch {
	case len(v.Names) > 0:
		v.Allow, v.ByName, v.Name = true, true, v.Names[0]
	case len(denied) > 0:
		v.Reason = denied[0]
	case len(portless) > 0:
		v.Reason = fmt.Sprintf("no rule allows port %d of %s", port, strings.Join(portless, ", "))
	default:
		v.Reason = "no rule allows this address (only those allowed names resolved to, and --allow-cidr)"
	}
	return v
}

// blocks says why addr stays blocked whatever the rules say, or "".
func (s *Special) blocks(a netip.Addr) string {
	switch {
	case a == s.Gateway:
		if s.AllowHostLoopback {
			return ""
		}
		return "the gateway, which stands for the host's loopback (--allow-host-loopback)"
	case a.IsLoopback():
		if s.AllowHostLoopback {
			return ""
		}
		return "the host's loopback (--allow-host-loopback)"
	case a.IsLinkLocalUnicast():
		if s.AllowLinkLocal {
			return ""
		}
		return "link-local, where cloud metadata services live (--allow-link-local)"
	case s.Subnet.Contains(a):
		return "the sandbox's own subnet"
	case !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalMulticast() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a.As4()[0] == 0:
		return "not a unicast destination"
	}
	for _, h := range s.HostAddrs {
		if a == h.Unmap() {
			if s.AllowHostLoopback {
				return ""
			}
			return "one of the host's own addresses (--allow-host-loopback)"
		}
	}
	return ""
}
