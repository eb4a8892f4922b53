package netns

import (
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
		// Accepted before: nothing listens on these, and a port is digits.
		{"255.255.255.255:8080:80", Publish{}, "not an address a host listens on"},
		{"224.0.0.1:8080:80", Publish{}, "not an address a host listens on"},
		{"+8080:80", Publish{}, "host port"},
		{"8080:+80/udp", Publish{}, "sandbox port"},
		{"08080:80", Publish{"127.0.0.1", 8080, 80, "tcp"}, ""},
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

// TestPublishDuplicate: two -p asking for one host port (same protocol, the
// same address or one of them all addresses) are one too many; before, the
// driver failed on the second with its own words.
func TestPublishDuplicate(t *testing.T) {
	a := Publish{"127.0.0.1", 8080, 80, "tcp"}
	for _, c := range []struct {
		q    Publish
		want bool
	}{
		{Publish{"127.0.0.1", 8080, 81, "tcp"}, true},
		{Publish{"0.0.0.0", 8080, 80, "tcp"}, true},
		{Publish{"127.0.0.1", 8080, 80, "udp"}, false},
		{Publish{"127.0.0.2", 8080, 80, "tcp"}, false},
		{Publish{"127.0.0.1", 8081, 80, "tcp"}, false},
	} {
		if got := a.Duplicate(c.q); got != c.want || c.q.Duplicate(a) != c.want {
			t.Errorf("%v and %v: duplicate %v, want %v", a, c.q, got, c.want)
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

func TestParseMode(t *testing.T) {
	if m, err := ParseMode(""); m != Auto || err != nil {
		t.Errorf(`ParseMode("") = %q, %v`, m, err)
	}
	if _, err := ParseMode("vpnkit"); err == nil {
		t.Error("ParseMode(vpnkit) accepted")
	}
}
