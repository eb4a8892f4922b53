package netns

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// HostProbe is what driver selection looks at (RealHost: this machine).
type HostProbe struct {
	LookPath     func(string) (string, error)
	TunUsable    func() error
	HaveNetstack bool // the builtin driver's helper is available
	// PastaVersion is what `pasta --version` says (asked only when needed).
	PastaVersion func() string
}

// RealHost probes this machine.
func RealHost(haveNetstack bool) HostProbe {
	return HostProbe{LookPath: exec.LookPath, TunUsable: TunUsable, HaveNetstack: haveNetstack, PastaVersion: pastaVersion}
}

func pastaVersion() string {
	out, _ := exec.Command("pasta", "--version").Output()
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}

// pastaUDPFixed says whether a pasta version returns the replies of UDP
// forwarded from the host's loopback: passt 0.0~git20230309 (Debian 12,
// which prints "pasta unknown version") delivers the datagram inside but
// never the reply (measured). Releases are named by date; 2024 and later are
// taken as fixed.
func pastaUDPFixed(version string) bool {
	f := strings.Fields(version)
	return len(f) >= 2 && len(f[1]) >= 4 && f[1][:4] >= "2024" && f[1][:4] <= "9999"
}

// publishLimit says why driver m cannot publish pubs, or nil.
func (h HostProbe) publishLimit(m Mode, pubs []Publish, allowHostLoopback bool) error {
	udp := false
	for _, p := range pubs {
		udp = udp || p.Proto == "udp"
	}
	if !udp {
		return nil
	}
	switch m {
	case Slirp4netns:
		if !allowHostLoopback {
			return errors.New("slirp4netns drops the replies to UDP forwarded from the host unless the host's loopback is allowed " +
				"(they come from 10.0.2.2); add --allow-host-loopback or use --net=builtin")
		}
	case Pasta:
		if v := h.PastaVersion(); !pastaUDPFixed(v) {
			return fmt.Errorf("this pasta (%q) does not return replies to UDP published from the host's loopback "+
				"(fixed in later passt releases); use --net=builtin for UDP ports, or upgrade passt", v)
		}
	}
	return nil
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
	return fmt.Errorf("/dev/net/tun is not accessible to you (%s%v); %s", mode, err, TunAdvice)
}

// Usable says why driver m cannot run here, or nil.
func (h HostProbe) Usable(m Mode) error {
	if err := h.installed(m); err != nil {
		return err
	}
	return h.TunUsable()
}

// installed says what driver m is missing, apart from /dev/net/tun.
func (h HostProbe) installed(m Mode) error {
	switch m {
	case Pasta:
		if _, err := h.LookPath("pasta"); err != nil {
			return errors.New("pasta is not installed (package passt)")
		}
	case Slirp4netns:
		for _, bin := range []string{"slirp4netns", "nsenter", "ip"} {
			if _, err := h.LookPath(bin); err != nil {
				return fmt.Errorf("%s is not installed (packages slirp4netns, util-linux, iproute2)", bin)
			}
		}
	case Builtin:
		if !h.HaveNetstack {
			return errors.New("the sandbox-netstack helper is missing (build sandbox with scripts/build.sh, which embeds it)")
		}
	default:
		return fmt.Errorf("%s is not a user-mode driver", m)
	}
	return nil
}

// Choose resolves auto to the first usable driver and checks an explicit
// one. For auto with no usable driver it returns None and the reason, for
// the caller to warn about; for an explicit driver that cannot run, an
// error.
func (h HostProbe) Choose(m Mode, pubs []Publish, allowHostLoopback bool) (Mode, error) {
	if m == None || m == Host {
		return m, nil
	}
	if m != Auto {
		err := h.Usable(m)
		if err == nil {
			err = h.publishLimit(m, pubs, allowHostLoopback)
		}
		if err != nil {
			return "", fmt.Errorf("--net=%s: %w", m, err)
		}
		return m, nil
	}
	if err := h.TunUsable(); err != nil {
		return None, err // the same for every driver: said once
	}
	var why []string
	for _, d := range Drivers {
		err := h.installed(d)
		if err == nil {
			err = h.publishLimit(d, pubs, allowHostLoopback)
		}
		if err == nil {
			return d, nil
		}
		why = append(why, fmt.Sprintf("%s: %v", d, err))
	}
	return None, errors.New(strings.Join(why, "; "))
}
