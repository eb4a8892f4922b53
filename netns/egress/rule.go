// Package egress is the sandbox's egress policy by name (--allow-host,
// --allow-cidr, --deny-host): the rules and their parsing, the decisions
// the builtin network stack takes on each DNS query and each connection,
// the table of addresses allowed names resolved to, and the record of what
// was blocked. It imports only the standard library: the CLI validates
// with it, the sandbox-netstack helper enforces with it, the parent
// reports with it.
package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Rule is one parsed --allow-host, --deny-host or --allow-cidr value.
type Rule struct {
	Text string // as given, for reasons and the report
	// Exactly one of: a name (lower case, no trailing dot), a suffix
	// (*.example.org: the subdomains of example.org, stored as
	// ".example.org"), any name (*), or an address prefix.
	Name   string
	Suffix string
	Any    bool
	Prefix netip.Prefix
	Ports  []uint16 // empty: every port
}

// ParseHost parses NAME[:PORT[,PORT…]], *.SUFFIX[:…] or *[:…].
func ParseHost(s string) (Rule, error) {
	r := Rule{Text: s}
	host, ports, err := splitPorts(s)
	if err != nil {
		return r, err
	}
	r.Ports = ports
	if strings.HasSuffix(host, "*.") {
		return r, fmt.Errorf("%q: nothing after \"*.\" (use *.SUFFIX, or * for any name)", s)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case host == "*":
		r.Any = true
	case strings.HasPrefix(host, "*."):
		if err := checkName(host[2:]); err != nil {
			return r, fmt.Errorf("%q: after \"*.\": %v", s, err)
		}
		r.Suffix = host[1:]
	default:
		if err := checkName(host); err != nil {
			return r, fmt.Errorf("%q: %v", s, err)
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return r, fmt.Errorf("%q is an address: use --allow-cidr for addresses", s)
		}
		r.Name = host
	}
	return r, nil
}

// ParseCIDR parses CIDR[:PORT[,PORT…]] or ADDRESS[:…] (one address).
// IPv4 only: the builtin stack, the one that enforces a policy, carries
// IPv4 alone.
func ParseCIDR(s string) (Rule, error) {
	r := Rule{Text: s}
	spec, ports, err := splitPorts(s)
	if err != nil {
		return r, err
	}
	r.Ports = ports
	if strings.Contains(spec, "/") {
		p, err := netip.ParsePrefix(spec)
		if err != nil {
			return r, fmt.Errorf("%q is not an IPv4 CIDR such as 198.51.100.0/24", s)
		}
		r.Prefix = p.Masked()
	} else {
		a, err := netip.ParseAddr(spec)
		if err != nil {
			return r, fmt.Errorf("%q is not an IPv4 address or CIDR such as 198.51.100.0/24", s)
		}
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
	}
	if !r.Prefix.Addr().Is4() {
		return r, fmt.Errorf("%q: only IPv4 is supported (the sandbox's network is IPv4 only)", s)
	}
	return r, nil
}

// splitPorts splits "HOST:P1,P2" into HOST and its ports. A value with
// more than one colon is an IPv6 literal and refused by the callers.
func splitPorts(s string) (string, []uint16, error) {
	if s == "" {
		return "", nil, fmt.Errorf("empty value")
	}
	host, list, found := strings.Cut(s, ":")
	if strings.Contains(list, ":") {
		if strings.Contains(host, ".") {
			// A name or an IPv4 address, then ports split by ':'.
			return "", nil, fmt.Errorf("%q: one ':' before the ports, which ',' separates (NAME:443,8443)", s)
		}
		return "", nil, fmt.Errorf("%q: only IPv4 and names are supported (the sandbox's network is IPv4 only)", s)
	}
	if host == "" {
		return "", nil, fmt.Errorf("%q: no name or address before the ports", s)
	}
	if !found {
		return host, nil, nil
	}
	var ports []uint16
	for _, p := range strings.Split(list, ",") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", nil, fmt.Errorf("%q: %q is not a port (1-65535)", s, p)
		}
		if !slices.Contains(ports, uint16(n)) {
			ports = append(ports, uint16(n))
		}
	}
	return host, ports, nil
}

// checkName checks a DNS name: dot-separated labels of 1-63 letters,
// digits, '-' or '_' (not starting or ending with '-'), 253 bytes at most.
func checkName(n string) error {
	if n == "" {
		return fmt.Errorf("empty name")
	}
	if len(n) > 253 {
		return fmt.Errorf("name longer than 253 bytes")
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" {
			return fmt.Errorf("empty label (two dots, or a leading dot)")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %q longer than 63 bytes", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
		for _, c := range l {
			if c >= 0x80 {
				// Named whole, not by its first byte ("Ã" for "ü").
				return fmt.Errorf("%q is not allowed in a name: write an international name in its ASCII form (xn--…, as `idn2` prints it)", string(c))
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not allowed in a name (use *.SUFFIX for subdomains, * for any name)", string(c))
			}
		}
	}
	return nil
}

// matchName says whether r (a host rule) covers name, any port.
func (r *Rule) matchName(name string) bool {
	switch {
	case r.Any:
		return true
	case r.Suffix != "":
		return len(name) > len(r.Suffix) && strings.HasSuffix(name, r.Suffix)
	}
	return name == r.Name
}

// port says whether r covers port p (0: any port, for DNS).
func (r *Rule) port(p uint16) bool {
	return len(r.Ports) == 0 || p == 0 || slices.Contains(r.Ports, p)
}

// NormalName is a name as rules compare it: lower case, no trailing dot.
func NormalName(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }
