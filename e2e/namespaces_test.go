//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNamespacesPID(t *testing.T) {
	t.Parallel()
	script := `echo $$; echo ---; for p in /proc/[0-9]*; do echo "${p#/proc/}"; done; echo ---; cat /proc/1/comm`
	r := mustRun(t, opts{}, sh(nil, script)...)
	parts := sections(r.stdout)
	if len(parts) != 3 {
		t.Fatalf("unexpected output: %s", r)
	}
	shPID, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	// Small, not 2: init's Go runtime threads take pids of the namespace
	// too, more of them on a loaded machine (11 seen since the network
	// setup moved into init).
	if err != nil || shPID > 50 {
		t.Errorf("`echo $$` inside should print a small pid (new pid namespace), got %q", parts[0])
	}
	pids := lines(parts[1])
	if !slices.Contains(pids, "1") {
		t.Errorf("/proc inside has no pid 1: %q", pids)
	}
	if len(pids) > 6 {
		t.Errorf("/proc inside lists %d processes, want only the sandbox's few: %q", len(pids), pids)
	}
	if me := os.Getpid(); me > 50 && slices.Contains(pids, strconv.Itoa(me)) {
		t.Errorf("the test process (pid %d) is visible inside: %q", me, pids)
	}
	if hostInit, err := os.ReadFile("/proc/1/comm"); err == nil {
		if strings.TrimSpace(parts[2]) == strings.TrimSpace(string(hostInit)) {
			t.Errorf("/proc/1/comm inside is the host's init %q", strings.TrimSpace(string(hostInit)))
		}
	}
}

func TestNamespacesAreNew(t *testing.T) {
	t.Parallel()
	kinds := []string{"user", "mnt", "pid", "uts", "ipc", "net"}
	host := map[string]string{}
	for _, k := range kinds {
		link, err := os.Readlink("/proc/self/ns/" + k)
		if err != nil {
			t.Fatalf("host namespace %s: %v", k, err)
		}
		host[k] = link
	}
	for _, net := range []string{"none", "host"} {
		t.Run("net="+net, func(t *testing.T) {
			t.Parallel()
			script := ""
			for _, k := range kinds {
				script += "readlink /proc/self/ns/" + k + "; "
			}
			r := mustRun(t, opts{}, sh([]string{"--net=" + net}, script)...)
			got := lines(r.stdout)
			if len(got) != len(kinds) {
				t.Fatalf("unexpected output: %s", r)
			}
			for i, k := range kinds {
				same := got[i] == host[k]
				if k == "net" && net == "host" {
					if !same {
						t.Errorf("--net=host: net namespace inside %s differs from the host's %s", got[i], host[k])
					}
					continue
				}
				if same {
					t.Errorf("%s namespace inside is the host's (%s)", k, got[i])
				}
			}
		})
	}
}

func TestNamespacesHostname(t *testing.T) {
	t.Parallel()
	hostName, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("custom", func(t *testing.T) {
		t.Parallel()
		name := "e2e-host-" + randHex(6)
		r := mustRun(t, opts{}, sh([]string{"--hostname", name}, "uname -n; cat /proc/sys/kernel/hostname")...)
		if got := lines(r.stdout); !slices.Equal(got, []string{name, name}) {
			t.Errorf("--hostname %s: uname -n and /proc/sys/kernel/hostname inside = %q", name, got)
		}
		if after, _ := os.Hostname(); after != hostName {
			t.Errorf("the host's hostname changed from %q to %q", hostName, after)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		re := regexp.MustCompile(`^sandbox-[0-9a-f]+$`)
		var seen []string
		for range 2 {
			r := mustRun(t, opts{}, "run", "--", "uname", "-n")
			got := strings.TrimSpace(r.stdout)
			if !re.MatchString(got) {
				t.Errorf("default hostname %q does not match %s", got, re)
			}
			if got == hostName {
				t.Errorf("default hostname inside is the host's %q", got)
			}
			seen = append(seen, got)
		}
		if seen[0] == seen[1] {
			t.Errorf("two runs got the same \"random\" hostname %q", seen[0])
		}
	})
}

func TestNamespacesDevShmPrivate(t *testing.T) {
	t.Parallel()
	name := "e2e-" + randHex(10)
	hostFile := filepath.Join("/dev/shm", name)
	err := os.WriteFile(hostFile, []byte("host"), 0o600)
	requireOrSkip(t, err == nil, "a writable /dev/shm on the host: "+errString(err))
	t.Cleanup(func() { os.Remove(hostFile) })
	inName := "e2e-inside-" + randHex(10)
	t.Cleanup(func() { os.Remove(filepath.Join("/dev/shm", inName)) })

	r := mustRun(t, opts{}, sh(nil, "ls -A /dev/shm; echo ---; echo x > /dev/shm/"+inName+" && echo wrote")...)
	parts := sections(r.stdout)
	if len(parts) != 2 {
		t.Fatalf("unexpected output: %s", r)
	}
	if got := lines(parts[0]); len(got) != 0 {
		t.Errorf("/dev/shm inside should be empty (host has %s), got %q", name, got)
	}
	if strings.TrimSpace(parts[1]) != "wrote" {
		t.Errorf("/dev/shm inside is not writable: %s", r)
	}
	if exists(filepath.Join("/dev/shm", inName)) {
		t.Errorf("a file written to /dev/shm inside appeared in the host's /dev/shm")
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// netDevNames parses /proc/net/dev.
func netDevNames(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			out = append(out, strings.TrimSpace(name))
		}
	}
	slices.Sort(out)
	return out
}

func TestNamespacesNetNone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, flag string }{{"explicit", "--net=none"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var flags []string
			if tc.flag != "" {
				flags = []string{tc.flag}
			}
			script := "cat /proc/net/dev; echo ---; ls /sys/class/net; echo ---; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags"
			r := mustRun(t, opts{}, sh(flags, script)...)
			parts := sections(r.stdout)
			if len(parts) != 3 {
				t.Fatalf("unexpected output: %s", r)
			}
			if got := netDevNames(parts[0]); !slices.Equal(got, []string{"lo"}) {
				t.Errorf("/proc/net/dev inside lists %q, want only lo", got)
			}
			if got := lines(parts[1]); !slices.Equal(got, []string{"lo"}) {
				t.Errorf("/sys/class/net inside lists %q, want only lo (sysfs of the new network namespace)", got)
			}
			lo := lines(parts[2])
			if len(lo) != 2 {
				t.Fatalf("lo operstate/flags: %s", r)
			}
			if lo[0] != "unknown" {
				t.Errorf("lo operstate = %q, want unknown (up)", lo[0])
			}
			flagsV, err := strconv.ParseUint(strings.TrimPrefix(lo[1], "0x"), 16, 32)
			if err != nil || flagsV&0x1 == 0 || flagsV&0x8 == 0 {
				t.Errorf("lo flags = %q, want IFF_UP|IFF_LOOPBACK (0x9)", lo[1])
			}
		})
	}
}

func TestNamespacesNetHost(t *testing.T) {
	t.Parallel()
	hostDev, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	want := netDevNames(string(hostDev))
	r := mustRun(t, opts{}, "run", "--net=host", "--", "cat", "/proc/net/dev")
	if got := netDevNames(r.stdout); !slices.Equal(got, want) {
		t.Errorf("--net=host: interfaces inside %q, host has %q", got, want)
	}
}
