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
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// The stack is assembled here from gvisor and gvisor-tap-vsock's parts
// (its UDP proxy and port forwarder) rather than taken whole from
// gvisor-tap-vsock's virtualnetwork: that one hides its TCP and UDP
// forwarders and its DNS server, and they are where the egress policy is
// enforced (forward.go, resolver.go). The tap is gvisor's own fd-based link
// endpoint, not gvisor-tap-vsock's switch and link endpoint: their package
// links gopacket's layers for debug output, whose initialisation (tables
// of every EtherType and protocol number) took ~29 ms of each start of
// this helper on the CI machine, where a page fault is dear.

const nic = 1

// network is the sandbox's user-mode network: an IPv4-only gvisor stack
// behind the tap, whose forwarders dial out from this (the host's) network
// namespace.
type network struct {
	stack       *stack.Stack
	gateway     tcpip.Address
	gatewayMAC  tcpip.LinkAddress
	icmpBlocked func(netip.Addr)
	ports       *forwarder.PortsForwarder
	// closed has the reason the tap's endpoint stopped reading (attach).
	closed chan error
}

// newStack makes the stack, without its NIC until the tap comes (attach);
// icmpBlocked, if not nil, hears each ICMP packet dropped (under a
// policy).
func newStack(gatewayMAC string, icmpBlocked func(netip.Addr)) (*network, error) {
	gw, err := netip.ParseAddr(netns.GatewayIP)
	if err != nil {
		return nil, err
	}
	mac, err := net.ParseMAC(gatewayMAC)
	if err != nil {
		return nil, fmt.Errorf("the gateway's MAC address: %w", err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	n := &network{stack: s, gateway: tcpip.AddrFrom4(gw.As4()), gatewayMAC: tcpip.LinkAddress(mac),
		icmpBlocked: icmpBlocked, closed: make(chan error, 1)}
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

// attach makes the tap (fd, one Ethernet frame per read and write) the
// stack's NIC, the gateway's address on it, and the routes to the
// sandbox's subnet. The endpoint reads the tap on a goroutine of its own
// until the tap fails (n.closed).
func (n *network) attach(fd int) error {
	ep, err := fdbased.New(&fdbased.Options{
		FDs:            []int{fd},
		MTU:            uint32(netns.MTU),
		EthernetHeader: true,
		Address:        n.gatewayMAC,
		// The sandbox's kernel checksums what it writes to a tap that
		// offers it no offloads; the stack checksums what it sends.
		RXChecksumOffload: true,
		ClosedFunc: func(e tcpip.Error) {
			select {
			case n.closed <- fmt.Errorf("reading the tap: %s", e):
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("creating the tap endpoint: %w", err)
	}
	s := n.stack
	if e := s.CreateNIC(nic, newLinkGate(ep, netip.AddrFrom4(n.gateway.As4()), n.icmpBlocked)); e != nil {
		return errors.New(e.String())
	}
	if e := s.AddProtocolAddress(nic, tcpip.ProtocolAddress{
		Protocol: ipv4.ProtocolNumber, AddressWithPrefix: n.gateway.WithPrefix(),
	}, stack.AddressProperties{}); e != nil {
		return errors.New(e.String())
	}
	// Promiscuous and spoofing: the stack takes every destination the
	// sandbox sends to and answers as that destination, so that the
	// forwarders see each connection and decide on it.
	s.SetSpoofing(nic, true)
	s.SetPromiscuousMode(nic, true)
	subnet, err := netip.ParsePrefix(netns.Subnet)
	if err != nil {
		return err
	}
	sn, err := tcpip.NewSubnet(tcpip.AddrFrom4(subnet.Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(subnet.Bits(), 32)))
	if err != nil {
		return fmt.Errorf("the sandbox's subnet: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: sn, NIC: nic}})
	return nil
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

// gatewayAddr is the gateway's address and port on the stack.
func (n *network) gatewayAddr(port uint16) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nic, Addr: n.gateway, Port: port}
}

func addrPort(a tcpip.Address, port uint16) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(int(port)))
}

// linkGate sits between the tap and the stack. Under a policy it drops
// ICMP to anything but the gateway: the stack answers every address
// (promiscuous, spoofing), so without it a ping to any host would be
// answered by the stack itself (nothing leaves either way, but the
// sandbox would be told a blocked host is up). Always, it drops the
// stack's ARP replies about any address but the gateway's: spoofing, the
// stack would claim every address of the subnet for the gateway's MAC
// (gvisor-tap-vsock's link endpoint, which this replaces, dropped them).
type linkGate struct {
	nested.Endpoint
	gateway netip.Addr
	blocked func(dst netip.Addr) // nil: no policy, no ICMP dropped
}

func newLinkGate(child stack.LinkEndpoint, gateway netip.Addr, blocked func(netip.Addr)) *linkGate {
	g := &linkGate{gateway: gateway, blocked: blocked}
	g.Endpoint.Init(child, g)
	return g
}

func (g *linkGate) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
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

// WritePackets passes on all but the ARP replies about another address
// than the gateway's; those count as written (the caller keeps its
// references to every packet either way).
func (g *linkGate) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	all := pkts.AsSlice()
	spoofed := false
	for _, p := range all {
		spoofed = spoofed || g.spoofedARPReply(p)
	}
	if !spoofed {
		// Every batch of the data path: passed on as it is, no list made.
		return g.Endpoint.WritePackets(pkts)
	}
	var keep stack.PacketBufferList
	for _, p := range all {
		if !g.spoofedARPReply(p) {
			keep.PushBack(p)
		}
	}
	dropped := len(all) - keep.Len()
	if keep.Len() == 0 {
		return dropped, nil
	}
	n, err := g.Endpoint.WritePackets(keep)
	return n + dropped, err
}

// spoofedARPReply: p is the stack's ARP reply for an address not the
// gateway's.
func (g *linkGate) spoofedARPReply(p *stack.PacketBuffer) bool {
	if p.NetworkProtocolNumber != header.ARPProtocolNumber {
		return false
	}
	h := header.ARP(p.NetworkHeader().Slice())
	if !h.IsValid() || h.Op() != header.ARPReply {
		return false
	}
	sender, ok := netip.AddrFromSlice(h.ProtocolAddressSender())
	return !ok || sender.Unmap() != g.gateway
}
