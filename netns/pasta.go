package netns

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"sandbox/internal/locked"
)

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
		"--config-net", "--ns-ifname=" + TapName, "--mtu=" + strconv.Itoa(MTU),
		"--address=" + SandboxIP, "--netmask=" + strconv.Itoa(PrefixLen),
		"--gateway=" + GatewayIP, "--dns-forward=" + DNSIP,
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
func pastaPorts(opt, proto string, pubs []Publish) []string {
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

func (n *Network) startPasta(pid int) error {
	bin, err := exec.LookPath("pasta")
	if err != nil {
		return fmt.Errorf("--net=pasta: pasta is not installed (install passt: apt install passt / dnf install passt): %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd := exec.Command(bin, pastaArgs(n.cfg, pid)...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if n.cfg.Log != nil {
		cmd.Stdout = n.cfg.Log
	}
	p, err := locked.Start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	n.setStop(p.Stop)
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
				n.ready <- fmt.Errorf("pasta failed (%v): %s", p.Err(), strings.TrimSpace(stderr.String()))
				return
			}
			n.ready <- nil
			n.watch("pasta", p)
		case <-time.After(helperStartTimeout):
			p.Stop()
			n.ready <- fmt.Errorf("pasta did not start within %v: %s", helperStartTimeout, strings.TrimSpace(stderr.String()))
		}
	}()
	return nil
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
