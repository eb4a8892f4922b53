package netns

import (
	"errors"
	"fmt"
	"os/exec"

	"golang.org/x/sys/unix"
)

// HostProbe is what driver selection looks at (RealHost: this machine).
type HostProbe struct {
	LookPath     func(string) (string, error)
	TunUsable    func() error
	HaveNetstack bool // the builtin driver's helper is available
}

// RealHost probes this machine.
func RealHost(haveNetstack bool) HostProbe {
	return HostProbe{LookPath: exec.LookPath, TunUsable: TunUsable, HaveNetstack: haveNetstack}
}

// TunUsable says whether the caller can open /dev/net/tun, which every
// driver needs (each makes a tap inside the sandbox's namespace).
func TunUsable() error {
	if err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return errors.New("/dev/net/tun does not exist (load the tun module: sudo modprobe tun)")
		}
		return fmt.Errorf("/dev/net/tun is not accessible to you (%v): %s", err, TunAdvice)
	}
	return nil
}

// Usable says why driver m cannot run here, or nil.
func (h HostProbe) Usable(m Mode) error {
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
	return h.TunUsable()
}

// Choose resolves auto to the first usable driver and checks an explicit
// one. For auto with no usable driver it returns None and the reasons, for
// the caller to warn about; for an explicit driver that cannot run, an
// error.
func (h HostProbe) Choose(m Mode) (Mode, error) {
	if m != Auto {
		if m == None || m == Host {
			return m, nil
		}
		if err := h.Usable(m); err != nil {
			return "", fmt.Errorf("--net=%s: %w", m, err)
		}
		return m, nil
	}
	var why []error
	for _, d := range Drivers {
		err := h.Usable(d)
		if err == nil {
			return d, nil
		}
		why = append(why, fmt.Errorf("%s: %w", d, err))
	}
	return None, errors.Join(why...)
}
