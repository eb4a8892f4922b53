package netns

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Publish
		err  string
	}{
		{"8080:80", Publish{"127.0.0.1", 8080, 80, "tcp"}, ""},
		{"8080:80/udp", Publish{"127.0.0.1", 8080, 80, "udp"}, ""},
		{"0.0.0.0:8080:80/tcp", Publish{"0.0.0.0", 8080, 80, "tcp"}, ""},
		{"[::1]:8080:80", Publish{}, "IPv6"},
		{"::1:8080:80", Publish{}, "IPv6"},
		{"[::]:8080:80", Publish{}, "IPv6"},
		{"[::ffff:127.0.0.1]:8080:80", Publish{"127.0.0.1", 8080, 80, "tcp"}, ""},
		{"80", Publish{}, "HOSTPORT:SANDBOXPORT"},
		{"8080:80/sctp", Publish{}, "tcp or udp"},
		{"0:80", Publish{}, "host port"},
		{"8080:70000", Publish{}, "sandbox port"},
		{"x:8080:80", Publish{}, "not an IP address"},
		{"8080:", Publish{}, "sandbox port"},
	} {
		got, err := ParsePublish(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePublish(%q) error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePublish(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestResolvConf(t *testing.T) {
	host := "nameserver 127.0.0.53\nsearch corp.example lan\noptions edns0 trust-ad\n# comment\n"
	got := ResolvConf("10.0.2.3", []byte(host))
	if !strings.Contains(got, "nameserver 10.0.2.3\n") || strings.Contains(got, "127.0.0.53") {
		t.Errorf("want only the forwarder as nameserver:\n%s", got)
	}
	for _, l := range []string{"search corp.example lan\n", "options edns0 trust-ad\n"} {
		if !strings.Contains(got, l) {
			t.Errorf("lost the host's %q:\n%s", l, got)
		}
	}
}

func TestPastaArgs(t *testing.T) {
	cfg := Config{Mode: Pasta, Publish: []Publish{{"127.0.0.1", 8080, 80, "tcp"}, {"0.0.0.0", 5353, 53, "udp"}}}
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

func TestChoose(t *testing.T) {
	all := []string{"pasta", "slirp4netns", "nsenter", "ip"}
	udp := []Publish{{"127.0.0.1", 5353, 53, "udp"}}
	for _, tc := range []struct {
		name      string
		h         HostProbe
		mode      Mode
		pubs      []Publish
		loopback  bool
		want      Mode
		errSubstr string
	}{
		{"auto slirp", fakeHost(all, nil, "pasta unknown version"), Auto, nil, false, Slirp4netns, ""},
		{"auto pasta", fakeHost([]string{"pasta"}, nil, ""), Auto, nil, false, Pasta, ""},
		{"auto builtin", fakeHost(nil, nil, ""), Auto, nil, false, Builtin, ""},
		{"auto no tun", fakeHost(all, errors.New("tun 0600"), ""), Auto, nil, false, None, "tun 0600"},
		{"explicit missing", fakeHost(nil, nil, ""), Pasta, nil, false, "", "pasta is not installed"},
		{"explicit no tun", fakeHost(all, errors.New("tun 0600"), ""), Slirp4netns, nil, false, "", "tun 0600"},
		{"udp old pasta → builtin", fakeHost(all, nil, "pasta unknown version"), Auto, udp, false, Builtin, ""},
		{"udp new pasta", fakeHost(all, nil, "pasta 2025_01_21.4f2c8e7"), Auto, udp, false, Pasta, ""},
		{"udp slirp with loopback", fakeHost(all, nil, "pasta 2025_01_21.4f2c8e7"), Auto, udp, true, Slirp4netns, ""},
		{"udp explicit slirp", fakeHost(all, nil, ""), Slirp4netns, udp, false, "", "--allow-host-loopback"},
		{"none", fakeHost(nil, errors.New("x"), ""), None, nil, false, None, ""},
		{"host", fakeHost(nil, errors.New("x"), ""), Host, nil, false, Host, ""},
	} {
		got, err := tc.h.Choose(tc.mode, tc.pubs, tc.loopback)
		if got != tc.want {
			t.Errorf("%s: Choose = %q (%v), want %q", tc.name, got, err, tc.want)
		}
		if (tc.errSubstr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.errSubstr) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.errSubstr)
		}
	}
}

func TestParseMode(t *testing.T) {
	if m, err := ParseMode(""); m != Auto || err != nil {
		t.Errorf(`ParseMode("") = %q, %v`, m, err)
	}
	if _, err := ParseMode("vpnkit"); err == nil {
		t.Error("ParseMode(vpnkit) accepted")
	}
}
