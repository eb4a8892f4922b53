package driver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"sandbox/netns"
)

func TestPastaArgs(t *testing.T) {
	cfg := Config{Mode: netns.Pasta, Publish: []netns.Publish{{HostIP: "127.0.0.1", HostPort: 8080, SandboxPort: 80, Proto: "tcp"}, {HostIP: "0.0.0.0", HostPort: 5353, SandboxPort: 53, Proto: "udp"}}}
	args := pastaArgs(cfg, 42)
	for _, want := range [][]string{
		{"--tcp-ports", "127.0.0.1/8080:80"}, {"--udp-ports", "5353:53"},
	} {
		if i := slices.Index(args, want[0]); i < 0 || args[i+1] != want[1] {
			t.Errorf("pasta args %q lack %q", args, want)
		}
	}
	for _, want := range []string{"--no-map-gw", "--tcp-ns=none", "--udp-ns=none", "--foreground", "42"} {
		if !slices.Contains(args, want) {
			t.Errorf("pasta args %q lack %q", args, want)
		}
	}
	cfg.AllowHostLoopback = true
	cfg.Publish = nil
	args = pastaArgs(cfg, 42)
	if slices.Contains(args, "--no-map-gw") {
		t.Errorf("--allow-host-loopback: pasta args still have --no-map-gw: %q", args)
	}
	if i := slices.Index(args, "--tcp-ports"); i < 0 || args[i+1] != "none" {
		t.Errorf("no publish: want --tcp-ports none (not pasta's auto): %q", args)
	}
}

func fakeHost(installed []string, tun error, pasta string) HostProbe {
	return HostProbe{
		LookPath: func(b string) (string, error) {
			if slices.Contains(installed, b) {
				return "/usr/bin/" + b, nil
			}
			return "", errors.New("not found")
		},
		TunUsable:    func() error { return tun },
		HaveNetstack: true,
		PastaVersion: func() string { return pasta },
	}
}

func rootUnmapped(h HostProbe) HostProbe {
	h.RootUnmapped = true
	return h
}

func TestChoose(t *testing.T) {
	all := []string{"pasta", "slirp4netns", "nsenter", "ip"}
	udp := []netns.Publish{{HostIP: "127.0.0.1", HostPort: 5353, SandboxPort: 53, Proto: "udp"}}
	for _, tc := range []struct {
		name      string
		h         HostProbe
		mode      netns.Mode
		pubs      []netns.Publish
		loopback  bool
		enforce   bool
		want      netns.Mode
		errSubstr string
	}{
		{"auto slirp", fakeHost(all, nil, "pasta unknown version"), netns.Auto, nil, false, false, netns.Slirp4netns, ""},
		// init makes slirp4netns' tap: neither ip(8) nor nsenter is run.
		{"auto slirp alone", fakeHost([]string{"slirp4netns"}, nil, ""), netns.Auto, nil, false, false, netns.Slirp4netns, ""},
		{"auto pasta", fakeHost([]string{"pasta"}, nil, ""), netns.Auto, nil, false, false, netns.Pasta, ""},
		{"auto builtin", fakeHost(nil, nil, ""), netns.Auto, nil, false, false, netns.Builtin, ""},
		{"auto no tun", fakeHost(all, errors.New("tun 0600"), ""), netns.Auto, nil, false, false, netns.None, "tun 0600"},
		{"explicit missing", fakeHost(nil, nil, ""), netns.Pasta, nil, false, false, "", "pasta is not installed"},
		{"explicit no tun", fakeHost(all, errors.New("tun 0600"), ""), netns.Slirp4netns, nil, false, false, "", "tun 0600"},
		{"udp old pasta → builtin", fakeHost(all, nil, "pasta unknown version"), netns.Auto, udp, false, false, netns.Builtin, ""},
		{"udp new pasta", fakeHost(all, nil, "pasta 2025_01_21.4f2c8e7"), netns.Auto, udp, false, false, netns.Pasta, ""},
		{"udp slirp with loopback", fakeHost(all, nil, "pasta 2025_01_21.4f2c8e7"), netns.Auto, udp, true, false, netns.Slirp4netns, ""},
		{"udp explicit slirp", fakeHost(all, nil, ""), netns.Slirp4netns, udp, false, false, "", "--allow-host-loopback"},
		{"none", fakeHost(nil, errors.New("x"), ""), netns.None, nil, false, false, netns.None, ""},
		{"policy auto → builtin", fakeHost(all, nil, "pasta 2025_01_21.4f2c8e7"), netns.Auto, nil, false, true, netns.Builtin, ""},
		{"policy explicit builtin", fakeHost(all, nil, ""), netns.Builtin, nil, false, true, netns.Builtin, ""},
		{"policy explicit pasta", fakeHost(all, nil, ""), netns.Pasta, nil, false, true, "", "use --net=builtin"},
		{"policy explicit slirp", fakeHost(all, nil, ""), netns.Slirp4netns, nil, false, true, "", "cannot enforce"},
		{"policy auto no tun", fakeHost(all, errors.New("tun 0600"), ""), netns.Auto, nil, false, true, netns.None, "tun 0600"},
		{"host", fakeHost(nil, errors.New("x"), ""), netns.Host, nil, false, false, netns.Host, ""},
		// slirp4netns becomes root in the sandbox's namespace: with no uid
		// or gid 0 there (--map=single --uid=5) it failed after the start.
		{"root unmapped auto → pasta", rootUnmapped(fakeHost(all, nil, "")), netns.Auto, nil, false, false, netns.Pasta, ""},
		{"root unmapped auto → builtin", rootUnmapped(fakeHost([]string{"slirp4netns"}, nil, "")), netns.Auto, nil, false, false, netns.Builtin, ""},
		{"root unmapped explicit slirp", rootUnmapped(fakeHost(all, nil, "")), netns.Slirp4netns, nil, false, false, "", "uid 0 or gid 0 is not mapped"},
	} {
		got, err := tc.h.Choose(tc.mode, tc.pubs, tc.loopback, tc.enforce)
		if got != tc.want {
			t.Errorf("%s: Choose = %q (%v), want %q", tc.name, got, err, tc.want)
		}
		if (tc.errSubstr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.errSubstr) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.errSubstr)
		}
	}
}

// TestNew: each driver mode makes its own driver, with the child part init
// needs for it; anything else is refused.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		mode  netns.Mode
		want  any
		child netns.Child
		dns   string
	}{
		{netns.Pasta, &pasta{}, netns.Child{Mode: netns.Pasta, BlockLinkLocal: true}, netns.DNSIP},
		{netns.Slirp4netns, &slirp4netns{}, netns.Child{Mode: netns.Slirp4netns, CreateTap: true, PersistTap: true, TapByName: true, Configure: true, BlockLinkLocal: true}, netns.DNSIP},
		{netns.Builtin, &builtin{}, netns.Child{Mode: netns.Builtin, CreateTap: true, PersistTap: true, Configure: true, BlockLinkLocal: true}, netns.GatewayIP},
	} {
		d, err := New(Config{Mode: tc.mode})
		if err != nil {
			t.Errorf("New(%s): %v", tc.mode, err)
			continue
		}
		if got, want := typeName(d), typeName(tc.want); got != want {
			t.Errorf("New(%s) = %s, want %s", tc.mode, got, want)
		}
		d.Close()
		cfg := Config{Mode: tc.mode}
		if c := cfg.ChildPart(); c == nil || *c != tc.child {
			t.Errorf("ChildPart(%s) = %+v, want %+v", tc.mode, c, tc.child)
		}
		if got := cfg.Nameserver(); got != tc.dns {
			t.Errorf("Nameserver(%s) = %q, want %q", tc.mode, got, tc.dns)
		}
		cfg.AllowLinkLocal = true
		if c := cfg.ChildPart(); c == nil || c.BlockLinkLocal {
			t.Errorf("ChildPart(%s) with --allow-link-local still blocks link-local: %+v", tc.mode, c)
		}
	}
	for _, m := range []netns.Mode{netns.Auto, netns.None, netns.Host, "vpnkit", ""} {
		if d, err := New(Config{Mode: m}); err == nil {
			t.Errorf("New(%q) = %T, want an error", m, d)
		}
		if c := (&Config{Mode: m}).ChildPart(); c != nil {
			t.Errorf("ChildPart(%q) = %+v, want nil", m, c)
		}
		if ns := (&Config{Mode: m}).Nameserver(); ns != "" {
			t.Errorf("Nameserver(%q) = %q, want none", m, ns)
		}
	}
}

func typeName(v any) string { return strings.TrimPrefix(fmt.Sprintf("%T", v), "*driver.") }

// TestDriverWithoutStart: a driver closed before (or without) Start, or
// given a tap it cannot take, leaves nothing running and says why.
func TestDriverWithoutStart(t *testing.T) {
	for _, m := range Drivers {
		d, err := New(Config{Mode: m})
		if err != nil {
			t.Fatal(err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		if err := d.GiveTap(w); err == nil {
			t.Errorf("%s: GiveTap before Start accepted", m)
		}
		if err := w.Close(); err == nil {
			t.Errorf("%s: GiveTap did not close the tap it refused", m)
		}
		d.Close()
		d.Close()
	}
	// The builtin driver without its helper says so at Start.
	_, err := Start(Config{Mode: netns.Builtin}, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), "sandbox-netstack") {
		t.Errorf("builtin without the helper: Start error %v, want one naming sandbox-netstack", err)
	}
	_, err = Start(Config{Mode: netns.Builtin, Netstack: func() (string, io.Closer, error) { return "", nil, nil }}, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), "sandbox-netstack") {
		t.Errorf("builtin, helper not found: Start error %v, want one naming sandbox-netstack", err)
	}
}

// TestChooseOrder: auto tries the drivers in Drivers' order, and says why
// each one it passed over cannot run.
func TestChooseOrder(t *testing.T) {
	h := fakeHost(nil, nil, "")
	h.HaveNetstack = false
	_, err := h.Choose(netns.Auto, nil, false, false)
	if err == nil {
		t.Fatal("auto with nothing installed chose a driver")
	}
	var at []int
	for _, m := range Drivers {
		at = append(at, strings.Index(err.Error(), string(m)+": "))
	}
	if !slices.IsSorted(at) || at[0] < 0 {
		t.Errorf("auto's reasons are not in Drivers' order %v: %v", Drivers, err)
	}
}

// TestRaiseOpenFiles: a helper gets the hard limit of open files as its
// soft one. The Go runtime gives children the soft limit it found (1024
// here), and slirp4netns refused ports past ~1000 with only "failed".
func TestRaiseOpenFiles(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	raiseOpenFiles(cmd.Process.Pid)
	var got unix.Rlimit
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_NOFILE, nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.Cur != lim.Max || got.Max != lim.Max {
		t.Errorf("the helper's open files: soft %d, hard %d; want both %d", got.Cur, got.Max, lim.Max)
	}
	if s := oneLine("sent tapfd=6 for tap0\nreceived tapfd=6\n  seteuid(0)\nparent failed\n"); s != "sent tapfd=6 for tap0; received tapfd=6; seteuid(0); parent failed" {
		t.Errorf("oneLine: %q", s)
	}
}
