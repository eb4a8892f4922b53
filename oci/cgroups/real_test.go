package cgroups

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/cgroupdelegate"
	"sandbox/internal/testenv"
)

// ticker starts a shell printing a line every 20 ms; its lines arrive on
// the returned channel.
func ticker(t *testing.T) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "while :; do echo tick; sleep 0.02; done")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return cmd, lines
}

// ticks counts the lines that arrive within d.
func ticks(lines <-chan string, d time.Duration) int {
	n := 0
	end := time.After(d)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return n
			}
			n++
		case <-end:
			return n
		}
	}
}

// TestRealLifecycle runs the manager on the test's delegated cgroup (as
// the unprivileged test user): Apply, Freeze (the process stops making
// progress, cgroup.events says frozen), Thaw, Pids, Signal, Destroy.
func TestRealLifecycle(t *testing.T) {
	parent := testenv.DelegatedCgroup(t)
	h, err := loadHost()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(h.mnt.Point, parent)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New("c1", "/"+rel+"/ctr", nil, Options{Rootless: os.Geteuid() != 0})
	if err != nil {
		t.Fatal(err)
	}
	cmd, lines := ticker(t)
	pid := cmd.Process.Pid
	if err := m.Apply(pid, &specs.LinuxResources{}); err != nil {
		t.Fatal(err)
	}
	if m.Path != filepath.Join(parent, "ctr") || m.Skipped != "" {
		t.Fatalf("manager %+v, want its cgroup at %s/ctr", m, parent)
	}
	pids, err := cgroupdelegate.Procs(m.Path)
	if err != nil || !slices.Contains(pids, pid) {
		t.Fatalf("cgroup.procs of %s: %v, %v; want %d in it", m.Path, pids, err, pid)
	}
	if n := ticks(lines, 300*time.Millisecond); n == 0 {
		t.Fatal("the ticker printed nothing before the freeze")
	}

	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || !frozen {
		t.Fatalf("Frozen after Freeze: %v, %v", frozen, err)
	}
	ticks(lines, 100*time.Millisecond) // what was written before the freeze
	if n := ticks(lines, 400*time.Millisecond); n != 0 {
		t.Errorf("a frozen ticker printed %d lines in 400 ms", n)
	}
	// The record round trip (a later command) finds the same cgroup.
	later := &Manager{Path: m.Path, Mount: m.Mount, Rootless: m.Rootless}
	if err := later.Thaw(); err != nil {
		t.Fatal(err)
	}
	if frozen, _ := later.Frozen(); frozen {
		t.Error("Frozen after Thaw")
	}
	if n := ticks(lines, 400*time.Millisecond); n == 0 {
		t.Error("the thawed ticker printed nothing in 400 ms")
	}

	// Pids: the shell and its sleeps, recursively (a child cgroup too).
	sub := filepath.Join(m.Path, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	if err := cgroupdelegate.WriteFile(sub, "cgroup.procs", itoa(sleeper.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	pids, err = later.Pids()
	if err != nil || !slices.Contains(pids, pid) || !slices.Contains(pids, sleeper.Process.Pid) {
		t.Errorf("Pids = %v, %v; want %d and %d in it", pids, err, pid, sleeper.Process.Pid)
	}

	// Signal reaches every process: SIGTERM ends the shell and the sleep.
	if err := later.Signal(int(syscall.SIGTERM)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*exec.Cmd{cmd, sleeper} {
		if !testenv.EndedBy(c, syscall.SIGTERM) {
			t.Errorf("%v did not end by SIGTERM within 5 s", c.Args)
		}
	}

	// Destroy kills what is left (a fresh sleep) and removes the tree.
	again := exec.Command("sleep", "60")
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Process.Kill(); again.Wait() })
	if err := cgroupdelegate.WriteFile(sub, "cgroup.procs", itoa(again.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if err := later.Destroy(); err != nil {
		t.Fatal(err)
	}
	if !testenv.EndedBy(again, syscall.SIGKILL) {
		t.Error("Destroy left a process alive")
	}
	if _, err := os.Stat(m.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after Destroy: %v", m.Path, err)
	}
	if err := later.Destroy(); err != nil {
		t.Errorf("a second Destroy: %v", err)
	}
}

// TestRealLimitsOnThisHost: a pids limit through the delegated cgroup. On
// a hybrid host (cgroup v1 holds pids) rootless, the limit is skipped and
// the reason names the field; where cgroup v2 has pids, it is applied.
func TestRealLimitsOnThisHost(t *testing.T) {
	parent := testenv.DelegatedCgroup(t)
	h, err := loadHost()
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(h.mnt.Point, parent)
	m, err := New("c1", "/"+rel+"/ctr", nil, Options{Rootless: true})
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := ticker(t)
	err = m.Apply(cmd.Process.Pid, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(20)}})
	t.Cleanup(func() { m.Destroy() })
	avail, _ := cgroupdelegate.List(parent, "cgroup.controllers")
	switch {
	case slices.Contains(avail, "pids"):
		if err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(m.Path, "pids.max")); got != "20" {
			t.Errorf("pids.max = %q", got)
		}
	case h.mnt.Hybrid():
		if err != nil || m.Path == "" || !strings.Contains(m.Skipped, "linux.resources.pids.limit") || !strings.Contains(m.Skipped, "hybrid host") {
			t.Errorf("rootless on a hybrid host: %+v, %v; want the limit skipped, the cgroup kept", m, err)
		}
		t.Logf("skipped: %s", m.Skipped)
	default:
		if err == nil || !strings.HasPrefix(err.Error(), "linux.resources.pids.limit: ") {
			t.Errorf("no pids controller on a pure cgroup v2 host: %v", err)
		}
	}
}
