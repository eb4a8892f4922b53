package cgroupdelegate

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"sandbox/internal/testenv"
)

var require = testenv.RequireOrSkip

// delegated is a fresh child of the test's own, delegated cgroup.
var delegated = testenv.DelegatedCgroup

// sleeper starts `sleep 60` in dir: born there (clone3) or moved there.
func sleeper(t *testing.T, dir string, born bool) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if born {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sleep in %s: %v", dir, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !born {
		if err := writeFile(dir, "cgroup.procs", strconv.Itoa(cmd.Process.Pid)); err != nil {
			t.Fatal(err)
		}
	}
	return cmd
}

// killed waits (bounded) for cmd to end and says whether SIGKILL ended it.
func killed(cmd *exec.Cmd) bool { return testenv.EndedBy(cmd, syscall.SIGKILL) }

// TestRealEvacuateKillRemove runs the life of a sandbox cgroup on the real
// cgroup2 tree: processes born in it and moved into it; Evacuate refuses,
// moving nothing, while a process it is not told is its own is there, and
// moves its own into the leaf (as before enabling controllers); they are
// killed through cgroup.kill, and the tree removed.
func TestRealEvacuateKillRemove(t *testing.T) {
	dir := delegated(t)
	a, b := sleeper(t, dir, true), sleeper(t, dir, false)
	pids, err := Procs(dir)
	if err != nil || !slices.Contains(pids, a.Process.Pid) || !slices.Contains(pids, b.Process.Pid) {
		t.Fatalf("cgroup.procs of %s = %v, %v; want %d and %d", dir, pids, err, a.Process.Pid, b.Process.Pid)
	}
	var foreign *ForeignError
	if err := Evacuate(dir, a.Process.Pid); !errors.As(err, &foreign) || !slices.Equal(foreign.PIDs, []int{b.Process.Pid}) {
		t.Fatalf("Evacuate with a foreign process %d: %v, want a ForeignError naming it", b.Process.Pid, err)
	}
	if pids, _ := Procs(dir); len(pids) != 2 {
		t.Errorf("a refused Evacuate moved processes: %s holds %v, want both sleepers", dir, pids)
	}
	if _, err := os.Stat(filepath.Join(dir, Leaf)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Evacuate made %s (%v)", Leaf, err)
	}
	// Both are sandbox's own (as the foreground `run -d` and its supervisor).
	if err := Evacuate(dir, a.Process.Pid, b.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pids, _ := Procs(dir); len(pids) != 0 {
		t.Errorf("after Evacuate %s still holds %v", dir, pids)
	}
	if pids, _ := Procs(filepath.Join(dir, Leaf)); len(pids) != 2 {
		t.Errorf("the leaf holds %v, want both sleepers", pids)
	}
	if err := Kill(dir); err != nil {
		t.Fatal(err)
	}
	if !killed(a) || !killed(b) {
		t.Error("cgroup.kill did not SIGKILL the processes of the leaf")
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists: %v", dir, err)
	}
}

// TestRealKillEach is the fallback for kernels without cgroup.kill.
func TestRealKillEach(t *testing.T) {
	dir := delegated(t)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := sleeper(t, dir, true), sleeper(t, sub, true)
	if err := killEach(dir); err != nil {
		t.Fatal(err)
	}
	if !killed(a) || !killed(b) {
		t.Error("killEach left a process alive")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "cgroup.freeze")); string(got) != "0\n" {
		t.Errorf("cgroup.freeze = %q after killEach, want it thawed", got)
	}
}

// TestRealCleanStale: a cgroup whose owner is gone is killed and removed.
func TestRealCleanStale(t *testing.T) {
	dir := delegated(t)
	self, err := ProcessOwner("/proc", "self")
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, Owner{self.PID, self.Start + 1}.Name())
	live := filepath.Join(dir, self.Name())
	for _, d := range []string{stale, live} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := sleeper(t, stale, true)
	removed, err := CleanStale(dir, "/proc")
	if err != nil || !slices.Equal(removed, []string{stale}) {
		t.Errorf("CleanStale = %q, %v; want %q", removed, err, stale)
	}
	if !killed(s) {
		t.Error("the process in the stale cgroup survived")
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live owner's cgroup went: %v", err)
	}
}
