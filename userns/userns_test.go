package userns

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"sandbox/internal/testenv"
)

// cgroupOf is pid's cgroup v2 path.
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	t.Fatalf("no cgroup v2 line for pid %d", pid)
	return ""
}

// TestStartInCgroup: the child is born in Options.Cgroup (clone3), in a
// new user namespace.
func TestStartInCgroup(t *testing.T) {
	dir := testenv.DelegatedCgroup(t)
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(Options{Path: sleep, Args: []string{"sleep", "30"}, Cloneflags: syscall.CLONE_NEWUSER, Cgroup: f})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(c.Pid, syscall.SIGKILL); c.Wait() }()
	if c.CgroupVia != "clone3" {
		t.Errorf("CgroupVia = %q, want clone3 on this kernel", c.CgroupVia)
	}
	if got := cgroupOf(t, c.Pid); !strings.HasSuffix(dir, got) {
		t.Errorf("the child is in %s, not in %s", got, dir)
	}
}

// TestJoinCgroup is the fallback where clone3 cannot start the child in
// its cgroup: it is moved through cgroup.procs.
func TestJoinCgroup(t *testing.T) {
	dir := testenv.DelegatedCgroup(t)
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := JoinCgroup(f, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got := cgroupOf(t, cmd.Process.Pid); !strings.HasSuffix(dir, got) {
		t.Errorf("the process is in %s, not in %s", got, dir)
	}
	if err := JoinCgroup(f, 1<<30); err == nil || !strings.Contains(err.Error(), "into its cgroup") {
		t.Errorf("moving a missing process: %v", err)
	}
}

func TestRetryOutsideCgroup(t *testing.T) {
	for err, want := range map[error]bool{
		syscall.ENOSYS: true, syscall.E2BIG: true, syscall.EBUSY: true, syscall.EOPNOTSUPP: true,
		syscall.EACCES: true, syscall.EPERM: true, syscall.ENOSPC: false, syscall.EINVAL: false,
		&os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: syscall.EBUSY}: true,
	} {
		if got := retryOutsideCgroup(err); got != want {
			t.Errorf("retryOutsideCgroup(%v) = %v", err, got)
		}
	}
}

// TestStageError: the stage (no C library) reports an errno's number; the
// error says its text and matches it.
func TestStageError(t *testing.T) {
	err := stageError("joining the holder's user namespace: errno 22")
	if err.Error() != "joining the holder's user namespace: invalid argument" || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("stageError: %q (is EINVAL: %v)", err, errors.Is(err, syscall.EINVAL))
	}
	for _, why := range []string{"something else", "x: errno", "x: errno 0", "x: errno 99999", "x: errno -1"} {
		if err := stageError(why); err.Error() != why {
			t.Errorf("stageError(%q) = %q, want it as it is", why, err)
		}
	}
}
