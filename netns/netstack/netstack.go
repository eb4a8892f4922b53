// Package netstack is the builtin network driver's helper process: a
// gvisor user-mode stack on the sandbox's tap (stack.go: gvisor's fd-based
// link endpoint, gvisor-tap-vsock's UDP proxy and port forwarder), its
// forwarders and DNS server, which enforce the egress policy (forward.go,
// inspect.go, resolver.go; the decisions are netns/egress'), and
// rootlesskit's gvisor-tap-vsock port driver for -p. It lives in its own
// executable because its dependencies cost ~7 ms of package
// initialisation at every start (~31 with gvisor-tap-vsock's tap package:
// see stack.go). See netns/driver/builtin.go for the protocol.
package netstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"sandbox/internal/proto"
	"sandbox/netns"
	"sandbox/netns/driver"
	"sandbox/netns/egress"

	"github.com/rootless-containers/rootlesskit/v3/pkg/port"
	portgvisor "github.com/rootless-containers/rootlesskit/v3/pkg/port/gvisortapvsock"
	"github.com/sirupsen/logrus"
)

// controlFD is the socketpair end the parent passes (ExtraFiles[0]).
const controlFD = 3

// gatewayMAC is a fixed, locally administered address.
const gatewayMAC = "5a:94:ef:e4:0c:dd"

// maxLive bounds the blocked attempts sent to the parent as they happen
// (its -v lines); all of them are counted in Stats.
const maxLive = 1000

// Main runs the helper; it returns the exit status.
func Main() int {
	logrus.SetOutput(io.Discard) // errors go to the parent over the socket
	conn := proto.FromFD(controlFD)
	var sendMu sync.Mutex
	send := func(kind proto.Kind, body any) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return conn.Send(kind, body)
	}
	fail := func(err error) int {
		send(proto.KindError, err.Error())
		return 1
	}
	env, _, err := conn.Recv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-netstack: not started by sandbox (no control socket on fd 3)")
		return 2
	}
	var cfg driver.HelperConfig
	if err := env.Decode(&cfg); err != nil {
		return fail(err)
	}
	var blocked egress.Log
	var live atomic.Int32
	gate, res, err := newGate(cfg, func(r egress.Record) {
		blocked.Add(r)
		if cfg.LiveBlocked && live.Add(1) <= maxLive {
			send(proto.KindBlocked, r)
		}
	})
	if err != nil {
		return fail(err)
	}
	var icmpBlocked func(netip.Addr)
	if gate.enforcer != nil {
		icmpBlocked = func(dst netip.Addr) {
			gate.blocked(egress.Record{Time: time.Now(), Proto: egress.ICMP, Dst: dst.String(),
				Reason: "ICMP goes only to the gateway under a policy (the stack would answer for any host)"})
		}
	}
	n, err := newStack(gatewayMAC, icmpBlocked)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.forward(gate)
	if len(cfg.Publish) > 0 {
		if err := publish(n, cfg.Publish); err != nil {
			return fail(err)
		}
	}
	env, fds, err := conn.Recv()
	if err != nil {
		return 0 // the parent gave up before the tap came
	}
	if env.Kind != proto.KindTap || len(fds) != 1 {
		return fail(fmt.Errorf("expected the tap, got %s with %d fds", env.Kind, len(fds)))
	}
	if err := n.attach(fds[0]); err != nil {
		return fail(err)
	}
	// The DNS server binds the gateway's address, which the NIC has now.
	if err := res.serve(ctx, n); err != nil {
		return fail(err)
	}
	if err := send(proto.KindStarted, nil); err != nil {
		return 0
	}
	eof := make(chan struct{})
	go func() {
		for {
			env, fds, err := conn.Recv()
			if err != nil {
				close(eof)
				return
			}
			proto.CloseFDs(fds)
			if env.Kind == proto.KindStop {
				send(proto.KindStats, blocked.Snapshot())
			}
		}
	}()
	select {
	case <-eof: // the parent is done: the sandbox ended
		return 0
	case err := <-n.closed:
		fmt.Fprintf(os.Stderr, "sandbox-netstack: %v\n", err)
		return 1
	}
}

// newGate makes the egress decisions and the DNS server of cfg.
func newGate(cfg driver.HelperConfig, blocked func(egress.Record)) (*egressGate, *resolver, error) {
	g := &egressGate{allowLinkLocal: cfg.AllowLinkLocal, allowHostLoopback: cfg.AllowHostLoopback, blocked: blocked}
	dnsIP := cfg.DNS
	if cfg.Policy.Active() {
		special := egress.Special{AllowHostLoopback: cfg.AllowHostLoopback, AllowLinkLocal: cfg.AllowLinkLocal}
		var err error
		if special.HostAddrs, err = hostAddrs(); err != nil {
			return nil, nil, err
		}
		special.Gateway, _ = netip.ParseAddr(netns.GatewayIP)
		special.Subnet, _ = netip.ParsePrefix(netns.Subnet)
		if g.enforcer, err = egress.NewEnforcer(cfg.Policy, special); err != nil {
			return nil, nil, err
		}
	}
	ups, err := upstreams(dnsIP)
	if err != nil {
		return nil, nil, err
	}
	return g, &resolver{enforcer: g.enforcer, upstreams: ups, blocked: blocked}, nil
}

// hostAddrs are the host's own addresses, which a policy keeps blocked
// like its loopback: a service bound to them is the host's.
func hostAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing the host's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

func publish(n *network, pubs []netns.Publish) error {
	d, err := portgvisor.NewParentDriver(io.Discard, "")
	if err != nil {
		return err
	}
	return publishAll(d, pubs, &port.ChildContext{
		IP: net.ParseIP(netns.SandboxIP), Network: n, GatewayIP: net.ParseIP(netns.GatewayIP),
	})
}

// publishAll runs a rootlesskit port driver and adds every port to it; the
// driver stops with the process (its goroutine never returns earlier).
func publishAll(d port.ParentDriver, pubs []netns.Publish, cctx *port.ChildContext) error {
	initDone := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() { errc <- d.RunParentDriver(initDone, make(chan struct{}), cctx) }()
	select {
	case <-initDone:
	case err := <-errc:
		return fmt.Errorf("starting the port driver: %w", err)
	}
	for _, p := range pubs {
		_, err := d.AddPort(context.Background(), port.Spec{
			Proto: p.Proto, ParentIP: p.HostIP, ParentPort: p.HostPort, ChildPort: p.SandboxPort,
		})
		if err != nil {
			return fmt.Errorf("publishing %s: %w%s", p, err, driver.PortAdvice(p, err))
		}
	}
	return nil
}
