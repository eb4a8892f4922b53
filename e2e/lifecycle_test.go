//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/testenv"

	"golang.org/x/sys/unix"
)

// life is a private state directory (XDG_RUNTIME_DIR) for one test's named
// sandboxes, so tests never see each other's.
type life struct {
	t   *testing.T
	xdg string
	o   opts
}

func newLife(t *testing.T) *life {
	t.Helper()
	xdg := tempDir(t)
	l := &life{t: t, xdg: xdg, o: opts{env: []string{"XDG_RUNTIME_DIR=" + xdg}}}
	return l
}

func (l *life) run(args ...string) result {
	l.t.Helper()
	return runOpts(l.t, l.o, args...)
}

// detach starts `run -d --name name flags -- cmd` and stops it when the
// test ends (a detached sandbox outlives the test's process group). A
// sandbox meant to last the whole test sleeps an hour, not a minute: the
// parallel subtests that use it may wait minutes for a slot on a busy CI
// machine (TestCtrlZStopsTheSandbox/exec found "sleep 60" ended, status 0).
func (l *life) detach(name string, flags []string, cmd ...string) {
	l.t.Helper()
	args := append(append([]string{"run", "-d", "--name", name}, flags...), "--")
	r := l.run(append(args, cmd...)...)
	wantCode(l.t, r, 0)
	if got := strings.TrimSpace(r.stdout); got != name {
		l.t.Fatalf("run -d printed %q, want the name %q", got, name)
	}
	l.t.Cleanup(func() { runOpts(l.t, l.o, "stop", "--time", "1s", name) })
}

type psEntry struct {
	Name        string   `json:"name"`
	Pid         int      `json:"pid"`
	InitPid     int      `json:"init_pid"`
	Command     []string `json:"command"`
	Hostname    string   `json:"hostname"`
	Root        string   `json:"root"`
	Net         string   `json:"net"`
	Limits      []string `json:"limits"`
	Cgroup      string   `json:"cgroup"`
	Detached    bool     `json:"detached"`
	Status      string   `json:"status"`
	ExitStatus  *int     `json:"exit_status"`
	MemoryBytes int64    `json:"memory_bytes"`
	CPUSeconds  float64  `json:"cpu_seconds"`
}

func (l *life) ps(all bool) map[string]psEntry {
	l.t.Helper()
	args := []string{"ps", "--json"}
	if all {
		args = append(args, "-a")
	}
	r := l.run(args...)
	wantCode(l.t, r, 0)
	var list []psEntry
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		l.t.Fatalf("ps --json: %v\n%s", err, r)
	}
	out := map[string]psEntry{}
	for _, e := range list {
		out[e.Name] = e
	}
	return out
}

func (l *life) stateDir(name string) string { return filepath.Join(l.xdg, "sandbox", name) }

// waitLog waits (bounded) until detached sandbox name's log holds sub: a
// command that set itself up (a trap) before it said so is then ready.
func (l *life) waitLog(name, sub string) {
	l.t.Helper()
	deadline := time.Now().Add(2 * cmdTimeout)
	for !strings.Contains(l.run("logs", name).stdout, sub) {
		if time.Now().After(deadline) {
			l.t.Fatalf("the payload never printed %q: %s", sub, l.run("logs", name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNamedForegroundRun(t *testing.T) {
	l := newLife(t)
	p := start(t, l.o, "run", "--name", "fg", "--net=none", "--", "sh", "-c", "hostname; echo up; sleep 30")
	if !p.waitStdout("up", cmdTimeout) {
		t.Fatalf("never started: %s", p.wait())
	}
	e, ok := l.ps(false)["fg"]
	if !ok {
		t.Fatalf("ps does not list the running sandbox fg")
	}
	if e.Pid != p.pid() || e.Status != "running" || e.Root != "host" || e.Net != "none" ||
		strings.Join(e.Command, " ") != "sh -c hostname; echo up; sleep 30" || e.Hostname != "fg" || e.Detached {
		t.Errorf("ps entry = %+v, want pid %d, running, host root, net none, the command, hostname fg", e, p.pid())
	}
	if !strings.HasPrefix(p.stdout.String(), "fg\n") {
		t.Errorf("the hostname defaults to the name: got %q", p.stdout.String())
	}
	// The name is taken while it runs.
	r := l.run("run", "--name", "fg", "--", "true")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "in use") {
		t.Errorf("second run with the same name: want an `in use` error, got %s", r)
	}
	wantCode(t, l.run("stop", "fg"), 0)
	if r := p.wait(); r.code != 143 {
		t.Errorf("stopped foreground run: want 143 (SIGTERM), got %s", r)
	}
	if exists(l.stateDir("fg")) {
		t.Errorf("a foreground run's state %s is left after it ended", l.stateDir("fg"))
	}
}

func TestNameValidation(t *testing.T) {
	l := newLife(t)
	for _, bad := range []string{"-x", "a/b", "..", strings.Repeat("n", 64), "a b"} {
		r := l.run("run", "--name", bad, "--", "true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "--name") {
			t.Errorf("--name %q: the error does not name the flag: %s", bad, r)
		}
	}
	// A name that is no hostname is fine; the hostname is then generated.
	r := l.run("run", "--name", "under_score", "--", "hostname")
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, "sandbox-") {
		t.Errorf("hostname for --name under_score: got %q, want a generated sandbox-XXXXXX", r.stdout)
	}
}

func TestStaleStateOfKilledRun(t *testing.T) {
	l := newLife(t)
	p := start(t, l.o, "run", "--name", "victim", "--net=none", "--", "sh", "-c", "echo up; sleep 30")
	if !p.waitStdout("up", cmdTimeout) {
		t.Fatalf("never started: %s", p.wait())
	}
	if !exists(filepath.Join(l.stateDir("victim"), "state.json")) {
		t.Fatalf("no state under %s while running", l.stateDir("victim"))
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
	if _, ok := l.ps(true)["victim"]; ok {
		t.Errorf("ps -a lists the SIGKILLed sandbox")
	}
	if exists(l.stateDir("victim")) {
		t.Errorf("the stale state %s was not removed by ps", l.stateDir("victim"))
	}
	wantCode(t, l.run("run", "--name", "victim", "--", "true"), 0)
}

func TestExecJoinsSandbox(t *testing.T) {
	l := newLife(t)
	l.detach("dev", []string{"--net=none", "-e", "FROM_RUN=yes", "--hostname", "devhost"}, "sleep", "3600")
	// Every namespace of the exec'd command is the payload's, and so are
	// the root, the hostname, the cgroup and the confinement.
	r := l.run("exec", "dev", "--", "sh", "-c", `
		p=$(pgrep -x sleep)
		for n in user mnt pid uts ipc net cgroup; do
			a=$(readlink /proc/self/ns/$n); b=$(readlink /proc/$p/ns/$n)
			[ -n "$a" ] && [ "$a" = "$b" ] || echo "ns $n differs: $a $b"
		done
		echo "host=$(hostname) env=$FROM_RUN cg=$(grep '^0::' /proc/self/cgroup)"
		grep -E '^(CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
		echo ---
		grep -E '^(CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/$p/status
		echo ---
		echo persisted > /tmp/from-exec; pwd`)
	wantCode(t, r, 0)
	s := sections(r.stdout)
	if len(s) != 3 {
		t.Fatalf("unexpected output: %s", r)
	}
	if strings.Contains(s[0], "differs") {
		t.Errorf("exec'd command is not in the sandbox's namespaces:\n%s", s[0])
	}
	if !strings.Contains(s[0], "host=devhost env=yes cg=0::/") {
		t.Errorf("hostname, environment or cgroup differ from the sandbox's: %s", s[0])
	}
	own := strings.Join(lines(s[0])[1:], "\n")
	if own != strings.TrimSpace(s[1]) || !strings.Contains(own, "NoNewPrivs:\t1") || !strings.Contains(own, "Seccomp:\t2") {
		t.Errorf("confinement of the exec'd command:\n%s\nwant the payload's:\n%s", own, s[1])
	}
	if wd, _ := os.Getwd(); strings.TrimSpace(s[2]) != wd {
		t.Errorf("working directory %q, want the payload's %q", s[2], wd)
	}
	// A relative --chdir is refused, as run's (before, exec took it from /).
	r = l.run("exec", "--chdir", "tmp", "dev", "--", "pwd")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "--chdir tmp: the path inside the sandbox must be absolute") {
		t.Errorf("exec --chdir tmp: %s", r)
	}
	r = l.run("exec", "-e", "X=1", "--chdir", "/tmp", "dev", "--", "sh", "-c", "cat /tmp/from-exec; echo $X; pwd")
	wantCode(t, r, 0)
	if r.stdout != "persisted\n1\n/tmp\n" {
		t.Errorf("second exec: got %q, want the first one's file, X=1 and /tmp", r.stdout)
	}
	wantCode(t, l.run("exec", "dev", "--", "sh", "-c", "exit 7"), 7)
	wantCode(t, l.run("exec", "dev", "--", "sh", "-c", "kill -TERM $$"), 143)
	wantCode(t, l.run("exec", "dev", "--", "no-such-command"), 127)
	r = l.run("exec", "--tty=always", "dev", "--", "tty")
	wantCode(t, r, 0)
	if !strings.HasPrefix(strings.TrimSpace(r.stdout), "/dev/pts/") {
		t.Errorf("exec --tty=always: tty printed %q, want /dev/pts/N", r.stdout)
	}
}

func TestExecForwardsSignals(t *testing.T) {
	l := newLife(t)
	l.detach("sig", []string{"--net=none"}, "sleep", "3600")
	// At once when the command says it runs, 4 at a time, 10 rounds each
	// (load makes it likelier): its Started may still be on the way to
	// exec, which took the signal for one before the command started and
	// ended 143, killing the command (once in CI).
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; i < 10; i++ {
				p := start(t, l.o, "exec", "sig", "--", "sh", "-c", `trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
				if !p.waitStdout("ready", cmdTimeout) {
					t.Errorf("exec never started: %s", p.wait())
					return
				}
				p.cmd.Process.Signal(syscall.SIGTERM)
				r := p.wait()
				if r.code != 3 || !strings.Contains(r.stdout, "got-term") {
					t.Errorf("exec %d, round %d: the exec'd command did not get SIGTERM (want exit 3): %s", g, i, r)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestExecKilledEndsItsCommand: when `sandbox exec` is SIGKILLed while
// its command runs, the command's process group ends with it (as the
// whole sandbox does with `sandbox run`): a caller's timeout that kills
// the client leaves nothing running in the sandbox. Before, the command
// (here a shell and its background sleep) ran on, unreachable.
func TestExecKilledEndsItsCommand(t *testing.T) {
	l := newLife(t)
	l.detach("killed", []string{"--net=none"}, "sleep", "3600")
	p := start(t, l.o, "exec", "killed", "--", "sh", "-c", `sleep 300 & echo $$ $! > /tmp/pids; echo ready; wait`)
	if !p.waitStdout("ready", cmdTimeout) {
		t.Fatalf("exec never started: %s", p.wait())
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
	const check = `for p in $(cat /tmp/pids); do kill -0 $p 2>/dev/null && echo "alive $p"; done; echo checked`
	var r result
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = l.run("exec", "killed", "--", "sh", "-c", check); r.code == 0 && r.stdout == "checked\n" {
			break
		}
	}
	if r.code != 0 || r.stdout != "checked\n" {
		t.Errorf("the command of a SIGKILLed exec runs on in the sandbox: %s", r)
	}
	// The sandbox itself goes on.
	wantCode(t, l.run("exec", "killed", "--", "true"), 0)
}

// TestPSQuotesControlCharacters: a command with a newline, a tab or a
// terminal escape sequence in an argument is one line of ps's table, its
// argument quoted; before, the row broke in two and the escape sequence
// reached the caller's terminal as it was.
func TestPSQuotesControlCharacters(t *testing.T) {
	l := newLife(t)
	arg := "sleep 3600 # \n\x1b[31mred\r\tz"
	l.detach("ctl", []string{"--net=none"}, "sh", "-c", arg)
	r := l.run("ps")
	wantCode(t, r, 0)
	rows := lines(r.stdout)
	if len(rows) != 2 || strings.ContainsAny(r.stdout, "\x1b\r\t") {
		t.Fatalf("ps: want a header and one row, no raw control characters: %q", r.stdout)
	}
	if !strings.HasSuffix(rows[1], "sh -c "+strconv.Quote(arg)) {
		t.Errorf("ps: the command should end the row quoted: %q", rows[1])
	}
}

// TestExecRefusesAForeignSocket: an exec socket that is not the one the
// sandbox's supervisor listens on (here a listener of the same user put in
// its place) gets nothing: exec stops with 125 before it sends its
// request, stdio or environment. Before, the listener got all three (a
// probe, when a sandbox could still reach the state directory, answered
// with forged output into the caller's file).
func TestExecRefusesAForeignSocket(t *testing.T) {
	escRequirePython(t)
	l := newLife(t)
	l.detach("target", []string{"--net=none"}, "sleep", "3600")
	sock := filepath.Join(l.stateDir("target"), "exec.sock")
	got := filepath.Join(tempDir(t), "got")
	const fake = `import os, socket, sys
sock, got = sys.argv[1], sys.argv[2]
os.unlink(sock)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sock); s.listen(1); s.settimeout(15)
print("listening", flush=True)
try:
    c, _ = s.accept()
    c.settimeout(5)
    data = c.recv(65536)
    open(got, "wb").write(data)
except Exception:
    pass`
	p := exec.Command(escPy, "-c", fake, sock, got)
	out, err := p.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Process.Kill()
	buf := make([]byte, 64)
	if n, _ := out.Read(buf); !strings.Contains(string(buf[:n]), "listening") {
		t.Fatalf("the foreign listener did not start: %q", buf[:n])
	}
	r := l.run("exec", "-e", "TOKEN=s3cr3t", "target", "--", "echo", "hello")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "its exec socket is not its supervisor's") {
		t.Errorf("exec to a foreign socket: %s", r)
	}
	p.Process.Kill()
	p.Wait()
	if b, err := os.ReadFile(got); err == nil && len(b) > 0 {
		t.Errorf("the foreign listener got exec's request: %q", b)
	}
}

func TestDetachKillStopLogsRm(t *testing.T) {
	l := newLife(t)
	l.detach("bg", []string{"--net=none"}, "sh", "-c",
		`trap 'echo usr1' USR1; trap 'echo term; exit 5' TERM; echo started; while :; do sleep 0.05; done`)
	e := l.ps(false)["bg"]
	if !e.Detached || e.Status != "running" {
		t.Fatalf("ps entry of the detached sandbox: %+v", e)
	}
	l.waitLog("bg", "started") // its traps are set
	wantCode(t, l.run("kill", "bg", "USR1"), 0)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.run("logs", "bg").stdout, "usr1") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	wantCode(t, l.run("stop", "bg"), 0)
	if e := l.ps(false); len(e) != 0 {
		t.Errorf("ps lists sandboxes after stop: %v", e)
	}
	e, ok := l.ps(true)["bg"]
	if !ok || e.Status != "exited" || e.ExitStatus == nil || *e.ExitStatus != 5 {
		t.Errorf("ps -a after stop: %+v, want exited with status 5", e)
	}
	r := l.run("logs", "bg")
	wantCode(t, r, 0)
	if r.stdout != "started\nusr1\nterm\n" {
		t.Errorf("logs: got %q, want started, usr1, term", r.stdout)
	}
	r = l.run("exec", "bg", "--", "true")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "has ended with status 5") {
		t.Errorf("exec into an ended sandbox: %s", r)
	}
	// Stopping what has ended succeeds (as when it ends during the stop),
	// saying so; signalling it does not.
	r = l.run("stop", "bg")
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "sandbox bg had already ended with status 5") {
		t.Errorf("stop of an ended sandbox: %s", r)
	}
	r = l.run("kill", "bg")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "has ended with status 5") {
		t.Errorf("kill of an ended sandbox: %s", r)
	}
	wantCode(t, l.run("rm", "bg"), 0)
	if _, ok := l.ps(true)["bg"]; ok || exists(l.stateDir("bg")) {
		t.Errorf("rm left the sandbox's record")
	}
	for _, args := range [][]string{{"rm", "bg"}, {"kill", "bg"}, {"stop", "bg"}, {"logs", "bg"}, {"exec", "bg", "--", "true"}} {
		r := l.run(args...)
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, `no such sandbox named "bg"`) {
			t.Errorf("%v of an unknown sandbox: %s", args, r)
		}
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	l := newLife(t)
	l.detach("stubborn", []string{"--net=none"}, "sh", "-c", `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	// run -d returns once the command runs, maybe before the shell has
	// set its trap: a TERM then ends it (143; once in CI, on a loaded
	// machine).
	l.waitLog("stubborn", "ready")
	began := time.Now()
	wantCode(t, l.run("stop", "--time", "500ms", "stubborn"), 0)
	if d := time.Since(began); d < 500*time.Millisecond {
		t.Errorf("stop returned after %v, before its grace time", d)
	}
	// Killed while its command ran: 137, as the command was, not 125 (a
	// sandbox that failed) with "killed … before it reported".
	e := l.ps(true)["stubborn"]
	if e.ExitStatus == nil || *e.ExitStatus != 137 {
		t.Errorf("a sandbox ignoring SIGTERM: ps -a %+v, want it killed (137)", e)
	}
	if r := l.run("logs", "stubborn"); strings.Contains(r.stdout+r.stderr, "before it reported") {
		t.Errorf("the log of a sandbox stopped while its command ran: %s", r)
	}
	// The same in the foreground: `sandbox run` exits 137, with one line.
	p := start(t, l.o, "run", "--name", "stubborn-fg", "--net=none", "--", "sh", "-c", `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	if !p.waitStdout("ready", 15*time.Second) {
		t.Fatalf("the command never started\n%s", p.wait())
	}
	wantCode(t, l.run("stop", "--time", "300ms", "stubborn-fg"), 0)
	r := p.wait()
	wantCode(t, r, 137)
	if n := len(lines(r.stderr)); n != 1 || !strings.Contains(r.stderr, "while the command ran") {
		t.Errorf("run stopped past its grace time: want one line saying the command ended with the sandbox: %s", r)
	}
	requireNoLeftovers(t, 0, false, 5*time.Second)
}

// TestStopNegativeTime: stop --time=-1s is refused in one line and the
// sandbox runs on; before, it was taken as 0 and killed it at once.
func TestStopNegativeTime(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("neg", []string{"--net=none"}, "sleep", "3600")
	r := l.run("stop", "--time=-1s", "neg")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "negative") || len(lines(r.stderr)) != 1 {
		t.Errorf("stop --time=-1s: want one line saying why: %s", r)
	}
	if e := l.ps(false)["neg"]; e.Status != "running" {
		t.Errorf("after a refused stop the sandbox should run on: %+v", e)
	}
}

// TestLogsNotARegularFile: a log replaced by a FIFO or a directory gets
// one line and 125 from `sandbox logs`: before, a FIFO hung it, and a
// directory blamed stdout ("write /dev/stdout: copy_file_range: is a
// directory").
func TestLogsNotARegularFile(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("odd-log", []string{"--net=none"}, "true")
	logPath := filepath.Join(l.xdg, "sandbox", "odd-log", "log")
	for i := 0; i < 100 && l.ps(true)["odd-log"].Status != "exited"; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	for what, plant := range map[string]func() error{
		"a FIFO":      func() error { return syscall.Mkfifo(logPath, 0o600) },
		"a directory": func() error { return os.Mkdir(logPath, 0o700) },
	} {
		if err := os.RemoveAll(logPath); err != nil {
			t.Fatal(err)
		}
		if err := plant(); err != nil {
			t.Fatal(err)
		}
		r := runOpts(t, opts{env: l.o.env, timeout: 10 * time.Second}, "logs", "odd-log")
		wantCode(t, r, exitSandbox)
		if r.timedOut || !strings.Contains(r.stderr, "not a regular file") || len(lines(r.stderr)) != 1 {
			t.Errorf("logs with %s for a log: want one line and 125: %s", what, r)
		}
	}
}

func TestDetachErrors(t *testing.T) {
	l := newLife(t)
	r := l.run("run", "-d", "--name", "bad", "--", "/no/such/command")
	wantCode(t, r, 127)
	if !strings.Contains(r.stderr, "/no/such/command") {
		t.Errorf("run -d of a missing command: %s", r)
	}
	for _, args := range [][]string{
		{"run", "-d", "--tty=always", "--", "true"},
		{"run", "-d", "--preserve-fds", "1", "--", "true"},
		{"kill", "x", "NOSUCHSIG"},
	} {
		r := l.run(args...)
		wantCode(t, r, exitSandbox)
	}
	// The name that cannot be printed is an error that says the sandbox
	// runs (before: exit 0, nothing printed, nothing said).
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	o := l.o
	o.stdout = full
	r = runOpts(t, o, "run", "-d", "--name", "unprinted", "--net=none", "--", "sleep", "60")
	t.Cleanup(func() { runOpts(t, l.o, "stop", "--time", "1s", "unprinted") })
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "sandbox unprinted runs in the background, but its name could not be printed") {
		t.Errorf("run -d with stdout full: %s", r)
	}
	if e := l.ps(false)["unprinted"]; e.Status != "running" {
		t.Errorf("the sandbox whose name was not printed: %+v, want it running", e)
	}
	// A command that ends at once is still a started sandbox.
	l.detach("quick", []string{"--net=none"}, "sh", "-c", "echo bye; exit 4")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e := l.ps(true)["quick"]; e.Status == "exited" {
			if *e.ExitStatus != 4 {
				t.Errorf("exit status %d, want 4", *e.ExitStatus)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the detached sandbox never ended")
}

// TestPSShowsCgroupUse: where the caller's cgroup is delegated, a sandbox
// gets a cgroup of its own even without limits, and ps reports its CPU use
// (and memory where the memory controller is enabled; limits themselves
// are tested in the VM, vm/guest/lifecycle_test.go).
func TestPSShowsCgroupUse(t *testing.T) {
	testenv.DelegatedCgroup(t)
	l := newLife(t)
	l.detach("use", []string{"--net=none"}, "sh", "-c", "x=0; while [ $x -lt 200000 ]; do x=$((x+1)); done; sleep 60")
	deadline := time.Now().Add(10 * time.Second)
	var e psEntry
	for time.Now().Before(deadline) {
		if e = l.ps(false)["use"]; e.CPUSeconds > 0.01 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.HasPrefix(filepath.Base(e.Cgroup), "sandbox-") || !exists(filepath.Join(e.Cgroup, "payload")) || e.CPUSeconds <= 0 {
		t.Errorf("ps: cgroup %q, cpu %.3f s; want the sandbox's own cgroup and CPU use", e.Cgroup, e.CPUSeconds)
	}
	ctrl, _ := os.ReadFile(filepath.Join(filepath.Dir(e.Cgroup), "cgroup.subtree_control"))
	if hasMem := strings.Contains(string(ctrl), "memory"); hasMem != (e.MemoryBytes > 0) {
		t.Errorf("ps memory %d bytes with subtree_control %q", e.MemoryBytes, ctrl)
	}
	r := l.run("ps")
	if !strings.Contains(r.stdout, "use ") || !strings.Contains(r.stdout, "s  ") {
		t.Errorf("ps table: %s", r)
	}
}

// TestExecMany: hundreds of execs in a row into one sandbox all work (init
// once closed fds twice, and a garbage collection then hit a later
// request's descriptors: EBADF after ~130 execs).
func TestExecMany(t *testing.T) {
	l := newLife(t)
	l.detach("many", []string{"--net=none"}, "sleep", "120")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script := `for i in $(seq 300); do "$0" exec many -- sh -c 'exit 0' </dev/null || { echo "exec $i failed: $?"; exit 1; }; done; echo all-ok`
	cmd := exec.CommandContext(ctx, "sh", "-c", script, binary(t))
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+l.xdg)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all-ok") {
		t.Fatalf("300 execs: %v\n%s", err, out)
	}
}

// TestCallerFdsNotKept: a descriptor the caller left open (not
// close-on-exec: a shell's `5>&1`, a CI runner's pipe, a make jobserver's)
// is kept by nothing sandbox starts: not the detached supervisor, the
// network helper or the holder, which outlive the call. Before, `{ sandbox
// run -d … ; } 5>&1 | cat` returned only when the sandbox had ended.
func TestCallerFdsNotKept(t *testing.T) {
	t.Parallel()
	requireDriver(t, "slirp4netns")
	l := newLife(t) // a state directory of its own: this run starts its holder
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	o := l.o
	// fd 5 of sandbox, as the caller left it (3 and 4 are what run -d
	// hands its supervisor).
	o.extra = []*os.File{devnull, devnull, w}
	res := runOpts(t, o, "run", "-d", "--name", "fds", "--net=slirp4netns", "--", "sleep", "60")
	w.Close()
	wantCode(t, res, 0)
	t.Cleanup(func() { runOpts(t, l.o, "stop", "--time", "1s", "fds") })
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(eof) }()
	select {
	case <-eof:
	case <-time.After(10 * time.Second):
		t.Errorf("the caller's pipe (fd 5 of sandbox) is still held 10s after run -d returned, by: %s",
			strings.Join(holdersOf(fmt.Sprintf("pipe:[%d]", st.Ino)), "; "))
	}
}

// holdersOf describes the processes (other than this test) with an fd
// linked to target.
func holdersOf(target string) []string {
	var out []string
	for _, p := range allProcs() {
		if p.pid == os.Getpid() {
			continue
		}
		dir := fmt.Sprintf("/proc/%d/fd", p.pid)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == target {
				out = append(out, fmt.Sprintf("%s (fd %s)", p, e.Name()))
			}
		}
	}
	return out
}

// TestCallerUmask: the payload gets the caller's umask, whatever it is,
// and sandbox's own files keep their owner's bits: under `umask 0777` a
// run failed with "opening the lock of sandbox …: permission denied" and
// left a record no command could remove; under 0400 a run warned that its
// record could not be updated.
func TestCallerUmask(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	for _, mask := range []string{"0777", "0700", "0400"} {
		t.Run(mask, func(t *testing.T) {
			o := l.o
			o.prepare = afterSh("umask " + mask)
			r := runOpts(t, o, "run", "--net=none", "--", "sh", "-c", "umask")
			wantCode(t, r, 0)
			if got := strings.TrimSpace(r.stdout); got != mask || r.stderr != "" {
				t.Errorf("umask %s: the payload has %q, want %s, and nothing on stderr\n%s", mask, got, mask, r)
			}
			name := "um" + mask
			wantCode(t, runOpts(t, o, "run", "-d", "--name", name, "--net=none", "--", "sleep", "60"), 0)
			r = runOpts(t, o, "exec", name, "--", "sh", "-c", "umask")
			wantCode(t, r, 0)
			if got := strings.TrimSpace(r.stdout); got != mask {
				t.Errorf("umask %s: a command exec'd into a detached sandbox has %q\n%s", mask, got, r)
			}
			wantCode(t, runOpts(t, o, "stop", "--time", "1s", name), 0)
			wantCode(t, runOpts(t, o, "rm", name), 0)
		})
	}
	if left, _ := os.ReadDir(filepath.Join(l.xdg, "sandbox")); len(left) > 1 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("records left in the state directory: %v (only .holder expected)", names)
	}
}

// TestDetachedLogBounded: a detached sandbox that writes fast keeps at most
// two logs of logMax (the newest output last, in `sandbox logs`); before,
// its log grew without bound (4 GB in 8 s) in a state directory that is
// often a tmpfs. The command's stdout stays a plain blocking pipe.
func TestDetachedLogBounded(t *testing.T) {
	t.Parallel()
	const logMax = 16 << 20 // parent.LogMax
	l := newLife(t)
	r := l.run("run", "-d", "--name", "chatty", "--net=none", "--", "sh", "-c",
		`head -c 41943040 /dev/zero | tr '\0' x; echo; echo END`)
	wantCode(t, r, 0)
	for i := 0; i < 600 && l.ps(true)["chatty"].Status != "exited"; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if st := l.ps(true)["chatty"].Status; st != "exited" {
		t.Fatalf("chatty: %q after 30 s", st)
	}
	dir := filepath.Join(l.xdg, "sandbox", "chatty")
	for _, n := range []string{"log", "log.1"} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || fi.Size() > logMax+64<<10 {
			t.Errorf("%s: %v, want at most %d bytes", n, err, logMax+64<<10)
		}
	}
	var out countTail
	r = runOpts(t, opts{env: l.o.env, stdout: &out}, "logs", "chatty")
	wantCode(t, r, 0)
	if out.n < logMax || out.n > 2*(logMax+64<<10) || !strings.HasSuffix(string(out.tail), "x\nEND\n") {
		t.Errorf("sandbox logs: %d bytes ending %q, want the newest %d to %d ending with END", out.n, out.tail, logMax, 2*logMax)
	}

	// A program that writes its output with blocking writes must not get
	// EAGAIN: stdout and stderr are not O_NONBLOCK (04000).
	l.detach("fdflags", []string{"--net=none"}, "sh", "-c", `grep flags /proc/self/fdinfo/1 /proc/self/fdinfo/2; sleep 3600`)
	var flags []string
	for i := 0; i < 100 && len(flags) < 2; i++ {
		time.Sleep(50 * time.Millisecond)
		flags = lines(l.run("logs", "fdflags").stdout)
	}
	for _, f := range flags {
		_, v, _ := strings.Cut(f, "flags:")
		n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
		if err != nil || n&0o4000 != 0 {
			t.Errorf("the command's %s (O_NONBLOCK is 04000)", f)
		}
	}
	if len(flags) != 2 {
		t.Errorf("fdinfo flags of stdout and stderr: %q", flags)
	}
}

// countTail counts what is written and keeps its last bytes.
type countTail struct {
	n    int
	tail []byte
}

func (c *countTail) Write(p []byte) (int, error) {
	c.n += len(p)
	c.tail = append(c.tail, p...)
	if len(c.tail) > 64 {
		c.tail = c.tail[len(c.tail)-64:]
	}
	return len(p), nil
}

// TestInitSurvivesFullProcessTable: init runs as the payload's user inside
// and shares its RLIMIT_NPROC (4096). With the payload's processes at the
// limit, signals to init (here a storm of SIGCHLD, which it must handle)
// and a `sandbox exec` (which may fail: 126, EAGAIN) leave the sandbox
// running. Before, init's Go runtime could not make the thread it then
// needed and died (fatal error: newosproc), ending the sandbox with 125
// and a stack trace. Not parallel: it holds 4096 processes for seconds.
func TestInitSurvivesFullProcessTable(t *testing.T) {
	l := newLife(t)
	fill := `import os, signal
n = 0
try:
    while n < 5000:
        os.posix_spawn("/bin/sleep", ["sleep", "3600"], os.environ); n += 1
except OSError:
    pass
print("spawned", n, flush=True)
for i in range(50000):
    os.kill(1, signal.SIGCHLD)
print("signalled", flush=True)
signal.pause()
`
	l.detach("full", []string{"--net=none"}, "python3", "-c", fill)
	deadline := time.Now().Add(120 * time.Second)
	for !strings.Contains(l.run("logs", "full").stdout, "signalled") {
		if e := l.ps(true)["full"]; e.Status != "running" || time.Now().After(deadline) {
			t.Fatalf("the payload did not fill its processes and signal init: %+v\n%s", e, l.run("logs", "full"))
		}
		time.Sleep(time.Second)
	}
	for i := range 3 {
		if r := l.run("exec", "full", "--", "true"); r.code != 0 && r.code != 126 {
			t.Fatalf("exec %d with the processes at their limit: want 0 or 126 (EAGAIN)\n%s", i, r)
		}
	}
	if e := l.ps(false)["full"]; e.Status != "running" {
		t.Errorf("the sandbox ended with its processes at their limit: %+v\n%s", e, l.run("logs", "full"))
	}
	if r := l.run("logs", "full"); !strings.Contains(r.stdout, "spawned 40") || strings.Contains(r.stdout+r.stderr, "goroutine") {
		t.Errorf("want about 4090 processes spawned and no Go trace in the log\n%s", r)
	}
	wantCode(t, l.run("kill", "full", "KILL"), 0)
}

// TestExecInterruptedBeforeStart: a sandbox exec whose sandbox does not
// answer (its init stopped) ends on SIGTERM, as the signal would end it,
// so that timeout(1) works. Before, it caught the signal to pass on to a
// command that never started, and waited forever.
func TestExecInterruptedBeforeStart(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("frozen", []string{"--net=none"}, "sleep", "3600")
	init := l.ps(false)["frozen"].InitPid
	if init <= 0 {
		t.Fatalf("no init pid in ps")
	}
	if err := unix.Kill(init, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer unix.Kill(init, unix.SIGCONT)
	p := start(t, l.o, "exec", "frozen", "--", "true")
	time.Sleep(time.Second)
	if err := unix.Kill(p.pid(), unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() { done <- p.wait() }()
	select {
	case r := <-done:
		if r.code != 128+int(unix.SIGTERM) || !strings.Contains(r.stderr, "before the command started") {
			t.Errorf("want 143 and one line\n%s", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("sandbox exec did not end on SIGTERM with the sandbox's init stopped")
	}
}

// TestQuitWhileWaiting: Ctrl-\ (SIGQUIT) on a waiting logs -f ends it as
// it ends other programs (131), without the Go runtime's dump of every
// goroutine that it printed before (~150 lines, status 2).
func TestQuitWhileWaiting(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("quit", []string{"--net=none"}, "sh", "-c", "echo up; sleep 3600")
	p := start(t, l.o, "logs", "-f", "quit")
	if !p.waitStdout("up", cmdTimeout) {
		t.Fatalf("logs -f showed nothing: %s", p.wait())
	}
	if err := unix.Kill(p.pid(), unix.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	if r := p.wait(); r.code != 128+int(unix.SIGQUIT) || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("logs -f on SIGQUIT: want 131 and no Go dump\n%s", r)
	}
}

// TestDetachInterrupted: SIGINT to run -d while the sandbox starts (Ctrl-C,
// a CI job's cancel) reaches the sandbox's command, which ends, and run -d
// says so with 130. Before, run -d died of it (130, not a word) and the
// sandbox ran on.
func TestDetachInterrupted(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	p := start(t, l.o, "run", "-d", "--name", "intr", "--net=none", "--", "sleep", "3600")
	// The log is made just before the supervisor starts.
	deadline := time.Now().Add(cmdTimeout)
	for !exists(filepath.Join(l.stateDir("intr"), "log")) {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("no log appeared: %s", p.wait())
		}
		time.Sleep(time.Millisecond)
	}
	if err := unix.Kill(p.pid(), unix.SIGINT); err != nil {
		t.Fatal(err)
	}
	r := p.wait()
	if r.code != 130 || r.signaled || !strings.Contains(r.stderr, "interrupted") || strings.Contains(r.stdout, "intr") {
		t.Fatalf("run -d interrupted: want 130 with a line saying so, and no name\n%s", r)
	}
	for end := time.Now().Add(cmdTimeout); ; time.Sleep(100 * time.Millisecond) {
		if _, ok := l.ps(false)["intr"]; !ok {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the interrupted sandbox runs on: %s", l.run("ps", "-a"))
		}
	}
}

// TestStopMeetsTheEnd: a stop that comes after the command ended, while
// the sandbox is still ending (here it removes an --ephemeral=disk
// directory of 30 000 files), waits for the end and returns 0. Before, it
// exited 125 at once ("the command has ended") with the sandbox running.
func TestStopMeetsTheEnd(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("ending", []string{"--net=none", "--ephemeral=disk"}, "sh", "-c",
		`mkdir /tmp/x && cd /tmp/x && seq 1 30000 | xargs touch; trap 'exit 0' HUP; echo ready; while :; do sleep 0.05; done`)
	l.waitLog("ending", "ready")
	wantCode(t, l.run("kill", "ending", "HUP"), 0)
	time.Sleep(100 * time.Millisecond) // the command ends; the sandbox removes its files
	if r := l.run("stop", "ending"); r.code != 0 {
		t.Errorf("stop as the sandbox ended: want 0\n%s", r)
	}
	if e := l.ps(true)["ending"]; e.Status != "exited" {
		t.Errorf("after stop: %+v, want it ended", e)
	}
}
