package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"sandbox/internal/locked"

	"github.com/rootless-containers/rootlesskit/v3/pkg/network/slirp4netns"
	"github.com/rootless-containers/rootlesskit/v3/pkg/port"
	portslirp "github.com/rootless-containers/rootlesskit/v3/pkg/port/slirp4netns"
)

// Config is what the parent needs to start a driver.
type Config struct {
	Mode              Mode // a driver: Pasta, Slirp4netns or Builtin
	AllowHostLoopback bool
	AllowLinkLocal    bool
	Publish           []Publish
	// StateDir is a private directory for the driver's sockets (slirp4netns'
	// API socket); removed by the caller.
	StateDir string
	// Netstack is the path of the builtin driver's helper executable.
	Netstack string
	Log      io.Writer // the helpers' diagnostics
}

// Child is the child's part of the setup, sent in its configuration.
type Child struct {
	Mode Mode `json:"mode"`
	// CreateTap: init creates the tap and hands it to the parent (builtin).
	CreateTap bool `json:"create_tap,omitempty"`
	// Configure: init gives the tap its address and route (slirp4netns and
	// builtin; pasta configures the interface itself).
	Configure bool `json:"configure,omitempty"`
	// BlockLinkLocal: a prohibit route for 169.254.0.0/16.
	BlockLinkLocal bool `json:"block_link_local,omitempty"`
	// WaitReady: the driver starts while init builds the root; init waits
	// for the parent's word before it starts the payload.
	WaitReady bool `json:"wait_ready,omitempty"`
}

// ChildPart is the child's share of cfg.
func (cfg *Config) ChildPart() *Child {
	return &Child{
		Mode:           cfg.Mode,
		CreateTap:      cfg.Mode == Builtin,
		Configure:      cfg.Mode != Pasta,
		BlockLinkLocal: !cfg.AllowLinkLocal,
		WaitReady:      cfg.Mode != Slirp4netns,
	}
}

// Network is a running driver.
type Network struct {
	cfg   Config
	ready chan error // one value: the driver is up (nil) or failed
	died  chan error // closed (after one value) when a helper ends early
	stop  func()     // stops everything; safe to call twice
	tap   func(*os.File) error

	stopOnce sync.Once
	stopped  chan struct{}
}

// Start starts the driver on the namespaces of the process pid (the
// sandbox's init). For slirp4netns it returns once the tap exists (it is
// made with nsenter in init's mount namespace, which must still be a copy
// of the host's); pasta and builtin come up in the background: see Ready.
func Start(cfg Config, pid int) (*Network, error) {
	n := &Network{cfg: cfg, ready: make(chan error, 1), died: make(chan error, 1), stopped: make(chan struct{})}
	var err error
	switch cfg.Mode {
	case Pasta:
		err = n.startPasta(pid)
	case Slirp4netns:
		err = n.startSlirp(pid)
	case Builtin:
		err = n.startBuiltin()
	default:
		err = fmt.Errorf("%s is not a user-mode network driver", cfg.Mode)
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Ready delivers one value: nil once the network is usable, or why not.
func (n *Network) Ready() <-chan error { return n.ready }

// Died delivers an error if a helper ends while the sandbox runs.
func (n *Network) Died() <-chan error { return n.died }

// GiveTap hands the tap made by init to the builtin driver.
func (n *Network) GiveTap(f *os.File) error {
	if n.tap == nil {
		f.Close()
		return errors.New("this network driver takes no tap")
	}
	return n.tap(f)
}

// Close stops the driver and its helpers and waits for them.
func (n *Network) Close() {
	n.stopOnce.Do(func() {
		close(n.stopped)
		if n.stop != nil {
			n.stop()
		}
	})
}

// watch reports p's end as a death unless Close came first.
func (n *Network) watch(name string, p *locked.Proc) {
	go func() {
		<-p.Done()
		select {
		case <-n.stopped:
			return
		default:
		}
		err := p.Err()
		if err == nil {
			err = errors.New("exited")
		}
		n.died <- fmt.Errorf("the network helper %s ended while the sandbox runs (%v): the sandbox has lost its network", name, err)
	}()
}

// startSlirp runs rootlesskit's slirp4netns driver and, for -p, its port
// driver over slirp4netns' API socket. The calls happen on one locked
// thread that lives until Close: rootlesskit starts slirp4netns with
// Pdeathsig, which fires when the starting thread exits.
func (n *Network) startSlirp(pid int) error {
	cfg := n.cfg
	_, ipnet, _ := net.ParseCIDR(Subnet)
	api := ""
	if len(cfg.Publish) > 0 {
		api = cfg.StateDir + "/slirp4netns.sock"
	}
	type result struct {
		cleanup func() error
		err     error
	}
	res := make(chan result, 1)
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		defer close(finished)
		d, err := slirp4netns.NewParentDriver(cfg.Log, "slirp4netns", MTU, ipnet, TapName,
			!cfg.AllowHostLoopback, api, true, true, false)
		if err != nil {
			res <- result{nil, err}
			return
		}
		_, cleanup, err := d.ConfigureNetwork(pid, cfg.StateDir, "")
		res <- result{cleanup, err}
		if err != nil {
			return
		}
		<-quit
		if cleanup != nil {
			cleanup()
		}
	}()
	r := <-res
	if r.err != nil {
		if r.cleanup != nil {
			r.cleanup()
		}
		return fmt.Errorf("starting slirp4netns: %w", r.err)
	}
	n.stop = func() { close(quit); <-finished }
	if api != "" {
		pd, err := portslirp.NewParentDriver(cfg.Log, api)
		if err != nil {
			return err
		}
		if err := publishAll(pd, cfg.Publish, &port.ChildContext{IP: net.ParseIP(SandboxIP)}); err != nil {
			return err
		}
	}
	n.ready <- nil
	return nil
}

// publishAll runs a rootlesskit port driver and adds every port to it; the
// driver stops with the process (its goroutine never returns earlier).
func publishAll(d port.ParentDriver, pubs []Publish, cctx *port.ChildContext) error {
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
			return fmt.Errorf("publishing %s: %w%s", p, err, portAdvice(p))
		}
	}
	return nil
}

// portAdvice names the usual causes of a failed publish.
func portAdvice(p Publish) string {
	if p.HostPort < 1024 {
		return fmt.Sprintf(" (ports below 1024 need net.ipv4.ip_unprivileged_port_start <= %d, or pick a higher host port)", p.HostPort)
	}
	return " (is the host port already in use? pick another with -p HOSTPORT:" + fmt.Sprint(p.SandboxPort) + ")"
}
