package driver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"sandbox/internal/hostpath"
	"sandbox/internal/locked"
	"sandbox/netns"
)

// pasta configures the sandbox's interface itself (no tap from init).
type pasta struct{ *helper }

func (*pasta) installed(h HostProbe) error {
	if _, err := h.LookPath("pasta"); err != nil {
		return errors.New("pasta is not installed (package passt)")
	}
	return nil
}

func (*pasta) publishLimit(h HostProbe, pubs []netns.Publish, _ bool) error {
	if !hasUDP(pubs) {
		return nil
	}
	if v := h.PastaVersion(); !pastaUDPFixed(v) {
		return fmt.Errorf("this pasta (%q) does not return replies to UDP published from the host's loopback "+
			"(fixed in later passt releases); use --net=builtin for UDP ports, or upgrade passt", v)
	}
	return nil
}

func (*pasta) child() netns.Child { return netns.Child{} }

func (*pasta) nameserver() string { return netns.DNSIP }

func (*pasta) GiveTap(f *os.File) error { return noTap(f) }

// pastaArgs is pasta's command line for the sandbox whose init is pid.
//
// pasta is run directly, not through rootlesskit's pasta driver: that one
// probes the binary with three extra runs of pasta (~10-20 ms each here),
// publishes ports only through pasta's "auto" mode (binding whatever the
// sandbox listens on, on all host addresses) or a port API that passt
// releases before 2026 lack, and lets pasta daemonize, after which nothing
// ends it when the sandbox dies (this pasta does not notice its namespace
// going away). Here pasta stays in the foreground under Pdeathsig, reports
// readiness through its pid file (a pipe), and forwards -p ports itself.
func pastaArgs(cfg Config, pid int) []string {
	args := []string{
		"--quiet", "--foreground", "--pid", "/dev/fd/3",
		"--config-net", "--ns-ifname=" + netns.TapName, "--mtu=" + strconv.Itoa(netns.MTU),
		"--address=" + netns.SandboxIP, "--netmask=" + strconv.Itoa(netns.PrefixLen),
		"--gateway=" + netns.GatewayIP, "--dns-forward=" + netns.DNSIP,
		"--ipv4-only",
		// Nothing the host's loopback serves is forwarded into the sandbox's.
		"--tcp-ns=none", "--udp-ns=none",
	}
	if !cfg.AllowHostLoopback {
		// The gateway would otherwise stand for the host's 127.0.0.1.
		args = append(args, "--no-map-gw")
	}
	args = append(args, pastaPorts("--tcp-ports", "tcp", cfg.Publish)...)
	args = append(args, pastaPorts("--udp-ports", "udp", cfg.Publish)...)
	return append(args, strconv.Itoa(pid))
}

// pastaPorts is one option per published port of proto, or "none" (pasta's
// default, "auto", would follow whatever the sandbox listens on).
func pastaPorts(opt, proto string, pubs []netns.Publish) []string {
	var out []string
	for _, p := range pubs {
		if p.Proto != proto {
			continue
		}
		addr := p.HostIP
		if addr == "0.0.0.0" || addr == "::" {
			addr = "" // all addresses
		} else {
			addr += "/"
		}
		out = append(out, opt, fmt.Sprintf("%s%d:%d", addr, p.HostPort, p.SandboxPort))
	}
	if out == nil {
		out = []string{opt, "none"}
	}
	return out
}

func (d *pasta) Start(pid int) error {
	bin, err := hostpath.Look("pasta")
	if err != nil {
		return fmt.Errorf("--net=pasta: pasta is not installed (install passt: apt install passt / dnf install passt): %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd := exec.Command(bin, pastaArgs(d.cfg, pid)...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if d.cfg.Log != nil {
		cmd.Stdout = d.cfg.Log
	}
	p, err := locked.Start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	d.setStop(p.Stop)
	go func() {
		defer r.Close()
		// pasta writes its pid file once its setup is done; EOF without a
		// pid means it exited.
		got := make(chan string, 1)
		go func() {
			pidText, _ := bufio.NewReader(r).ReadString('\n')
			got <- strings.TrimSpace(pidText)
		}()
		select {
		case pidText := <-got:
			if pidText == "" {
				<-p.Done()
				d.ready <- fmt.Errorf("pasta failed (%v): %s", p.Err(), strings.TrimSpace(stderr.String()))
				return
			}
			d.ready <- nil
			d.watch("pasta", p)
		case <-time.After(helperStartTimeout):
			p.Stop()
			d.ready <- fmt.Errorf("pasta did not start within %v: %s", helperStartTimeout, strings.TrimSpace(stderr.String()))
		}
	}()
	return nil
}

func pastaVersion() string {
	bin, err := hostpath.Look("pasta")
	if err != nil {
		return ""
	}
	out, _ := exec.Command(bin, "--version").Output()
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
