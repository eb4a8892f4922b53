// Package netns describes a sandbox's user-mode network, the part both sides
// share: the --net modes, the address plan, -p/--publish specs, the
// sandbox's resolv.conf, and Child, what init does inside for the chosen
// driver. It imports only the standard library, so that sandbox-init can
// link it without any driver's dependencies.
//
// The sides live in subpackages: netns/driver starts and stops the drivers
// from the parent (pasta, slirp4netns, builtin; selection of auto), netns/link
// is init's side inside the new network namespace (tap, address, routes),
// and netns/netstack is the builtin driver's helper process.
//
// Every driver uses one address plan, so that the sandbox looks the same
// whichever is used:
//
//	10.0.2.0/24   the sandbox's subnet; the sandbox is 10.0.2.100
//	10.0.2.2      the gateway; with --allow-host-loopback it also stands for the
//	              host's 127.0.0.1 (host.sandbox.internal in /etc/hosts)
//	10.0.2.3      the DNS forwarder (pasta, slirp4netns); builtin answers DNS on
//	              the gateway address
//
// Safe defaults: the host's loopback is unreachable unless allowed, and
// 169.254.0.0/16 (cloud metadata) is refused by a "prohibit" route inside the
// sandbox (and by the builtin stack itself) unless allowed.
package netns

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Mode is the --net choice.
type Mode string

// Modes. Auto picks the first usable driver (driver.Drivers).
const (
	Auto        Mode = "auto"
	Pasta       Mode = "pasta"
	Slirp4netns Mode = "slirp4netns"
	Builtin     Mode = "builtin"
	None        Mode = "none"
	Host        Mode = "host"
)

// ParseMode checks a --net value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Pasta, Slirp4netns, Builtin, None, Host:
		return m, nil
	case "":
		return Auto, nil
	}
	return "", fmt.Errorf("unknown network mode %q (use auto, pasta, slirp4netns, builtin, none or host)", s)
}

// The address plan shared by all drivers.
const (
	Subnet       = "10.0.2.0/24"
	SandboxIP    = "10.0.2.100"
	PrefixLen    = 24
	GatewayIP    = "10.0.2.2"
	DNSIP        = "10.0.2.3"
	HostLoopback = GatewayIP // the host's 127.0.0.1, when allowed
	LinkLocal    = "169.254.0.0/16"
	// MTU 65520 (the largest a tap takes with these helpers) moves bulk
	// data in fewer, larger frames: the helpers' cost is per packet.
	MTU     = 65520
	TapName = "tap0"
	// HostAlias names HostLoopback in the sandbox's /etc/hosts.
	HostAlias = "host.sandbox.internal"
)

// Child is init's part of the setup for the chosen driver, sent in its
// configuration (netns/driver's Config.ChildPart makes it).
type Child struct {
	Mode Mode `json:"mode"`
	// CreateTap: init creates the tap and hands it to the parent (builtin,
	// slirp4netns). PersistTap: it outlives its fds and goes with the
	// sandbox's network namespace, so that the helper's last close only
	// detaches from it: a non-persistent tap's is unregistered then, and
	// the helper's exit waited for that (~20 ms, which the end of every
	// run waited for). TapByName: the helper attaches by name
	// (slirp4netns): init detaches and sends only the news, and a
	// holder's stage may make it; else init sends its fd (builtin).
	CreateTap  bool `json:"create_tap,omitempty"`
	PersistTap bool `json:"persist_tap,omitempty"`
	TapByName  bool `json:"tap_by_name,omitempty"`
	// TapMade: the persistent tap exists already (init's stage made it, and
	// the parent gave it to the driver): init configures it and sends no
	// Tap.
	TapMade bool `json:"tap_made,omitempty"`
	// Configure: init gives the tap its address and route (slirp4netns and
	// builtin; pasta configures the interface itself).
	Configure bool `json:"configure,omitempty"`
	// BlockLinkLocal: a prohibit route for 169.254.0.0/16.
	BlockLinkLocal bool `json:"block_link_local,omitempty"`
}

// TunAdvice is the fix for an inaccessible /dev/net/tun.
const TunAdvice = "fix: sudo chmod 0666 /dev/net/tun (distributions ship it 0666; to keep it, a udev rule " +
	"KERNEL==\"tun\", MODE=\"0666\"), or run with --net=none or --net=host"

// Publish is one -p/--publish: a host address and port forwarded to a port
// inside the sandbox.
type Publish struct {
	HostIP      string `json:"host_ip"`
	HostPort    int    `json:"host_port"`
	SandboxPort int    `json:"sandbox_port"`
	Proto       string `json:"proto"` // "tcp" or "udp"
}

func (p Publish) String() string {
	host := p.HostIP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(p.HostPort) + ":" + strconv.Itoa(p.SandboxPort) + "/" + p.Proto
}

// Duplicate says whether p and q ask for the same host port: same
// protocol and port, on the same address or one of them on all (0.0.0.0).
func (p Publish) Duplicate(q Publish) bool {
	return p.Proto == q.Proto && p.HostPort == q.HostPort &&
		(p.HostIP == q.HostIP || p.HostIP == "0.0.0.0" || q.HostIP == "0.0.0.0")
}

// ParsePublish parses [HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|/udp]. HOSTIP is an
// IPv4 address (an IPv6 one, bracketed or not, is refused with the reason);
// it defaults to 127.0.0.1, never all addresses: publishing to the network
// must be asked for (0.0.0.0).
func ParsePublish(s string) (Publish, error) {
	p := Publish{HostIP: "127.0.0.1", Proto: "tcp"}
	spec := s
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		p.Proto = spec[i+1:]
		spec = spec[:i]
		if p.Proto != "tcp" && p.Proto != "udp" {
			return p, fmt.Errorf("%q: protocol %q: use tcp or udp", s, p.Proto)
		}
	}
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return p, fmt.Errorf("%q: want [HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|udp], e.g. 8080:80", s)
	}
	sport, rest := spec[i+1:], spec[:i]
	hport := rest
	if j := strings.LastIndexByte(rest, ':'); j >= 0 {
		hport = rest[j+1:]
		ip := strings.TrimSuffix(strings.TrimPrefix(rest[:j], "["), "]")
		parsed, err := netip.ParseAddr(ip)
		if err != nil {
			return p, fmt.Errorf("%q: %q is not an IP address", s, rest[:j])
		}
		if parsed = parsed.Unmap(); !parsed.Is4() {
			// pasta runs --ipv4-only; slirp4netns' API and the builtin
			// stack's port driver take IPv4 host addresses only.
			return p, fmt.Errorf("%q: %s is an IPv6 address: the network drivers publish on IPv4 host addresses only (use 127.0.0.1, or 0.0.0.0 for all)", s, ip)
		}
		if parsed.IsMulticast() || parsed == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return p, fmt.Errorf("%q: %s is not an address a host listens on (use 127.0.0.1, an address of this host, or 0.0.0.0 for all)", s, parsed)
		}
		p.HostIP = parsed.String()
	}
	var err error
	if p.HostPort, err = parsePort(hport); err != nil {
		return p, fmt.Errorf("%q: host port: %v", s, err)
	}
	if p.SandboxPort, err = parsePort(sport); err != nil {
		return p, fmt.Errorf("%q: sandbox port: %v", s, err)
	}
	return p, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// ResolvConf is the sandbox's /etc/resolv.conf: the driver's forwarder as the
// only nameserver (the host's own may be a 127.0.0.53 stub that is
// unreachable from inside), with the host's search domains and options kept.
func ResolvConf(nameserver string, host []byte) string {
	var b strings.Builder
	b.WriteString("# generated by sandbox: the network driver's DNS forwarder\n")
	fmt.Fprintf(&b, "nameserver %s\n", nameserver)
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	return b.String()
}
