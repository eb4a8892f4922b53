// Package netstack is the builtin network driver's helper process: the
// gvisor-tap-vsock user-mode stack (what rootlesskit runs in-process for its
// gvisor-tap-vsock driver) fed directly by the sandbox's tap, and
// rootlesskit's gvisor-tap-vsock port driver for -p. It lives in its own
// executable because its dependencies cost ~30 ms of package initialisation
// at every start. See netns/driver/builtin.go for the protocol.
package netstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"sandbox/internal/proto"
	"sandbox/netns"
	"sandbox/netns/driver"

	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"github.com/containers/gvisor-tap-vsock/pkg/virtualnetwork"
	"github.com/rootless-containers/rootlesskit/v3/pkg/port"
	portgvisor "github.com/rootless-containers/rootlesskit/v3/pkg/port/gvisortapvsock"
	"github.com/sirupsen/logrus"
)

// controlFD is the socketpair end the parent passes (ExtraFiles[0]).
const controlFD = 3

// gatewayMAC is a fixed, locally administered address.
const gatewayMAC = "5a:94:ef:e4:0c:dd"

// Main runs the helper; it returns the exit status.
func Main() int {
	logrus.SetOutput(io.Discard) // errors go to the parent over the socket
	conn := proto.FromFD(controlFD)
	fail := func(err error) int {
		conn.Send(proto.KindError, err.Error())
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
	vn, err := newNetwork(cfg)
	if err != nil {
		return fail(err)
	}
	if len(cfg.Publish) > 0 {
		if err := publish(vn, cfg.Publish); err != nil {
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
	tap := os.NewFile(uintptr(fds[0]), "tap")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- vn.AcceptVfkit(ctx, &tapConn{tap}) }()
	if err := conn.Send(proto.KindStarted, nil); err != nil {
		return 0
	}
	eof := make(chan struct{})
	go func() {
		for {
			if _, _, err := conn.Recv(); err != nil {
				close(eof)
				return
			}
		}
	}()
	select {
	case <-eof: // the parent is done: the sandbox ended
		return 0
	case err := <-done:
		fmt.Fprintf(os.Stderr, "sandbox-netstack: %v\n", err)
		return 1
	}
}

func newNetwork(cfg driver.HelperConfig) (*virtualnetwork.VirtualNetwork, error) {
	c := &types.Configuration{
		MTU:               netns.MTU,
		Subnet:            netns.Subnet,
		GatewayIP:         netns.GatewayIP,
		GatewayMacAddress: gatewayMAC,
		DHCPStaticLeases:  map[string]string{},
		Protocol:          types.VfkitProtocol,
		// The stack itself refuses 169.254.169.254 unless allowed (init's
		// prohibit route covers the rest of 169.254.0.0/16).
		Ec2MetadataAccess: cfg.AllowLinkLocal,
		NAT:               map[string]string{},
	}
	if cfg.AllowHostLoopback {
		c.NAT[netns.HostLoopback] = "127.0.0.1"
	}
	vn, err := virtualnetwork.New(c)
	if err != nil {
		return nil, fmt.Errorf("creating the user-mode network: %w", err)
	}
	return vn, nil
}

func publish(vn *virtualnetwork.VirtualNetwork, pubs []netns.Publish) error {
	d, err := portgvisor.NewParentDriver(io.Discard, "")
	if err != nil {
		return err
	}
	return driver.PublishAll(d, pubs, &port.ChildContext{
		IP: net.ParseIP(netns.SandboxIP), Network: vn, GatewayIP: net.ParseIP(netns.GatewayIP),
	})
}

// tapConn is the tap queue as a net.Conn for gvisor-tap-vsock's vfkit
// protocol, which is one Ethernet frame per Read and per Write: exactly
// what a tap file does, so no copying loop sits in between.
type tapConn struct{ f *os.File }

func (t *tapConn) Read(b []byte) (int, error)         { return t.f.Read(b) }
func (t *tapConn) Write(b []byte) (int, error)        { return t.f.Write(b) }
func (t *tapConn) Close() error                       { return t.f.Close() }
func (t *tapConn) LocalAddr() net.Addr                { return tapAddr{} }
func (t *tapConn) RemoteAddr() net.Addr               { return tapAddr{} }
func (t *tapConn) SetDeadline(d time.Time) error      { return t.f.SetDeadline(d) }
func (t *tapConn) SetReadDeadline(d time.Time) error  { return t.f.SetReadDeadline(d) }
func (t *tapConn) SetWriteDeadline(d time.Time) error { return t.f.SetWriteDeadline(d) }

type tapAddr struct{}

func (tapAddr) Network() string { return "tap" }
func (tapAddr) String() string  { return netns.TapName }
