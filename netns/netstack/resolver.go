package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"sandbox/netns"
	"sandbox/netns/egress"

	"github.com/miekg/dns"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// upstreamTimeout bounds one forwarded query, per upstream server.
const upstreamTimeout = 5 * time.Second

// resolver is the sandbox's DNS server, on the gateway's port 53 (UDP and
// TCP). It forwards queries to the upstream servers as they are (answers
// keep their TTLs), except that under a policy a name no rule allows is
// answered NXDOMAIN here and never sent anywhere: DNS cannot carry data
// out. The addresses allowed names resolve to go into the policy's table.
type resolver struct {
	enforcer  *egress.Enforcer
	upstreams []string // host:port
	blocked   func(egress.Record)
}

// upstreams are the servers to forward to: dnsIP, else the host's
// resolv.conf nameservers (a 127.0.0.53 stub is reachable from here, the
// host's network namespace).
func upstreams(dnsIP string) ([]string, error) {
	if dnsIP != "" {
		return []string{net.JoinHostPort(dnsIP, "53")}, nil
	}
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // no servers: every forwarded query fails (SERVFAIL)
		}
		return nil, fmt.Errorf("reading the host's /etc/resolv.conf: %w", err)
	}
	var out []string
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out, nil
}

func (r *resolver) serve(ctx context.Context, n *network) error {
	addr := n.gatewayAddr(53)
	pc, err := gonet.DialUDP(n.stack, &addr, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("the DNS server's UDP port: %w", err)
	}
	ln, err := gonet.ListenTCP(n.stack, addr, ipv4.ProtocolNumber)
	if err != nil {
		pc.Close()
		return fmt.Errorf("the DNS server's TCP port: %w", err)
	}
	h := dns.HandlerFunc(r.handle)
	udpSrv := &dns.Server{PacketConn: pc, Handler: h}
	tcpSrv := &dns.Server{Listener: ln, Handler: h, ReadTimeout: upstreamTimeout}
	go udpSrv.ActivateAndServe()
	go tcpSrv.ActivateAndServe()
	go func() {
		<-ctx.Done()
		udpSrv.Shutdown()
		tcpSrv.Shutdown()
	}()
	return nil
}

func (r *resolver) handle(w dns.ResponseWriter, q *dns.Msg) {
	tcp := w.RemoteAddr().Network() == "tcp"
	reply := func(m *dns.Msg) {
		size := dns.MaxMsgSize
		if !tcp {
			size = dns.MinMsgSize
			if o := q.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
		}
		m.Truncate(size)
		w.WriteMsg(m)
	}
	fail := func(rcode int) {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		m.RecursionAvailable = true
		reply(m)
	}
	if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		fail(dns.RcodeFormatError)
		return
	}
	name := egress.NormalName(q.Question[0].Name)
	if r.enforcer != nil {
		if err := r.enforcer.Query(name); err != nil {
			r.blocked(egress.Record{Time: time.Now(), Proto: egress.DNS, Dst: netns.GatewayIP, Port: 53, Name: name, Reason: err.Error()})
			fail(dns.RcodeNameError)
			return
		}
	}
	resp, err := r.forward(q)
	if err != nil {
		fail(dns.RcodeServerFailure)
		return
	}
	if r.enforcer != nil {
		r.learn(name, resp)
	}
	resp.Id = q.Id
	reply(resp)
}

// forward asks each upstream in turn, over TCP when UDP's answer was
// truncated.
func (r *resolver) forward(q *dns.Msg) (*dns.Msg, error) {
	err := errors.New("no upstream DNS server (the host's /etc/resolv.conf has none; give --dns)")
	for _, up := range r.upstreams {
		c := &dns.Client{Net: "udp", Timeout: upstreamTimeout}
		var resp *dns.Msg
		resp, _, err = c.Exchange(q, up)
		if err == nil && resp.Truncated {
			c.Net = "tcp"
			resp, _, err = c.Exchange(q, up)
		}
		if err == nil {
			return resp, nil
		}
	}
	return nil, err
}

// learn puts the IPv4 addresses of an answer into the policy's table,
// under the name asked (a CNAME chain's targets are the name's too).
func (r *resolver) learn(name string, resp *dns.Msg) {
	var addrs []netip.Addr
	ttl := time.Duration(-1)
	for _, rr := range resp.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.A.To4())
		if !ok {
			continue
		}
		addrs = append(addrs, ip)
		if t := time.Duration(a.Hdr.Ttl) * time.Second; ttl < 0 || t < ttl {
			ttl = t
		}
	}
	if len(addrs) > 0 && !strings.HasSuffix(name, ".in-addr.arpa") {
		r.enforcer.Table.Learn(name, addrs, ttl)
	}
}
