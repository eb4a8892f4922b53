package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sandbox/internal/hostpath"
	"sandbox/internal/locked"
	"sandbox/netns"
)

// slirp4netns starts once init has made the tap (GiveTap) and then joins
// the sandbox's namespaces to serve it; -p goes through slirp4netns' API
// socket (addHostFwd).
//
// rootlesskit's slirp4netns network driver is not used: it makes the tap by
// running `nsenter … ip tuntap add` as the caller, whose capabilities
// vanish at that exec whenever the caller is not root inside (--uid), and
// it needs ip(8) inside the sandbox's mount namespace. init makes the tap
// itself (persistent, so slirp4netns can attach to it by name).
type slirp4netns struct {
	*helper
	bin string
	pid int
	api string // the API socket, when ports are published
}

func (*slirp4netns) installed(h HostProbe) error {
	if _, err := h.LookPath("slirp4netns"); err != nil {
		return errors.New("slirp4netns is not installed (package slirp4netns)")
	}
	if h.RootUnmapped {
		// It joins the sandbox's user namespace and becomes root there
		// (setegid(0), seteuid(0)), and fails after the sandbox started.
		return errors.New("slirp4netns becomes root in the sandbox's user namespace, where uid 0 or gid 0 is not mapped " +
			"(--map=single with --uid or --gid other than 0): use --net=pasta or --net=builtin")
	}
	return nil
}

func (*slirp4netns) publishLimit(_ HostProbe, pubs []netns.Publish, allowHostLoopback bool) error {
	if hasUDP(pubs) && !allowHostLoopback {
		return errors.New("slirp4netns drops the replies to UDP forwarded from the host unless the host's loopback is allowed " +
			"(they come from 10.0.2.2); add --allow-host-loopback or use --net=builtin")
	}
	return nil
}

// child: a persistent tap, attached to by name; init configures it.
func (*slirp4netns) child() netns.Child {
	return netns.Child{CreateTap: true, PersistTap: true, TapByName: true, Configure: true}
}

func (*slirp4netns) nameserver() string { return netns.DNSIP }

func (d *slirp4netns) Start(pid int) error {
	bin, err := hostpath.Look("slirp4netns")
	if err != nil {
		return fmt.Errorf("--net=slirp4netns: slirp4netns is not installed (package slirp4netns): %w", err)
	}
	d.bin, d.pid = bin, pid
	if len(d.cfg.Publish) > 0 {
		if d.cfg.StateDir == "" {
			return errors.New("slirp4netns: no directory for its API socket")
		}
		if err := os.Mkdir(d.cfg.StateDir, 0o700); err != nil {
			return fmt.Errorf("creating a directory for slirp4netns' API socket: %w", err)
		}
		dir := d.cfg.StateDir
		d.atClose(func() { os.RemoveAll(dir) })
		d.api = filepath.Join(dir, "slirp4netns.sock")
	}
	return nil
}

// GiveTap starts slirp4netns on the persistent tap (f is nil, or closed).
func (d *slirp4netns) GiveTap(f *os.File) error {
	if f != nil {
		f.Close()
	}
	if d.bin == "" {
		return errors.New("slirp4netns was not started")
	}
	go d.run()
	return nil
}

func (d *slirp4netns) run() {
	cfg := d.cfg
	args := []string{"--mtu", strconv.Itoa(netns.MTU), "--cidr", netns.Subnet, "-r", "3", "--enable-sandbox", "--enable-seccomp"}
	if !cfg.AllowHostLoopback {
		args = append(args, "--disable-host-loopback")
	}
	if d.api != "" {
		args = append(args, "--api-socket", d.api)
	}
	args = append(args, strconv.Itoa(d.pid), netns.TapName)
	r, w, err := os.Pipe()
	if err != nil {
		d.ready <- err
		return
	}
	defer r.Close()
	var stderr strings.Builder
	cmd := exec.Command(d.bin, args...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	cmd.Stdout = cfg.Log
	p, err := locked.Start(cmd)
	w.Close()
	if err != nil {
		d.ready <- err
		return
	}
	d.setStop(p.Stop)
	// A listening socket per published port: past ~1000 ports the soft
	// limit its start gave it refused them, and slirp4netns says only
	// that it failed (a wrong hint followed).
	raiseOpenFiles(cmd.Process.Pid)
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
			d.ready <- fmt.Errorf("slirp4netns failed (%v): %s", p.Err(), oneLine(stderr.String()))
			return
		}
	case <-time.After(helperStartTimeout):
		p.Stop()
		d.ready <- fmt.Errorf("slirp4netns did not start within %v: %s", helperStartTimeout, oneLine(stderr.String()))
		return
	}
	if d.api != "" {
		for i, pub := range cfg.Publish {
			for _, q := range cfg.Publish[:i] {
				if q.Proto == pub.Proto && q.HostIP == pub.HostIP && q.HostPort == pub.HostPort {
					d.ready <- fmt.Errorf("publishing %s: the host port is already published by -p %s", pub, q)
					return
				}
			}
			if err := addHostFwd(d.api, pub); err != nil {
				d.ready <- fmt.Errorf("publishing %s: %w%s", pub, err, PortAdvice(pub, err))
				return
			}
		}
	}
	d.ready <- nil
	d.watch("slirp4netns", p)
}

// apiTimeout bounds one request to slirp4netns' API socket.
const apiTimeout = 10 * time.Second

// addHostFwd asks slirp4netns, over its API socket, to forward the host's
// p.HostIP:p.HostPort to the sandbox's p.SandboxPort: one JSON request
// ({"execute": "add_hostfwd", ...}), our end of the connection shut for
// writing, one JSON reply ({"return": {"id": N}} or {"error": {"desc": ...}}).
// The forward lives as long as slirp4netns.
func addHostFwd(api string, p netns.Publish) error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Net: "unix", Name: api})
	if err != nil {
		return fmt.Errorf("slirp4netns' API: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(apiTimeout))
	req := map[string]any{"execute": "add_hostfwd", "arguments": map[string]any{
		"proto": p.Proto, "host_addr": p.HostIP, "host_port": p.HostPort,
		"guest_addr": netns.SandboxIP, "guest_port": p.SandboxPort,
	}}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fmt.Errorf("slirp4netns' API: %w", err)
	}
	if err := conn.CloseWrite(); err != nil {
		return fmt.Errorf("slirp4netns' API: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, 64<<10))
	if err != nil {
		return fmt.Errorf("slirp4netns' API: %w", err)
	}
	return hostFwdReply(b)
}

// hostFwdReply reads slirp4netns' answer to add_hostfwd.
func hostFwdReply(b []byte) error {
	var rep struct {
		Return *struct {
			ID *int `json:"id"`
		} `json:"return"`
		Error *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("slirp4netns' API: unreadable reply %q: %w", b, err)
	}
	switch {
	case rep.Error != nil:
		return fmt.Errorf("slirp4netns: %s", rep.Error.Desc)
	case rep.Return == nil || rep.Return.ID == nil:
		return fmt.Errorf("slirp4netns' API: unexpected reply %q", b)
	}
	return nil
}
