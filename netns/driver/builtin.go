package driver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"sandbox/internal/locked"
	"sandbox/internal/proto"
	"sandbox/netns"
	"sandbox/netns/egress"
)

// The builtin driver runs rootlesskit's choice of in-process stack,
// gvisor-tap-vsock, in a helper process (sandbox-netstack, package
// netns/netstack): linking gvisor into `sandbox` itself would cost every
// start ~30 ms of package initialisation, paid twice (parent and init).
//
// The helper talks over one proto socketpair (its fd 3):
//
//	parent → helper  Config   HelperConfig
//	helper → parent  Error    the stack or a published port failed; it exits
//	parent → helper  Tap      the tap made by init, as an fd
//	helper → parent  Started  packets flow; ports are published
//	helper → parent  Blocked  an attempt the egress policy blocked (any number, with LiveBlocked)
//	parent → helper  Stop     the sandbox ended
//	helper → parent  Stats    all it blocked (egress.Blocked)
//
// and exits when the socket reaches EOF (the parent is gone) or on
// Pdeathsig.

// HelperConfig is the helper's configuration.
type HelperConfig struct {
	AllowHostLoopback bool            `json:"allow_host_loopback"`
	AllowLinkLocal    bool            `json:"allow_link_local"`
	Publish           []netns.Publish `json:"publish,omitempty"`
	Policy            *egress.Policy  `json:"policy,omitempty"`
	DNS               string          `json:"dns,omitempty"` // the upstream DNS server; "" for the host's
	LiveBlocked       bool            `json:"live_blocked,omitempty"`
}

// statsTimeout bounds the wait for the helper's Stats at the end.
const statsTimeout = 2 * time.Second

// builtin serves the tap init makes and hands over (an fd); the helper
// configures nothing inside, init does.
type builtin struct {
	*helper
	tap   func(*os.File) error // set once the helper runs
	conn  *proto.Conn
	stats chan egress.Blocked
}

func (*builtin) installed(h HostProbe) error {
	if !h.HaveNetstack {
		return errors.New("the sandbox-netstack helper is missing (build sandbox with scripts/build.sh, which embeds it)")
	}
	return nil
}

// publishLimit: the stack publishes TCP and UDP alike.
func (*builtin) publishLimit(HostProbe, []netns.Publish, bool) error { return nil }

func (*builtin) child() netns.Child {
	return netns.Child{CreateTap: true, PersistTap: true, Configure: true}
}

// nameserver: the helper's resolver answers DNS on the gateway.
func (*builtin) nameserver() string { return netns.GatewayIP }

// Blocked asks the helper what its policy blocked; nil without a policy
// or an answer.
func (d *builtin) Blocked() *egress.Blocked {
	if !d.cfg.Policy.Active() || d.conn == nil {
		return nil
	}
	if d.conn.Send(proto.KindStop, nil) != nil {
		return nil
	}
	select {
	case b := <-d.stats:
		return &b
	case <-time.After(statsTimeout):
		return nil
	}
}

func (d *builtin) GiveTap(f *os.File) error {
	if d.tap == nil {
		if f != nil {
			f.Close()
		}
		return errors.New("the builtin network stack was not started")
	}
	return d.tap(f)
}

func (d *builtin) Start(int) error {
	missing := errors.New("--net=builtin: the sandbox-netstack helper was not found next to sandbox (build with scripts/build.sh, which embeds it)")
	if d.cfg.Netstack == nil {
		return missing
	}
	path, done, err := d.cfg.Netstack()
	if err != nil {
		return err
	}
	if done != nil {
		defer done.Close() // the helper has its own copy once started
	}
	if path == "" {
		return missing
	}
	parent, child, err := proto.Pair()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd := exec.Command(path)
	cmd.Args = []string{"sandbox-netstack"}
	cmd.ExtraFiles = []*os.File{child.File()}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if d.cfg.Log != nil {
		cmd.Stdout = d.cfg.Log
	}
	p, err := locked.Start(cmd)
	child.Close()
	if err != nil {
		parent.Close()
		return fmt.Errorf("starting the builtin network stack: %w", err)
	}
	d.setStop(func() { parent.Close(); p.Stop() })
	d.conn, d.stats = parent, make(chan egress.Blocked, 1)
	cfg := HelperConfig{AllowHostLoopback: d.cfg.AllowHostLoopback, AllowLinkLocal: d.cfg.AllowLinkLocal, Publish: d.cfg.Publish,
		Policy: d.cfg.Policy, DNS: d.cfg.DNS, LiveBlocked: d.cfg.OnBlocked != nil}
	if err := parent.Send(proto.KindConfig, cfg); err != nil {
		return fmt.Errorf("configuring the builtin network stack: %w", err)
	}
	replies := make(chan error, 2)
	go func() {
		started := false
		for {
			env, fds, err := parent.Recv()
			if err != nil {
				if !started {
					<-p.Done()
					replies <- fmt.Errorf("the builtin network stack ended (%v): %s", p.Err(), strings.TrimSpace(stderr.String()))
				}
				return
			}
			proto.CloseFDs(fds)
			switch env.Kind {
			case proto.KindStarted:
				if !started {
					started = true
					replies <- nil
					d.watch("sandbox-netstack", p)
				}
			case proto.KindError:
				if !started {
					var msg string
					env.Decode(&msg)
					replies <- errors.New(msg)
					return
				}
			case proto.KindBlocked:
				var r egress.Record
				if env.Decode(&r) == nil && d.cfg.OnBlocked != nil {
					d.cfg.OnBlocked(r)
				}
			case proto.KindStats:
				var b egress.Blocked
				if env.Decode(&b) == nil {
					select {
					case d.stats <- b:
					default:
					}
				}
			}
		}
	}()
	d.tap = func(f *os.File) error {
		if f == nil {
			return errors.New("the builtin stack needs the tap's file")
		}
		defer f.Close()
		if err := parent.Send(proto.KindTap, nil, int(f.Fd())); err != nil {
			if early := <-replies; early != nil {
				return early // it failed before the tap came
			}
			return fmt.Errorf("handing the tap to the builtin network stack: %w", err)
		}
		go func() { d.ready <- <-replies }()
		return nil
	}
	// A failure before the tap arrives (e.g. a port in use) is reported
	// as soon as the tap is handed over; see d.tap.
	return nil
}
