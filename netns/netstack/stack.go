package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"sandbox/netns"

	"github.com/containers/gvisor-tap-vsock/pkg/services/forwarder"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// The stack is assembled here from gvisor and gvisor-tap-vsock's parts
// (its tap switch and link endpoint, its UDP proxy and port forwarder)
// rather than taken whole from gvisor-tap-vsock's virtualnetwork: that one
// hides its TCP and UDP forwarders and its DNS server, and they are where
// the egress policy is enforced (forward.go, resolver.go).

const nic = 1

// network is the sandbox's user-mode network: an IPv4-only gvisor stack
// behind the tap, whose forwarders dial out from this (the host's) network
// namespace.
type network struct {
	stack   *stack.Stack
	sw      *tap.Switch
	gateway tcpip.Address
	ports   *forwarder.PortsForwarder
}

// newStack makes the stack; icmpBlocked, if not nil, hears each ICMP
// packet dropped (under a policy).
func newStack(gatewayMAC string, icmpBlocked func(netip.Addr)) (*network, error) {
	gw, err := netip.ParseAddr(netns.GatewayIP)
	if err != nil {
		return nil, err
	}
	ep, err := tap.NewLinkEndpoint(false, uint32(netns.MTU), gatewayMAC, netns.GatewayIP, nil)
	if err != nil {
		return nil, fmt.Errorf("creating the tap endpoint: %w", err)
	}
	sw := tap.NewSwitch(false)
	ep.Connect(sw)
	sw.Connect(ep)
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	if e := s.CreateNIC(nic, newICMPGate(ep, gw, icmpBlocked)); e != nil {
		return nil, errors.New(e.String())
	}
	n := &network{stack: s, sw: sw, gateway: tcpip.AddrFrom4(gw.As4())}
	if e := s.AddProtocolAddress(nic, tcpip.ProtocolAddress{
		Protocol: ipv4.ProtocolNumber, AddressWithPrefix: n.gateway.WithPrefix(),
	}, stack.AddressProperties{}); e != nil {
		return nil, errors.New(e.String())
	}
	// Promiscuous and spoofing: the stack takes every destination the
	// sandbox sends to and answers as that destination, so that the
	// forwarders see each connection and decide on it.
	s.SetSpoofing(nic, true)
	s.SetPromiscuousMode(nic, true)
	subnet, err := netip.ParsePrefix(netns.Subnet)
	if err != nil {
		return nil, err
	}
	sn, err := tcpip.NewSubnet(tcpip.AddrFrom4(subnet.Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(subnet.Bits(), 32)))
	if err != nil {
		return nil, fmt.Errorf("the sandbox's subnet: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: sn, NIC: nic}})
	// The stack's side of a connection the outside server closed first
	// sits in TIME_WAIT, where a new SYN from the same sandbox port is
	// dropped (gvisor hands it only to a listener; the forwarder is none):
	// with the default 60 s, about one short connection in 200 hung when
	// the sandbox's kernel reused a port. One second still absorbs the old
	// connection's late segments: the tap is one hop, nothing delays them.
	tw := tcpip.TCPTimeWaitTimeoutOption(time.Second)
	if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); e != nil {
		return nil, fmt.Errorf("setting the TIME_WAIT timeout: %s", e)
	}
	n.ports = forwarder.NewPortsForwarder(s)
	return n, nil
}

// Mux serves rootlesskit's gvisor-tap-vsock port driver (-p): it posts
// UDP expose requests to /services/forwarder/.
func (n *network) Mux() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("/services/forwarder/", http.StripPrefix("/services/forwarder", n.ports.Mux()))
	return m
}

// DialContextTCP connects into the sandbox (the port driver's TCP
// forwarding).
func (n *network) DialContextTCP(ctx context.Context, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("dialing into the sandbox: %q is not an IPv4 address and port", addr)
	}
	return gonet.DialContextTCP(ctx, n.stack, tcpip.FullAddress{NIC: nic, Addr: tcpip.AddrFrom4(ap.Addr().As4()), Port: ap.Port()}, ipv4.ProtocolNumber)
}

// accept serves the tap until ctx ends or the tap fails.
func (n *network) accept(ctx context.Context, conn net.Conn) error {
	return n.sw.Accept(ctx, conn, types.VfkitProtocol)
}

// gatewayAddr is the gateway's address and port on the stack.
func (n *network) gatewayAddr(port uint16) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nic, Addr: n.gateway, Port: port}
}

func addrPort(a tcpip.Address, port uint16) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(int(port)))
}

// icmpGate sits between the tap and the stack: under a policy it drops
// ICMP to anything but the gateway. The stack answers every address
// (promiscuous, spoofing), so without it a ping to any host would be
// answered by the stack itself: nothing leaves either way, but the
// sandbox would be told a blocked host is up.
type icmpGate struct {
	nested.Endpoint
	gateway netip.Addr
	blocked func(dst netip.Addr) // nil: no policy, nothing dropped
}

func newICMPGate(child stack.LinkEndpoint, gateway netip.Addr, blocked func(netip.Addr)) *icmpGate {
	g := &icmpGate{gateway: gateway, blocked: blocked}
	g.Endpoint.Init(child, g)
	return g
}

func (g *icmpGate) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if g.blocked != nil && proto == header.IPv4ProtocolNumber {
		if b, ok := pkt.Data().PullUp(header.IPv4MinimumSize); ok {
			ip := header.IPv4(b)
			dst := netip.AddrFrom4(ip.DestinationAddress().As4())
			if ip.TransportProtocol() == header.ICMPv4ProtocolNumber && dst != g.gateway {
				g.blocked(dst)
				return
			}
		}
	}
	g.Endpoint.DeliverNetworkPacket(proto, pkt)
}
