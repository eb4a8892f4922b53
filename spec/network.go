package spec

import (
	"fmt"
	"os"
	"path/filepath"

	"sandbox/idmap"
	"sandbox/internal/hostpath"
	"sandbox/netns"
	"sandbox/netns/driver"
	"sandbox/netns/egress"

	"sandbox/journal"

	"golang.org/x/sys/unix"
)

// NetstackELF is the builtin network driver's helper executable, embedded
// by cmd/sandbox when built with scripts/build.sh (nil otherwise: the
// helper is then looked up next to the executable and in PATH).
var NetstackELF string

// NetstackID names the build of NetstackELF (its SHA-256, set by
// scripts/build.sh): the user's holder shares a copy of it with runs of
// the same build only (holder.TakeShared). Empty: none is shared.
var NetstackID string

// NetstackName is the helper's name on disk.
const NetstackName = "sandbox-netstack"

// planNetwork resolves --net and its companions into s.
func planNetwork(opts Options, s *Spec) error {
	mode, err := netns.ParseMode(opts.Net)
	if err != nil {
		return journal.Usagef("--net: %v", err)
	}
	var pubs []netns.Publish
	for _, p := range opts.Publish {
		pub, err := netns.ParsePublish(p)
		if err != nil {
			return journal.Usagef("--publish %v", err)
		}
		for _, q := range pubs {
			if pub.Duplicate(q) {
				return journal.Usagef("--publish %q: host port %d/%s is published twice (also by %s)", p, pub.HostPort, pub.Proto, q)
			}
		}
		pubs = append(pubs, pub)
	}
	policy := opts.Egress
	if err := policy.Check(); err != nil {
		return &journal.UsageError{Msg: err.Error()}
	}
	enforce := policy.Active()
	if enforce && (mode == netns.None || mode == netns.Host) {
		return journal.Usagef("--net=%s cannot enforce %s (it needs the user-mode network that filters the sandbox's traffic): use --net=builtin or leave --net out", mode, policyFlag(policy))
	}
	probe := driver.RealHost(HaveNetstack())
	probe.RootUnmapped = !mapsID(s.Maps.UIDs, 0) || !mapsID(s.Maps.GIDs, 0)
	chosen, err := probe.Choose(mode, pubs, opts.AllowHostLoopback, enforce)
	if err != nil {
		if enforce {
			return journal.Usagef("%s: %v", policyFlag(policy), err)
		}
		if mode != netns.Auto {
			return &journal.UsageError{Msg: err.Error()}
		}
		s.Warnings = append(s.Warnings, fmt.Sprintf("no network (running as --net=none): %v", err))
		s.Log.Fallback("network", "--net=none", err.Error())
	}
	s.NetMode = chosen
	s.NetNS = chosen != netns.Host
	if policy.DNS != "" && chosen == netns.None {
		return journal.Usagef("--dns %s needs a network (not --net=none)", policy.DNS)
	}
	s.DNS = policy.DNS
	if len(pubs) > 0 && (chosen == netns.None || chosen == netns.Host) {
		return journal.Usagef("--publish needs a user-mode network (--net=auto, pasta, slirp4netns or builtin), not --net=%s", chosen)
	}
	if chosen == netns.None || chosen == netns.Host {
		// Nothing to allow without a network, nor on the host's, where
		// everything is reachable already: said, not refused (unlike -p,
		// nothing the command counts on is missing).
		why := "no network (--net=none)"
		if chosen == netns.Host {
			why = "the host's network (--net=host), where it is reachable anyway"
		}
		for _, f := range []struct {
			on   bool
			name string
		}{{opts.AllowHostLoopback, "--allow-host-loopback"}, {opts.AllowLinkLocal, "--allow-link-local"}} {
			if f.on {
				s.Warnings = append(s.Warnings, f.name+" has no effect with "+why)
			}
		}
	}
	if chosen == netns.None || chosen == netns.Host {
		return nil
	}
	s.Net = &driver.Config{
		Mode: chosen, AllowHostLoopback: opts.AllowHostLoopback, AllowLinkLocal: opts.AllowLinkLocal,
		Publish: pubs, DNS: policy.DNS,
	}
	if enforce {
		s.Net.Policy = &policy
	}
	return nil
}

// policyFlag names the first flag that made p a policy, for messages.
func policyFlag(p egress.Policy) string {
	if len(p.AllowHost) > 0 {
		return "--allow-host " + p.AllowHost[0]
	}
	return "--allow-cidr " + p.AllowCIDR[0]
}

// networkFiles is the content of /etc/hosts and /etc/resolv.conf for s.
func networkFiles(s *Spec) (hosts, resolv string) {
	hosts = hostsFile(s.Hostname, !s.NetNS)
	if s.Net != nil && s.Net.AllowHostLoopback {
		hosts += netns.HostLoopback + "\t" + netns.HostAlias + "\n"
	}
	if s.Net == nil && s.NetNS {
		return hosts, "" // --net=none: no DNS to point at
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf") // follows a stub symlink
	switch {
	case s.Net != nil && s.Net.DNS != "" && s.Net.Mode != netns.Builtin:
		// The other drivers' forwarders ask the host's servers: --dns
		// is asked directly, through the driver's NAT.
		return hosts, netns.ResolvConf(s.Net.DNS, hostResolv)
	case s.Net != nil:
		return hosts, netns.ResolvConf(s.Net.Nameserver(), hostResolv)
	case s.DNS != "":
		return hosts, netns.ResolvConf(s.DNS, hostResolv)
	}
	// --net=host: the host's own, as a file (a symlink into /run would
	// dangle inside, where /run is empty).
	return hosts, string(hostResolv)
}

func HaveNetstack() bool {
	if NetstackELF != "" {
		return true
	}
	_, err := NetstackPath()
	return err == nil
}

// NetstackPath finds a separately installed helper.
func NetstackPath() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), NetstackName)
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return hostpath.Look(NetstackName)
}

// mapsID says whether maps give inside id id an id outside.
func mapsID(maps []idmap.Mapping, id uint32) bool {
	for _, m := range maps {
		if id >= m.Inside && id-m.Inside < m.Count {
			return true
		}
	}
	return false
}
