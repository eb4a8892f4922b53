package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/internal/testenv"
	"sandbox/oci/process"
	"sandbox/oci/state"
)

// target starts `unshare` with new user, mount, pid and uts namespaces
// (what a container's init has) and returns the record of its inner
// process, which exec joins.
func target(t *testing.T) *state.Container {
	t.Helper()
	_, err := exec.LookPath("unshare")
	testenv.RequireOrSkip(t, err == nil, "unshare (util-linux)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, "unshare", "-Urmpfu", "--mount-proc", "sh", "-c", "hostname stagetest && exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	// Its child (sh, then sleep) is the process inside.
	children := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "task", strconv.Itoa(cmd.Process.Pid), "children")
	for i := 0; i < 500; i++ {
		b, _ := os.ReadFile(children)
		if f := strings.Fields(string(b)); len(f) == 1 {
			pid, _ := strconv.Atoi(f[0])
			comm, _ := os.ReadFile(filepath.Join("/proc", f[0], "comm"))
			if strings.TrimSpace(string(comm)) == "sleep" {
				return &state.Container{ID: "t", Pid: pid, PidStart: startTime(t, pid)}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("unshare's process did not start within 5 s")
	return nil
}

func startTime(t *testing.T, pid int) uint64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runStage runs p in ct through the stage, with stdout to a file; it
// returns the output and the exit status.
func runStage(t *testing.T, ct *state.Container, p *specs.Process, s *specs.Spec) (string, int, error) {
	t.Helper()
	testenv.RequireOrSkip(t, haveNsenter, "cgo (gcc) for exec's namespace stage")
	if s == nil {
		s = &specs.Spec{}
	}
	plan, err := process.Prepare(p, s)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = out
	pid, err := (&execCmd{}).start(ct, plan)
	os.Stdout = stdout
	if err != nil {
		return "", 0, err
	}
	done := make(chan int, 1)
	go func() { done <- reap(pid) }()
	select {
	case code := <-done:
		b, _ := os.ReadFile(out.Name())
		return string(b), code, nil
	case <-time.After(30 * time.Second):
		t.Fatal("the exec'd process did not end within 30 s")
	}
	return "", 0, nil
}

// TestStageEntersNamespaces: the process exec starts is in the target's
// uts, pid and mount namespaces, with the user and capabilities asked.
func TestStageEntersNamespaces(t *testing.T) {
	ct := target(t)
	caps := []string{"CAP_KILL"}
	out, code, err := runStage(t, ct, &specs.Process{
		Args: []string{"sh", "-c", "hostname; cat /proc/1/comm; echo pid=$$; id -u; grep CapEff /proc/self/status; pwd; ulimit -n; echo $HOME; exit 3"},
		Env:  []string{"PATH=/usr/bin:/bin"},
		Cwd:  "/tmp",
		User: specs.User{UID: 0, GID: 0},
		Capabilities: &specs.LinuxCapabilities{
			Bounding: caps, Effective: caps, Permitted: caps,
		},
		Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456}},
		NoNewPrivileges: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "stagetest\nsleep\n"
	if code != 3 || !strings.HasPrefix(out, want) || !strings.Contains(out, "\n0\nCapEff:\t0000000000000020\n/tmp\n123\n/root\n") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	if strings.Contains(out, "pid=1\n") || strings.Contains(out, "pid="+strconv.Itoa(ct.Pid)) {
		t.Fatalf("not in the target's pid namespace:\n%s", out)
	}
}

// TestStageMissingProgram: a program that is not there is an ExecError
// with status 127, and the error names process.args[0].
func TestStageMissingProgram(t *testing.T) {
	ct := target(t)
	_, _, err := runStage(t, ct, &specs.Process{Args: []string{"no-such-program"}, Env: []string{"PATH=/bin"}, Cwd: "/"}, nil)
	var ee *process.ExecError
	if !errors.As(err, &ee) || ee.Code != 127 || !strings.Contains(err.Error(), `process.args[0]: "no-such-program"`) {
		t.Fatalf("err %v", err)
	}
}

// TestStageStalePid: a record whose pid now names another process (its
// start time differs) is refused; nothing runs.
func TestStageStalePid(t *testing.T) {
	ct := target(t)
	ct.PidStart++
	_, _, err := runStage(t, ct, &specs.Process{Args: []string{"true"}, Cwd: "/"}, nil)
	if err == nil || !strings.Contains(err.Error(), "the container's process is gone") {
		t.Fatalf("err %v", err)
	}
}

// TestStageSeccompWithoutNoNewPrivs: linux.seccomp binds a process that
// does not ask no_new_privs (podman's default): the filter is loaded with
// the capability the process still has, and mkdir fails with EPERM.
func TestStageSeccompWithoutNoNewPrivs(t *testing.T) {
	ct := target(t)
	dir := t.TempDir()
	s := &specs.Spec{Linux: &specs.Linux{Seccomp: &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	}}}
	out, code, err := runStage(t, ct, &specs.Process{
		Args: []string{"sh", "-c", "grep NoNewPrivs /proc/self/status; mkdir " + dir + "/x 2>&1; echo status=$?"},
		Env:  []string{"PATH=/usr/bin:/bin"},
		Cwd:  "/",
		Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_SYS_ADMIN"}, Effective: []string{"CAP_SYS_ADMIN"}, Permitted: []string{"CAP_SYS_ADMIN"},
		},
	}, s)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(out, "NoNewPrivs:\t0\n") || !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "status=1") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

// TestStageScheduling: process.ioPriority, process.scheduler and
// linux.personality are applied before the program runs.
func TestStageScheduling(t *testing.T) {
	ct := target(t)
	s := &specs.Spec{Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32}}}
	out, code, err := runStage(t, ct, &specs.Process{
		Args:       []string{"sh", "-c", "ionice; uname -m; grep -E '^policy' /proc/self/sched; cut -d' ' -f19 /proc/self/stat"},
		Env:        []string{"PATH=/usr/bin:/bin"},
		Cwd:        "/",
		IOPriority: &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6},
		Scheduler:  &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7},
	}, s)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !regexp.MustCompile(`^best-effort: prio 6\ni686\npolicy\s+:\s+3\n7\n$`).MatchString(out) {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}
