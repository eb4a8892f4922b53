package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/cgroupdelegate"
	"sandbox/internal/testenv"
)

// cgOwnDir is the test process's cgroup v2 directory, which
// scripts/test.sh delegates to the test user.
func cgOwnDir(t *testing.T) string {
	t.Helper()
	testenv.DelegatedCgroup(t) // fails (CI) unless the test's cgroup is delegated
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	p, err := cgroupdelegate.ParseProcCgroup(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, mnt := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(mnt, "cgroup.procs")); err == nil {
			if _, err := os.Stat(filepath.Join(mnt, "cgroup.controllers")); err == nil {
				return filepath.Join(mnt, p)
			}
		}
	}
	t.Fatal("no cgroup2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup")
	return ""
}

// cgCreate runs create with its stdio on files: the container's init
// inherits them and keeps them open, so a pipe would never end.
func cgCreate(t *testing.T, root, dir, id string) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "create.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociBin(t), "--root", root, "create", "--bundle", dir, id)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("create: %v\n%s", err, b)
	}
}

func cgState(t *testing.T, root, id string) specs.State {
	t.Helper()
	r := oci(t, root, "state", id)
	var st specs.State
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("state: %v\n%s", err, r)
	}
	return st
}

// cgCreated creates a rootless container running args with resources r,
// deleted when the test ends; it returns the test's cgroup, the state
// root, the id and the container's cgroup directory.
func cgCreated(t *testing.T, r *specs.LinuxResources, args ...string) (base, root, id, cg string) {
	t.Helper()
	base = cgOwnDir(t)
	dir := t.TempDir()
	s := rootlessSpec(t, busyboxRootfs(t, dir), args...)
	s.Linux.Resources = r
	bundle(t, dir, s)
	root, id = filepath.Join(dir, "state"), fmt.Sprintf("cg%d", time.Now().UnixNano())
	cg = filepath.Join(base, "sandbox-oci-"+id)
	cgCreate(t, root, dir, id)
	t.Cleanup(func() {
		oci(t, root, "delete", "--force", id)
		os.Remove(cg)
	})
	return base, root, id, cg
}

// TestOCICgroupsLifecycle (rootless, in the test's delegated cgroup): the
// container gets <caller's cgroup>/sandbox-oci-<id>; pause freezes it
// (cgroup.events frozen 1, state paused), resume thaws it, ps lists its
// processes, kill --all ends them, delete removes the cgroup.
func TestOCICgroupsLifecycle(t *testing.T) {
	_, root, id, cg := cgCreated(t, nil, "sh", "-c", "sleep 60 & sleep 60")
	pid := cgState(t, root, id).Pid
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if !strings.Contains(string(b), "/sandbox-oci-"+id+"\n") {
		t.Fatalf("the init's cgroup: %q, want .../sandbox-oci-%s", b, id)
	}
	if r := oci(t, root, "start", id); r.code != 0 {
		t.Fatalf("start: %s", r)
	}
	if r := oci(t, root, "pause", id); r.code != 0 {
		t.Fatalf("pause: %s", r)
	}
	if st := cgState(t, root, id); st.Status != specs.ContainerState("paused") {
		t.Errorf("state after pause: %s", st.Status)
	}
	if n, err := cgroupdelegate.Key(cg, "cgroup.events", "frozen"); err != nil || n != 1 {
		t.Errorf("%s/cgroup.events frozen: %d, %v", cg, n, err)
	}
	if r := oci(t, root, "resume", id); r.code != 0 {
		t.Fatalf("resume: %s", r)
	}
	if st := cgState(t, root, id); st.Status != specs.StateRunning {
		t.Errorf("state after resume: %s", st.Status)
	}
	r := oci(t, root, "ps", "--format", "json", id)
	var pids []int
	if err := json.Unmarshal([]byte(r.stdout), &pids); err != nil || len(pids) != 2 {
		t.Errorf("ps --format json: %v, want its two sleeps (sh execs the last command)\n%s", err, r)
	}
	if r := oci(t, root, "kill", "--all", id, "KILL"); r.code != 0 {
		t.Fatalf("kill --all: %s", r)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n, _ := cgroupdelegate.Key(cg, "cgroup.events", "populated"); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("processes left in the cgroup 10 s after kill --all")
		}
	}
	if r := oci(t, root, "delete", id); r.code != 0 {
		t.Fatalf("delete: %s", r)
	}
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("%s after delete: %v", cg, err)
	}
}

// TestOCICgroupsLimitsHere: a pids limit, rootless. Where the delegated
// cgroup v2 has the pids controller, pids.max is written and update
// changes it; on a hybrid host (cgroup v1 holds pids) the container runs
// without the limit, as runc does rootless there, and update, which is
// explicit, fails with 125 naming the field and the hybrid host.
func TestOCICgroupsLimitsHere(t *testing.T) {
	limit := int64(50)
	base, root, id, cg := cgCreated(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}, "sleep", "60")
	avail, _ := cgroupdelegate.List(base, "cgroup.controllers")
	r := oci(t, root, "update", "--pids-limit", "40", id)
	if strings.Contains(" "+strings.Join(avail, " ")+" ", " pids ") {
		if r.code != 0 {
			t.Fatalf("update: %s", r)
		}
		b, _ := os.ReadFile(filepath.Join(cg, "pids.max"))
		if strings.TrimSpace(string(b)) != "40" {
			t.Errorf("pids.max after update: %q", b)
		}
		return
	}
	if r.code != 125 || !strings.Contains(r.stderr, "linux.resources.pids.limit: the pids controller is not available") {
		t.Errorf("update on a host without the pids controller in cgroup v2: %s", r)
	}
	if _, err := os.Stat(cg); err != nil {
		t.Errorf("the container has no cgroup (pause and kill --all need one): %v", err)
	}
}
