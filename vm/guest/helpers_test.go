//go:build linux && vmguest

package guest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cmdTimeout bounds one sandbox command: generous, TCG on a loaded host.
const cmdTimeout = 90 * time.Second

// helperEnv names the helper a re-executed copy of this binary runs (inside
// a sandbox, where the test framework has no business).
const helperEnv = "VMTEST_HELPER"

// helpers by name; each prints KEY: value lines and returns an exit status.
var helpers = map[string]func() int{}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "no helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h())
	}
	os.Exit(m.Run())
}

func sandboxBin(t *testing.T) string {
	t.Helper()
	return passedIn(t, "SANDBOX_BIN", "the sandbox binary")
}

// passedIn is the path in variable name of what the host test passed into
// the VM.
func passedIn(t *testing.T, name, what string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		t.Fatalf("%s is not set (the host test passes %s into the VM)", name, what)
	}
	return p
}

// ownCgroup is the cgroup v2 directory of this process.
func ownCgroup(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatalf("reading /proc/self/cgroup: %v", err)
	}
	rel, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "0::")
	if !ok || strings.Contains(rel, "\n") {
		t.Fatalf("/proc/self/cgroup is not a pure cgroup v2 membership: %q", b)
	}
	return filepath.Join("/sys/fs/cgroup", rel)
}

var scopes atomic.Int64

// newScope creates an empty sibling of our own scope, owned by us: what
// `systemd-run --user --scope -p Delegate=yes` gives the command it starts
// (cgroup.controllers = what the user manager has, subtree_control empty),
// marked delegated with the user.delegate xattr as systemd marks delegated
// units (there is no user manager to ask in this guest).
func newScope(t *testing.T) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	dir := filepath.Join(filepath.Dir(ownCgroup(t)), fmt.Sprintf("run-%s-%d.scope", name, scopes.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating the scope %s: %v", dir, err)
	}
	if err := syscall.Setxattr(dir, "user.delegate", []byte("1"), 0); err != nil {
		t.Fatalf("marking the scope %s delegated: %v", dir, err)
	}
	t.Cleanup(func() { removeCgroupTree(t, dir) })
	return dir
}

// removeCgroupTree removes dir and the cgroups below it, bottom-up.
func removeCgroupTree(t *testing.T, dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			removeCgroupTree(t, filepath.Join(dir, e.Name()))
		}
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return
		}
	}
	t.Errorf("removing cgroup %s: %v", dir, err)
}

type result struct {
	args           []string
	stdout, stderr string
	code           int // N, or 128+signal
	elapsed        time.Duration
	err            error // could not start, or timed out
}

func (r result) String() string {
	status := fmt.Sprintf("exit %d", r.code)
	if r.err != nil {
		status = r.err.Error()
	}
	return fmt.Sprintf("`sandbox %s`: %s after %v\n--- stdout:\n%s\n--- stderr:\n%s",
		strings.Join(r.args, " "), status, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// proc is a sandbox command running in its own scope.
type proc struct {
	cmd    *exec.Cmd
	scope  string
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	stdout bytes.Buffer
	stderr bytes.Buffer
	res    result
	done   bool
}

// start runs `$SANDBOX_BIN args...` in a new scope (see newScope), in dir.
func start(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startProgram(t, dir, sandboxBin(t), args...)
}

// startProgram runs `path args...` as start runs sandbox.
func startProgram(t *testing.T, dir, path string, args ...string) *proc {
	t.Helper()
	p := &proc{scope: newScope(t)}
	cg, err := os.Open(p.scope)
	if err != nil {
		t.Fatalf("opening %s: %v", p.scope, err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	p.ctx, p.cancel = ctx, cancel
	p.cmd = exec.CommandContext(ctx, path, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	// Born in the scope (clone3 CLONE_INTO_CGROUP), in its own process group
	// so a timeout kills all of it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Setpgid: true}
	p.cmd.Cancel = func() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }
	p.cmd.WaitDelay = 5 * time.Second
	p.res.args = args
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting `sandbox %s`: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(func() { p.wait() })
	return p
}

// wait waits for the command (bounded by cmdTimeout) and returns its result.
func (p *proc) wait() result {
	if p.done {
		return p.res
	}
	p.done = true
	err := p.cmd.Wait()
	p.res.elapsed = time.Since(p.start)
	timedOut := p.ctx.Err() == context.DeadlineExceeded
	p.cancel()
	p.res.stdout, p.res.stderr = p.stdout.String(), p.stderr.String()
	var st syscall.WaitStatus
	ok := p.cmd.ProcessState != nil
	if ok {
		st, ok = p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	switch {
	case timedOut:
		p.res.err = fmt.Errorf("timed out after %v (killed)", cmdTimeout)
	case !ok:
		p.res.err = fmt.Errorf("waiting: %v", err)
	case st.Signaled():
		p.res.code = 128 + int(st.Signal())
	default:
		p.res.code = st.ExitStatus()
	}
	return p.res
}

// run runs `$SANDBOX_BIN args...` in a fresh temporary directory.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return start(t, t.TempDir(), args...).wait()
}

func wantCode(t *testing.T, r result, want int) {
	t.Helper()
	if r.err != nil || r.code != want {
		t.Fatalf("want exit status %d, got %s", want, r)
	}
}

// helperCopy copies this test binary into dir (the shared working directory
// of a sandbox) and returns its path there.
func helperCopy(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "vmhelper")
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatalf("copying %s: %v", self, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// field returns the value of the first "KEY: value" line of out.
func field(out, key string) (string, bool) {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+": "); ok {
			return v, true
		}
	}
	return "", false
}

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}
