package driver

import (
	"errors"
	"fmt"
	"strings"

	"sandbox/internal/hostpath"
	"sandbox/netns"

	"golang.org/x/sys/unix"
)

// Drivers are the user-mode drivers in the order auto tries them, by
// bench/network.sh on the CI host: slirp4netns adds the least start-up time
// (pasta spends ~80 ms setting itself up) and moves sandbox→host traffic
// (fetching dependencies) faster than this pasta; the in-process stack
// needs nothing installed and comes last.
var Drivers = []netns.Mode{netns.Slirp4netns, netns.Pasta, netns.Builtin}

// HostProbe is what driver selection looks at (RealHost: this machine).
type HostProbe struct {
	LookPath     func(string) (string, error)
	TunUsable    func() error
	HaveNetstack bool // the builtin driver's helper is available
	// PastaVersion is what `pasta --version` says (asked only when needed).
	PastaVersion func() string
	// RootUnmapped: the sandbox's user namespace maps no uid 0 or no gid 0
	// (--map=single with --uid or --gid other than 0).
	RootUnmapped bool
}

// RealHost probes this machine.
func RealHost(haveNetstack bool) HostProbe {
	return HostProbe{LookPath: hostpath.Look, TunUsable: TunUsable, HaveNetstack: haveNetstack, PastaVersion: pastaVersion}
}

// TunUsable says whether the caller can open /dev/net/tun, which every
// driver needs (each makes a tap inside the sandbox's namespace).
func TunUsable() error {
	err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return errors.New("/dev/net/tun does not exist (fix: sudo modprobe tun)")
	}
	mode := ""
	var st unix.Stat_t
	if unix.Stat("/dev/net/tun", &st) == nil {
		mode = fmt.Sprintf("mode %04o, ", st.Mode&0o7777)
	}
	return fmt.Errorf("/dev/net/tun is not accessible to you (%s%v); %s", mode, err, netns.TunAdvice)
}

// Usable says why driver m cannot run here, or nil.
func (h HostProbe) Usable(m netns.Mode) error {
	return h.check(m, true, nil, false)
}

// check says why driver m cannot run here and publish pubs, or nil; tun:
// whether to look at /dev/net/tun too.
func (h HostProbe) check(m netns.Mode, tun bool, pubs []netns.Publish, allowHostLoopback bool) error {
	d, err := newImpl(Config{Mode: m})
	if err == nil {
		err = d.installed(h)
	}
	if err == nil && tun {
		err = h.TunUsable()
	}
	if err == nil {
		err = d.publishLimit(h, pubs, allowHostLoopback)
	}
	return err
}

// hasUDP says whether any of pubs is UDP (the drivers' publish limits are).
func hasUDP(pubs []netns.Publish) bool {
	for _, p := range pubs {
		if p.Proto == "udp" {
			return true
		}
	}
	return false
}

// Enforcing is the one driver that enforces an egress policy: its stack
// runs outside the sandbox and sees every connection and lookup.
const Enforcing = netns.Builtin

// Choose resolves auto to the first usable driver and checks an explicit
// one; with enforce (an egress policy), to the one that enforces it. For
// auto with no usable driver it returns None and the reason, for the
// caller to warn about (or, with enforce, to refuse); for an explicit
// driver that cannot run, an error.
func (h HostProbe) Choose(m netns.Mode, pubs []netns.Publish, allowHostLoopback, enforce bool) (netns.Mode, error) {
	switch {
	case m == netns.None || m == netns.Host:
		return m, nil
	case enforce && m == netns.Auto:
		if err := h.check(Enforcing, true, pubs, allowHostLoopback); err != nil {
			return netns.None, fmt.Errorf("an egress policy needs --net=%s, which cannot run here: %w", Enforcing, err)
		}
		return Enforcing, nil
	case enforce && m != Enforcing:
		return "", fmt.Errorf("--net=%s cannot enforce an egress policy (its helper forwards whatever the sandbox sends): use --net=%s or leave --net out", m, Enforcing)
	case m == netns.Auto:
		return h.auto(pubs, allowHostLoopback)
	}
	if err := h.check(m, true, pubs, allowHostLoopback); err != nil {
		return "", fmt.Errorf("--net=%s: %w", m, err)
	}
	return m, nil
}

// auto is the first of Drivers that can run here, or None and why not.
func (h HostProbe) auto(pubs []netns.Publish, allowHostLoopback bool) (netns.Mode, error) {
	if err := h.TunUsable(); err != nil {
		return netns.None, err // the same for every driver: said once
	}
	var why []string
	for _, m := range Drivers {
		err := h.check(m, false, pubs, allowHostLoopback)
		if err == nil {
			return m, nil
		}
		why = append(why, fmt.Sprintf("%s: %v", m, err))
	}
	return netns.None, errors.New(strings.Join(why, "; "))
}
