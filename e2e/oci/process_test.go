package oci

import (
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runIn runs a container whose process is sh -c script, with edit applied
// to its spec, and returns what run gave.
func runIn(t *testing.T, script string, edit func(s *specs.Spec)) result {
	t.Helper()
	dir := t.TempDir()
	s := rootlessSpec(t, busyboxRootfs(t, dir), "sh", "-c", script)
	if edit != nil {
		edit(s)
	}
	bundle(t, dir, s)
	root, id := filepath.Join(dir, "state"), containerID(t)
	t.Cleanup(func() { oci(t, root, "delete", "--force", id) })
	return oci(t, root, "run", "--bundle", dir, id)
}

// TestOCIProcessLimitsAndCaps: rlimits, capabilities, no_new_privs, cwd,
// umask and the environment reach the container's process.
func TestOCIProcessLimitsAndCaps(t *testing.T) {
	umask := uint32(0o027)
	r := runIn(t, "ulimit -n; ulimit -Hn; grep -E '^Cap(Eff|Bnd)|NoNewPrivs' /proc/self/status; pwd; umask; echo $FOO", func(s *specs.Spec) {
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 99, Hard: 512}}
		s.Process.Env = append(s.Process.Env, "FOO=bar")
		s.Process.Cwd = "/tmp"
		s.Process.User.Umask = &umask
	})
	// defaultCaps: CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
	want := "99\n512\nCapEff:\t0000000020000420\nCapBnd:\t0000000020000420\nNoNewPrivs:\t1\n/tmp\n0027\nbar\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("got %s\nwant stdout %q", r, want)
	}
}

// TestOCIProcessUser: the process runs as process.user, with its groups.
func TestOCIProcessUser(t *testing.T) {
	r := runIn(t, "id -u; id -g; id -G", func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1001, 1002}}
	})
	if r.code != 0 || r.stdout != "1000\n1000\n1000 1001 1002\n" {
		t.Fatalf("got %s", r)
	}
}

// TestOCIProcessSeccomp: linux.seccomp binds the container's process and
// a process exec'd into it: mkdir fails with EPERM in both.
func TestOCIProcessSeccomp(t *testing.T) {
	seccomp := func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
		}
	}
	r := runIn(t, "mkdir /tmp/x; echo status=$?", seccomp)
	if !strings.Contains(r.stderr+r.stdout, "Operation not permitted") || !strings.Contains(r.stdout, "status=1") {
		t.Fatalf("run: mkdir was not refused with EPERM: %s", r)
	}
	root, id, _ := running(t, func(s *specs.Spec, _ string) { seccomp(s) })
	r = oci(t, root, "exec", id, "sh", "-c", "mkdir /tmp/y; echo status=$?")
	if !strings.Contains(r.stderr+r.stdout, "Operation not permitted") || !strings.Contains(r.stdout, "status=1") {
		t.Fatalf("exec: mkdir was not refused with EPERM: %s", r)
	}
}

// TestOCIProcessBadFields: a process the runtime cannot honour is refused
// at create with one line naming the field; no container is left.
func TestOCIProcessBadFields(t *testing.T) {
	cases := []struct {
		edit func(s *specs.Spec)
		want string
	}{
		{func(s *specs.Spec) { s.Process.Capabilities.Effective = []string{"CAP_FOO"} }, `process.capabilities.effective[0]: unknown capability "CAP_FOO"`},
		{func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}} }, "process.rlimits[0].type"},
		{func(s *specs.Spec) { s.Process.Cwd = "relative" }, "process.cwd"},
		{func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/notify.sock"}
		}, "linux.seccomp: listenerPath"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		s := rootlessSpec(t, busyboxRootfs(t, dir), "true")
		c.edit(s)
		bundle(t, dir, s)
		root := filepath.Join(dir, "state")
		r := oci(t, root, "create", "--bundle", dir, "bad")
		if r.code != 125 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			oci(t, root, "delete", "--force", "bad")
			t.Errorf("want status 125 and one line containing %q: %s", c.want, r)
			continue
		}
		if l := oci(t, root, "list", "-q"); strings.TrimSpace(l.stdout) != "" {
			t.Errorf("a refused container was left: %s", l)
		}
	}
}
