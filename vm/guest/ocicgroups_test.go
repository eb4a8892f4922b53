//go:build linux && vmguest

package guest

// sandbox-oci's cgroup manager (oci/cgroups) on a pure cgroup v2 host, as
// the unprivileged user in a delegated scope: linux.resources applied to a
// real process, the limits enforced, freeze, destroy.

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/cgroups"
)

// ociManager is a rootless manager for a cgroup ctr below a fresh scope.
func ociManager(t *testing.T, r *specs.LinuxResources) *cgroups.Manager {
	t.Helper()
	scope := newScope(t)
	rel := strings.TrimPrefix(scope, "/sys/fs/cgroup")
	m, err := cgroups.New("c1", rel+"/ctr", r, cgroups.Options{Rootless: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return m
}

// gated starts sh -c script in our own cgroup; the script waits for a line
// on stdin (sent by go()) so that it runs only once moved and limited.
type gated struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    lockedBuf
	cancel context.CancelFunc
}

// lockedBuf is the output, read while the process writes it.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuf) Len() int { return len(l.String()) }

func startGated(t *testing.T, script string) *gated {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	g := &gated{cancel: cancel}
	g.cmd = exec.CommandContext(ctx, "sh", "-c", "read go; "+script)
	g.cmd.Stdout, g.cmd.Stderr = &g.out, &g.out
	var err error
	if g.stdin, err = g.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); g.cmd.Wait() })
	return g
}

// run releases the script and waits for it (bounded by cmdTimeout).
func (g *gated) run(t *testing.T) (int, string) {
	t.Helper()
	g.stdin.Write([]byte("go\n"))
	g.stdin.Close()
	g.cmd.Wait()
	g.cancel()
	return g.cmd.ProcessState.ExitCode(), g.out.String()
}

func cgFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func i64p(n int64) *int64 { return &n }

// TestOCICgroupsPids: linux.resources.pids.limit 8 through oci/cgroups;
// a shell that starts 20 sleeps gets EAGAIN from fork, pids.current never
// exceeds 8 and pids.events counts the refusals.
func TestOCICgroupsPids(t *testing.T) {
	r := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(8)}}
	m := ociManager(t, r)
	g := startGated(t, "i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo started $i; wait")
	if err := m.Apply(g.cmd.Process.Pid, r); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if m.Skipped != "" || m.Path == "" {
		t.Fatalf("the manager skipped: %+v", m)
	}
	if got := cgFile(t, m.Path, "pids.max"); got != "8" {
		t.Errorf("pids.max = %q", got)
	}
	done := make(chan struct{})
	var code int
	var out string
	go func() { code, out = g.run(t); close(done) }()
	// The sleeps live 30 s: the fork refusals happen while they do. The
	// kernel counts a refusal before the shell prints it, so wait for both:
	// a SIGKILL between the two would lose the message (seen once in CI).
	var cur int64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, _ := strconv.ParseInt(cgFile(t, m.Path, "pids.current"), 10, 64)
		cur = max(cur, c)
		if ev := keyValue(cgFile(t, m.Path, "pids.events"), "max"); ev >= 1 && strings.Contains(g.out.String(), "fork") {
			break
		}
	}
	if err := m.Signal(9); err != nil {
		t.Errorf("Signal(SIGKILL): %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the shell did not end after SIGKILL to its cgroup")
	}
	ev := keyValue(cgFile(t, m.Path, "pids.events"), "max")
	t.Logf("exit %d, pids.current peaked at %d, pids.events max %d, output %q", code, cur, ev, out)
	if ev < 1 {
		t.Errorf("pids.events records no refused fork (max %d); output %q", ev, out)
	}
	if cur > 8 {
		t.Errorf("pids.current reached %d under pids.max 8", cur)
	}
	if !strings.Contains(out, "fork") {
		t.Errorf("the shell did not report a failed fork: %q", out)
	}
}

// TestOCICgroupsMemory: memory.limit 32M with swap = limit (no swap):
// memory.max and memory.swap.max as runc writes them, and a 64 MiB
// allocation is OOM-killed (memory.events oom_kill).
func TestOCICgroupsMemory(t *testing.T) {
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(32 << 20), Swap: i64p(32 << 20)}}
	m := ociManager(t, r)
	g := startGated(t, "dd if=/dev/zero of=/dev/null bs=64M count=1")
	if err := m.Apply(g.cmd.Process.Pid, r); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for f, want := range map[string]string{"memory.max": "33554432", "memory.swap.max": "0"} {
		if got := cgFile(t, m.Path, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	code, out := g.run(t)
	kills := keyValue(cgFile(t, m.Path, "memory.events"), "oom_kill")
	t.Logf("exit %d, memory.events oom_kill %d, output %q", code, kills, out)
	if code != 137 && code != -1 || kills < 1 {
		t.Errorf("a 64 MiB dd under memory.max 32M: exit %d, oom_kill %d", code, kills)
	}
	// update: a higher limit lets it through.
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(256 << 20), Swap: i64p(256 << 20)}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got := cgFile(t, m.Path, "memory.max"); got != "268435456" {
		t.Errorf("memory.max after update = %q", got)
	}
}

// TestOCICgroupsFreeze: Freeze stops the processes (cgroup.events frozen 1,
// no progress), Thaw resumes them, Destroy kills and removes the cgroup.
func TestOCICgroupsFreeze(t *testing.T) {
	m := ociManager(t, nil)
	g := startGated(t, "while :; do echo x; sleep 0.05; done")
	if err := m.Apply(g.cmd.Process.Pid, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	g.stdin.Write([]byte("go\n"))
	time.Sleep(300 * time.Millisecond)
	if err := m.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if keyValue(cgFile(t, m.Path, "cgroup.events"), "frozen") != 1 {
		t.Error("cgroup.events does not say frozen 1")
	}
	before := g.out.Len()
	time.Sleep(500 * time.Millisecond)
	if after := g.out.Len(); after != before {
		t.Errorf("a frozen loop wrote %d bytes", after-before)
	}
	if err := m.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if g.out.Len() == before {
		t.Error("the thawed loop wrote nothing in 500 ms")
	}
	path := m.Path
	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s after Destroy: %v", path, err)
	}
}
