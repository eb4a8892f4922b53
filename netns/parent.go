package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"sandbox/internal/locked"

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
	// API socket); Close removes it.
	StateDir string
	// Netstack is the path of the builtin driver's helper executable.
	Netstack string
	Log      io.Writer // the helpers' diagnostics
}

// Child is the child's part of the setup, sent in its configuration.
type Child struct {
	Mode Mode `json:"mode"`
	// CreateTap: init creates the tap and hands it to the parent (builtin,
	// slirp4netns); PersistTap: it outlives init's fd, for slirp4netns to
	// attach to by name.
	CreateTap  bool `json:"create_tap,omitempty"`
	PersistTap bool `json:"persist_tap,omitempty"`
	// Configure: init gives the tap its address and route (slirp4netns and
	// builtin; pasta configures the interface itself).
	Configure bool `json:"configure,omitempty"`
	// BlockLinkLocal: a prohibit route for 169.254.0.0/16.
	BlockLinkLocal bool `json:"block_link_local,omitempty"`
}

// ChildPart is the child's share of cfg.
func (cfg *Config) ChildPart() *Child {
	return &Child{
		Mode:           cfg.Mode,
		CreateTap:      cfg.Mode != Pasta,
		PersistTap:     cfg.Mode == Slirp4netns,
		Configure:      cfg.Mode != Pasta,
		BlockLinkLocal: !cfg.AllowLinkLocal,
	}
}

// Network is a running driver.
type Network struct {
	cfg   Config
	ready chan error // one value: the driver is up (nil) or failed
	died  chan error // one value if a helper ends while the sandbox runs
	tap   func(*os.File) error

	mu       sync.Mutex
	stop     func() // stops the helper
	stopOnce sync.Once
	stopped  chan struct{}
}

// setStop records how to stop the helper; if Close came first, it stops
// it at once.
func (n *Network) setStop(stop func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.stopped:
		stop()
	default:
		n.stop = stop
	}
}

// Start starts the driver on the namespaces of the process pid (the
// sandbox's init); it comes up in the background (see Ready). slirp4netns
// and builtin start serving once init has made the tap (GiveTap).
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

// GiveTap says init has made the tap: f is its queue (builtin), or nil
// when it is persistent and the helper attaches by name (slirp4netns).
func (n *Network) GiveTap(f *os.File) error {
	if n.tap == nil {
		if f != nil {
			f.Close()
		}
		return errors.New("this network driver takes no tap")
	}
	return n.tap(f)
}

// Close stops the driver and its helpers and waits for them.
func (n *Network) Close() {
	n.stopOnce.Do(func() {
		n.mu.Lock()
		close(n.stopped)
		stop := n.stop
		n.mu.Unlock()
		if stop != nil {
			stop()
		}
		if n.cfg.StateDir != "" {
			os.RemoveAll(n.cfg.StateDir)
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

// startSlirp prepares slirp4netns, which starts once init has made the tap
// (GiveTap) and then joins the sandbox's namespaces to serve it; -p goes
// through rootlesskit's slirp4netns port driver over slirp4netns' API
// socket.
//
// rootlesskit's slirp4netns network driver is not used: it makes the tap by
// running `nsenter … ip tuntap add` as the caller, whose capabilities
// vanish at that exec whenever the caller is not root inside (--uid), and
// it needs ip(8) inside the sandbox's mount namespace. init makes the tap
// itself (persistent, so slirp4netns can attach to it by name).
func (n *Network) startSlirp(pid int) error {
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		return fmt.Errorf("--net=slirp4netns: slirp4netns is not installed (package slirp4netns): %w", err)
	}
	n.tap = func(f *os.File) error {
		if f != nil {
			f.Close()
		}
		go n.runSlirp(bin, pid)
		return nil
	}
	return nil
}

func (n *Network) runSlirp(bin string, pid int) {
	cfg := n.cfg
	args := []string{"--mtu", strconv.Itoa(MTU), "--cidr", Subnet, "-r", "3", "--enable-sandbox", "--enable-seccomp"}
	if !cfg.AllowHostLoopback {
		args = append(args, "--disable-host-loopback")
	}
	api := ""
	if len(cfg.Publish) > 0 {
		api = filepath.Join(cfg.StateDir, "slirp4netns.sock")
		args = append(args, "--api-socket", api)
	}
	args = append(args, strconv.Itoa(pid), TapName)
	r, w, err := os.Pipe()
	if err != nil {
		n.ready <- err
		return
	}
	defer r.Close()
	var stderr strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	cmd.Stdout = cfg.Log
	p, err := locked.Start(cmd)
	w.Close()
	if err != nil {
		n.ready <- err
		return
	}
	n.setStop(p.Stop)
	// slirp4netns writes "1" to fd 3 once it serves the tap.
	got := make(chan bool, 1)
	go func() {
		b := make([]byte, 1)
		k, _ := r.Read(b)
		got <- k == 1
	}()
	select {
	case ok := <-got:
		if !ok {
			<-p.Done()
			n.ready <- fmt.Errorf("slirp4netns failed (%v): %s", p.Err(), strings.TrimSpace(stderr.String()))
			return
		}
	case <-time.After(helperStartTimeout):
		p.Stop()
		n.ready <- fmt.Errorf("slirp4netns did not start within %v: %s", helperStartTimeout, strings.TrimSpace(stderr.String()))
		return
	}
	if api != "" {
		pd, err := portslirp.NewParentDriver(io.Discard, api)
		if err == nil {
			err = PublishAll(pd, cfg.Publish, &port.ChildContext{IP: net.ParseIP(SandboxIP)})
		}
		if err != nil {
			n.ready <- err
			return
		}
	}
	n.ready <- nil
	n.watch("slirp4netns", p)
}

// helperStartTimeout bounds a helper's start (pasta needs ~80 ms here).
const helperStartTimeout = 20 * time.Second

// PublishAll runs a rootlesskit port driver and adds every port to it; the
// driver stops with the process (its goroutine never returns earlier).
func PublishAll(d port.ParentDriver, pubs []Publish, cctx *port.ChildContext) error {
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
			return fmt.Errorf("publishing %s: %w%s", p, err, portAdvice(p, err))
		}
	}
	return nil
}

// portAdvice names the usual cause of a failed publish, when the error
// shows it (a wrong hint sends the user the wrong way).
func portAdvice(p Publish, err error) string {
	msg := err.Error()
	switch {
	case p.HostPort < 1024:
		return fmt.Sprintf(" (ports below 1024 need net.ipv4.ip_unprivileged_port_start <= %d, or pick a higher host port)", p.HostPort)
	case strings.Contains(msg, "address already in use"):
		return " (the host port is in use: pick another with -p HOSTPORT:" + fmt.Sprint(p.SandboxPort) + ")"
	case strings.Contains(msg, "slirp_add_hostfwd failed"):
		// slirp4netns does not say why.
		return " (is the host port in use, or HOSTIP not an address of this host?)"
	}
	return ""
}
