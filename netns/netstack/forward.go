package netstack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"sandbox/netns"
	"sandbox/netns/egress"

	"github.com/containers/gvisor-tap-vsock/pkg/services/forwarder"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Bounds of the forwarders.
const (
	maxPendingTCP = 64               // handshakes being decided at once
	dialTimeout   = 30 * time.Second // connecting out
	udpIdle       = 90 * time.Second // a UDP flow without traffic ends
)

// egressGate decides what the sandbox may reach and records what it may
// not. Without a policy (enforcer nil) everything may go out except
// link-local (unless allowed); the gateway stands for the host's loopback
// when that is allowed.
type egressGate struct {
	enforcer          *egress.Enforcer
	allowLinkLocal    bool
	allowHostLoopback bool
	blocked           func(egress.Record)
}

var linkLocal = netip.MustParsePrefix(netns.LinkLocal)

// decide is the verdict on proto to dst:port.
func (g *egressGate) decide(proto string, dst netip.Addr, port uint16) egress.Verdict {
	if g.enforcer == nil {
		if !g.allowLinkLocal && linkLocal.Contains(dst) {
			return egress.Verdict{Reason: "link-local, where cloud metadata services live (--allow-link-local)"}
		}
		return egress.Verdict{Allow: true}
	}
	v := g.enforcer.Connect(dst, port)
	if v.Allow && v.ByName && proto == egress.UDP && port == 443 {
		// QUIC carries its server name encrypted under keys anyone can
		// derive, but checking it is a parser of its own; refused, the
		// clients fall back to TLS over TCP, where the SNI is checked.
		return egress.Verdict{Name: v.Name, Reason: "QUIC (UDP 443) to an address allowed by name: its SNI is not checked, use TCP"}
	}
	return v
}

// target is where a connection to dst:port is dialed: the gateway is the
// host's loopback when allowed.
func (g *egressGate) target(dst netip.Addr, port uint16) string {
	if g.allowHostLoopback && dst.String() == netns.HostLoopback {
		dst = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return net.JoinHostPort(dst.String(), strconv.Itoa(int(port)))
}

func (g *egressGate) record(proto string, dst netip.Addr, port uint16, v egress.Verdict) {
	g.blocked(egress.Record{Time: time.Now(), Proto: proto, Dst: dst.String(), Port: port, Name: v.Name, Reason: v.Reason})
}

func toAddr(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}

// tcpForwarder connects the sandbox's TCP connections out, as allowed.
func (n *network) tcpForwarder(g *egressGate) *tcp.Forwarder {
	return tcp.NewForwarder(n.stack, 0, maxPendingTCP, func(r *tcp.ForwarderRequest) {
		id := r.ID()
		dst, port := toAddr(id.LocalAddress), id.LocalPort
		v := g.decide(egress.TCP, dst, port)
		if !v.Allow {
			g.record(egress.TCP, dst, port, v)
			r.Complete(true) // a reset: the client fails at once
			return
		}
		var release func()
		if v.ByName {
			release = g.enforcer.Table.Hold(dst, v.Names)
		}
		d := net.Dialer{Timeout: dialTimeout}
		out, err := d.Dial("tcp", g.target(dst, port))
		if err != nil {
			if release != nil {
				release()
			}
			r.Complete(true)
			return
		}
		var wq waiter.Queue
		ep, e := r.CreateEndpoint(&wq)
		r.Complete(false)
		if e != nil {
			out.Close()
			if release != nil {
				release()
			}
			return
		}
		in := gonet.NewTCPConn(&wq, ep)
		go func() {
			if release != nil {
				defer release()
			}
			proxy(in, out, func() error {
				if !v.ByName {
					_, err := io.Copy(out, in)
					return err
				}
				err := forwardChecked(in, out, func(t time.Time) { in.SetReadDeadline(t) }, func(name string) error {
					return g.enforcer.ServerName(name, port)
				})
				var ne *nameError
				if errors.As(err, &ne) {
					if ne.name != "" {
						v.Name = ne.name
					}
					v.Reason = ne.Error()
					g.record(egress.TCP, dst, port, v)
				}
				return err
			})
		}()
	})
}

// proxy runs clientToServer and copies the server's bytes to the client
// at once (a protocol where the server speaks first works while the
// client's first bytes are checked), until both directions are done; a
// failed clientToServer closes both.
func proxy(in, out net.Conn, clientToServer func() error) {
	defer in.Close()
	defer out.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(in, out)
		closeWrite(in)
	}()
	if err := clientToServer(); err != nil {
		in.Close()
		out.Close()
	} else {
		closeWrite(out)
	}
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// udpForwarder forwards the sandbox's UDP flows, as allowed.
func (n *network) udpForwarder(g *egressGate) *udp.Forwarder {
	return udp.NewForwarder(n.stack, func(r *udp.ForwarderRequest) {
		id := r.ID()
		dst, port := toAddr(id.LocalAddress), id.LocalPort
		if id.LocalAddress == header.IPv4Broadcast {
			return
		}
		v := g.decide(egress.UDP, dst, port)
		if !v.Allow {
			g.record(egress.UDP, dst, port, v)
			return
		}
		var release func()
		if v.ByName {
			release = g.enforcer.Table.Hold(dst, v.Names)
		}
		var wq waiter.Queue
		ep, e := r.CreateEndpoint(&wq)
		if e != nil {
			if release != nil {
				release()
			}
			return
		}
		target := g.target(dst, port)
		p, _ := forwarder.NewUDPProxy(&idleConn{gonet.NewUDPConn(&wq, ep)}, func() (net.Conn, error) {
			return net.DialTimeout("udp", target, dialTimeout)
		})
		go func() {
			p.Run()
			ep.Close()
			if release != nil {
				release()
			}
		}()
	})
}

// idleConn ends a UDP flow after udpIdle without traffic.
type idleConn struct{ *gonet.UDPConn }

func (c *idleConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.UDPConn.SetReadDeadline(time.Now().Add(udpIdle))
	return c.UDPConn.ReadFrom(b)
}

func (c *idleConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.UDPConn.SetReadDeadline(time.Now().Add(udpIdle))
	return c.UDPConn.WriteTo(b, a)
}

// forward installs the TCP and UDP forwarders on the stack.
func (n *network) forward(g *egressGate) {
	n.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, n.tcpForwarder(g).HandlePacket)
	n.stack.SetTransportProtocolHandler(udp.ProtocolNumber, n.udpForwarder(g).HandlePacket)
}
