package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	// "" and 0 as runc: its default (SIGTERM) and the liveness probe (before,
	// both refused).
	for in, want := range map[string]unix.Signal{"KILL": unix.SIGKILL, "SIGKILL": unix.SIGKILL, "sigterm": unix.SIGTERM, "9": unix.SIGKILL, "hup": unix.SIGHUP,
		"": unix.SIGTERM, "0": 0} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"NOPE", "65", "-1"} {
		if _, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) accepted", in)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100": 100, "-1": -1, "10k": 10 << 10, "200m": 200 << 20, "1G": 1 << 30, "2gb": 2 << 30, "3MiB": 3 << 20} {
		if got, err := parseSize(in, true); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-2", "x", "10q", "99999999999999999999g"} {
		if _, err := parseSize(in, true); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
	if _, err := parseSize("10m", false); err == nil {
		t.Error("a suffix accepted for a count")
	}
}

func nsSpec(ns ...specs.LinuxNamespace) *specs.Spec {
	return &specs.Spec{Linux: &specs.Linux{Namespaces: ns,
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}}}
}

func TestPlanNamespaces(t *testing.T) {
	mnt, user := specs.LinuxNamespace{Type: specs.MountNamespace}, specs.LinuxNamespace{Type: specs.UserNamespace}
	p, err := planNamespaces(nsSpec(mnt, user, specs.LinuxNamespace{Type: specs.CgroupNamespace},
		specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/run/netns/x"}), true)
	if err != nil {
		t.Fatal(err)
	}
	if p.clone != unix.CLONE_NEWNS|unix.CLONE_NEWUSER || !p.newCgroup || p.joins["network"] != "/run/netns/x" {
		t.Errorf("plan: %+v", p)
	}
	for _, c := range []struct {
		s            *specs.Spec
		unprivileged bool
		want         string
	}{
		{nsSpec(mnt, user, specs.LinuxNamespace{Type: "bogus"}), false, `linux.namespaces[2].type: unknown namespace type "bogus"`},
		{nsSpec(mnt, user, mnt), false, `linux.namespaces[2].type: "mount" given twice`},
		{nsSpec(mnt, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/1/ns/user"}), false, "linux.namespaces[1].path: joining an existing user/mount namespace is not supported"},
		{nsSpec(mnt, user, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: "rel"}), false, "linux.namespaces[2].path"},
		{nsSpec(user), false, "a mount namespace is required"},
		{&specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{mnt}}}, true, "rootless containers require a user namespace"},
		{&specs.Spec{Hostname: "h", Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{mnt}}}, false, "hostname: needs a UTS namespace"},
		{&specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{mnt, user},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 1, HostID: 1000, Size: 1}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}}}, false, "linux.uidMappings: the container's uid 0 is not mapped"},
	} {
		if _, err := planNamespaces(c.s, c.unprivileged); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("planNamespaces(%+v): %v, want %q", c.s.Linux.Namespaces, err, c.want)
		}
	}
}

func TestCheckSysctl(t *testing.T) {
	p := &nsPlan{has: map[specs.LinuxNamespaceType]bool{specs.NetworkNamespace: true}}
	s := &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{"net.ipv4.ip_forward": "1", "net/core/somaxconn": "10"}}}
	if err := checkSysctl(s, p); err != nil {
		t.Error(err)
	}
	for key, want := range map[string]string{
		"kernel.shmmax":        "linux.sysctl.kernel.shmmax: needs an IPC namespace",
		"fs.mqueue.msg_max":    "needs an IPC namespace",
		"kernel.pid_max":       "linux.sysctl.kernel.pid_max: not a namespaced sysctl",
		"net.ipv4/../../x":     "not a sysctl name",
		"kernel.hostname":      "needs a UTS namespace",
		"vm.overcommit_memory": "not a namespaced sysctl",
	} {
		s.Linux.Sysctl = map[string]string{key: "1"}
		if err := checkSysctl(s, p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("sysctl %s: %v, want %q", key, err, want)
		}
	}
	p.has[specs.NetworkNamespace] = false
	s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	if err := checkSysctl(s, p); err == nil || !strings.Contains(err.Error(), "needs a network namespace") {
		t.Errorf("net sysctl without a network namespace: %v", err)
	}
}

func TestMaps(t *testing.T) {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 200000, Size: 65536}}
	if hostID(m, 0) != 1000 || hostID(m, 5) != 200004 {
		t.Errorf("hostID: %d %d", hostID(m, 0), hostID(m, 5))
	}
	if !mapsTo(m, 1000, 0) || mapsTo(m, 200000, 0) || !mapsTo(m, 200000, 1) || mapsTo(m, 5, 0) {
		t.Error("mapsTo")
	}
}

func TestSpecTemplate(t *testing.T) {
	s := specTemplate(true)
	has := false
	for _, ns := range s.Linux.Namespaces {
		has = has || ns.Type == specs.UserNamespace
		if ns.Type == specs.NetworkNamespace {
			t.Error("rootless template with a network namespace")
		}
	}
	if !has || len(s.Linux.UIDMappings) != 1 || s.Linux.Resources != nil {
		t.Errorf("rootless template: %+v", s.Linux)
	}
	if _, err := planNamespaces(s, true); err != nil {
		t.Errorf("rootless template refused: %v", err)
	}
	if _, err := planNamespaces(specTemplate(false), false); err != nil {
		t.Errorf("template refused: %v", err)
	}
}

func TestRunHooks(t *testing.T) {
	one := 1
	st := hookState("h", "/b", 42, specs.StateCreating, nil)
	start := time.Now()
	err := runHooks("createRuntime", []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 30"}, Timeout: &one}}, st)
	if err == nil || !strings.Contains(err.Error(), "hooks.createRuntime[0]") || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Errorf("hook past its timeout: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hook timeout took %v", d)
	}
	out := filepath.Join(t.TempDir(), "out")
	err = runHooks("poststart", []specs.Hook{
		{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + out + "; echo \"$X\" >> " + out}, Env: []string{"X=envok"}},
		{Path: "/bin/sh", Args: []string{"sh", "-c", "echo nope >&2; exit 2"}},
		{Path: "/bin/sh", Args: []string{"sh", "-c", "echo never >> " + out}},
	}, st)
	if err == nil || !strings.Contains(err.Error(), "hooks.poststart[1]") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("failing hook: %v", err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), `"id":"h"`) || !strings.Contains(string(data), `"pid":42`) ||
		!strings.HasSuffix(string(data), "envok\n") || strings.Contains(string(data), "never") {
		t.Errorf("hook got %q", data)
	}
	zero := 0
	if err := runHooks("poststop", []specs.Hook{{Path: "/bin/true", Timeout: &zero}}, st); err == nil {
		t.Error("timeout 0 accepted")
	}
}
