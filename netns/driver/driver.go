// Package driver is the parent's side of a sandbox's user-mode network: it
// picks a driver (select.go: the one place --net=auto is resolved), makes
// it from the mode (New: the one place a mode becomes a driver), and runs
// it on the sandbox's namespaces behind ParentDriver. Each driver is one
// file: pasta.go, slirp4netns.go, builtin.go (the gvisor-tap-vsock stack in
// the sandbox-netstack helper, netns/netstack). It says what init must do
// for the driver (Config.ChildPart) but never runs inside the sandbox: that
// is netns/link, which must not import this package.
//
// It may import sandbox/netns and the project's process helpers
// (internal/locked, internal/proto); nothing on init's side imports it.
// Not rootlesskit: its port package links net/http and crypto/tls into
// sandbox (~1 ms of package initialisation on every start; the guard is
// cmd/sandbox's TestNetHTTPKeptOut). slirp4netns' API is spoken here
// (slirp4netns.go), rootlesskit's builtin port driver runs in the
// sandbox-netstack helper (netns/netstack).
package driver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"sandbox/internal/locked"
	"sandbox/netns"
	"sandbox/netns/egress"

	"golang.org/x/sys/unix"
)

// ParentDriver is a user-mode network driver, run from the parent.
type ParentDriver interface {
	// Start starts the driver on the namespaces of the process pid (the
	// sandbox's init); it comes up in the background (Ready). A driver
	// whose tap init makes (Config.ChildPart().CreateTap) comes up once
	// GiveTap hands it over.
	Start(pid int) error
	// Ready delivers one value: nil once the network is usable, or why not.
	Ready() <-chan error
	// Died delivers an error if a helper ends while the sandbox runs.
	Died() <-chan error
	// GiveTap says init has made the tap: f is its queue, or nil when it
	// is persistent and the helper attaches by name. GiveTap owns f.
	GiveTap(f *os.File) error
	// Blocked is what the egress policy blocked, asked once the sandbox
	// has ended; nil without a policy (only the builtin driver has one).
	Blocked() *egress.Blocked
	// Close stops the driver and its helpers, waits for them and removes
	// what the driver made in Config.StateDir. It may come at any time,
	// also before or during Start, and more than once.
	Close()
}

// Config is what the parent needs to start a driver.
type Config struct {
	Mode              netns.Mode // a driver: Pasta, Slirp4netns or Builtin
	AllowHostLoopback bool
	AllowLinkLocal    bool
	Publish           []netns.Publish
	// Policy is the egress policy (only the builtin driver enforces one:
	// select.go), DNS the upstream server its resolver forwards to.
	Policy *egress.Policy
	DNS    string
	// OnBlocked, if set, hears each blocked attempt as it happens (-v).
	OnBlocked func(egress.Record)
	// StateDir is a directory, not yet made, that a driver may create for
	// its sockets (slirp4netns' API socket); Close removes it if it did.
	StateDir string
	// Netstack gives the builtin driver's helper: the path to execute and
	// what to close once it has started (nil if nothing); an empty path
	// means the helper is missing.
	Netstack func() (path string, done io.Closer, err error)
	Log      io.Writer // the helpers' diagnostics
}

// impl is a driver and what is known of it before it runs.
type impl interface {
	ParentDriver
	// installed says what the host lacks to run it, apart from
	// /dev/net/tun (which every driver needs).
	installed(h HostProbe) error
	// publishLimit says why it cannot publish pubs, or nil.
	publishLimit(h HostProbe, pubs []netns.Publish, allowHostLoopback bool) error
	// child is init's part for it (without the policy: BlockLinkLocal).
	child() netns.Child
	// nameserver is where it answers DNS.
	nameserver() string
}

// newImpl is the one place a mode becomes a driver.
func newImpl(cfg Config) (impl, error) {
	h := &helper{cfg: cfg, ready: make(chan error, 1), died: make(chan error, 1), stopped: make(chan struct{})}
	switch cfg.Mode {
	case netns.Pasta:
		return &pasta{h}, nil
	case netns.Slirp4netns:
		return &slirp4netns{helper: h}, nil
	case netns.Builtin:
		return &builtin{helper: h}, nil
	}
	return nil, fmt.Errorf("%q is not a user-mode network driver (pasta, slirp4netns or builtin)", cfg.Mode)
}

// New makes the driver for cfg.Mode; nothing runs until Start.
func New(cfg Config) (ParentDriver, error) {
	return newImpl(cfg)
}

// Start makes the driver for cfg.Mode and starts it on pid's namespaces;
// on failure nothing is left running.
func Start(cfg Config, pid int) (ParentDriver, error) {
	d, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := d.Start(pid); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// ChildPart is init's part of cfg, or nil if cfg.Mode is not a driver.
func (cfg *Config) ChildPart() *netns.Child {
	d, err := newImpl(*cfg)
	if err != nil {
		return nil
	}
	c := d.child()
	c.Mode, c.BlockLinkLocal = cfg.Mode, !cfg.AllowLinkLocal
	return &c
}

// Nameserver is the DNS address the sandbox's resolv.conf points at, or ""
// if cfg.Mode is not a driver.
func (cfg *Config) Nameserver() string {
	d, err := newImpl(*cfg)
	if err != nil {
		return ""
	}
	return d.nameserver()
}

// helper is what every driver shares: one helper process, its readiness
// and death, and stopping it.
type helper struct {
	cfg   Config
	ready chan error // one value: the driver is up (nil) or failed
	died  chan error // one value if the helper ends while the sandbox runs

	mu       sync.Mutex
	stop     func() // stops the helper
	stopOnce sync.Once
	stopped  chan struct{}
	cleanup  []func() // run by Close after stop
}

func (h *helper) Ready() <-chan error { return h.ready }

// Blocked: a driver without a policy blocks nothing.
func (h *helper) Blocked() *egress.Blocked { return nil }
func (h *helper) Died() <-chan error       { return h.died }

// setStop records how to stop the helper; if Close came first, it stops
// it at once.
func (h *helper) setStop(stop func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.stopped:
		stop()
	default:
		h.stop = stop
	}
}

// atClose adds f to what Close does once the helper is stopped.
func (h *helper) atClose(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanup = append(h.cleanup, f)
}

func (h *helper) Close() {
	h.stopOnce.Do(func() {
		h.mu.Lock()
		close(h.stopped)
		stop, cleanup := h.stop, h.cleanup
		h.mu.Unlock()
		if stop != nil {
			stop()
		}
		for _, f := range cleanup {
			f()
		}
	})
}

// noTap is GiveTap for a driver that makes its own interface.
func noTap(f *os.File) error {
	if f != nil {
		f.Close()
	}
	return errors.New("this network driver takes no tap")
}

// watch reports p's end as a death unless Close came first.
func (h *helper) watch(name string, p *locked.Proc) {
	go func() {
		<-p.Done()
		select {
		case <-h.stopped:
			return
		default:
		}
		err := p.Err()
		if err == nil {
			err = errors.New("exited")
		}
		h.died <- fmt.Errorf("the network helper %s ended while the sandbox runs (%v): the sandbox has lost its network", name, err)
	}()
}

// helperStartTimeout bounds a helper's start (pasta needs ~80 ms here).
const helperStartTimeout = 20 * time.Second

// PortAdvice names the usual cause of a failed publish, when the error
// shows it (a wrong hint sends the user the wrong way).
func PortAdvice(p netns.Publish, err error) string {
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

// raiseOpenFiles lifts pid's soft limit of open files to its hard one.
// The Go runtime lifts its own at start but gives its children back the
// soft limit it found (often 1024), too few for a helper with a socket
// per published port.
func raiseOpenFiles(pid int) {
	var lim unix.Rlimit
	if unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil)
	}
}

// oneLine is a helper's message of several lines as one ("a; b").
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")), " ")
}

// limitedWriter keeps the first n bytes (a helper's error message).
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}
