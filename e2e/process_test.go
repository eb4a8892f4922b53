//go:build linux

package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPID1ReapsZombies(t *testing.T) {
	t.Parallel()
	script := `for i in $(seq 100); do (sleep 0.01 &); done; sleep 1; ` +
		`cat /proc/[0-9]*/status 2>/dev/null | grep -c '^State:[[:space:]]*Z' || true`
	r := mustRun(t, opts{}, sh(nil, script)...)
	if got := strings.TrimSpace(r.stdout); got != "0" {
		t.Errorf("want 0 zombies inside after orphaned children exited, got %s", got)
	}
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"exit 42", sh(nil, "exit 42"), 42},
		{"exit 0", sh(nil, "exit 0"), 0},
		{"false", []string{"run", "--", "false"}, 1},
		{"SIGTERM", sh(nil, "kill -TERM $$"), 128 + 15},
		{"SIGKILL", sh(nil, "kill -KILL $$"), 128 + 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantCode(t, run(t, tc.args...), tc.want)
		})
	}
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"e2e-no-such-command-" + randHex(6), "/nonexistent/e2e-cmd-" + randHex(6)} {
			r := run(t, "run", "--", name)
			wantCode(t, r, 127)
			if !strings.Contains(r.stderr, name) {
				t.Errorf("the message should name the missing command %q: %s", name, r)
			}
		}
	})
	// An empty name is not found (before: "": is a directory, 126); a
	// script whose interpreter is missing says so, 126 as bash (before:
	// the script "no such file or directory", 127).
	t.Run("empty name", func(t *testing.T) {
		t.Parallel()
		r := run(t, "run", "--net=none", "--", "")
		wantCode(t, r, 127)
		if !strings.Contains(r.stderr, "command not found") {
			t.Errorf("an empty command name: %s", r)
		}
	})
	t.Run("bad interpreter", func(t *testing.T) {
		t.Parallel()
		dir := tempDir(t)
		writeFile(t, filepath.Join(dir, "s"), "#!/nonexistent/e2e-interp\necho ran\n", 0o755)
		r := runIn(t, dir, "run", "--net=none", "--", "./s")
		wantCode(t, r, 126)
		if !strings.Contains(r.stderr, `./s: bad interpreter "/nonexistent/e2e-interp"`) {
			t.Errorf("a script whose interpreter is missing: %s", r)
		}
	})
	t.Run("not executable", func(t *testing.T) {
		t.Parallel()
		dir := tempDir(t)
		script := filepath.Join(dir, "noexec.sh")
		writeFile(t, script, "#!/bin/sh\necho ran\n", 0o644)
		r := runIn(t, dir, "run", "--", script)
		wantCode(t, r, 126)
		if !strings.Contains(r.stderr, "noexec.sh") {
			t.Errorf("the message should name %s: %s", script, r)
		}
		if strings.Contains(r.stdout, "ran") {
			t.Errorf("the non-executable file ran")
		}
		r = run(t, "run", "--", "/etc")
		wantCode(t, r, 126)
	})
}

func TestSignalForwarding(t *testing.T) {
	t.Parallel()
	cases := []struct {
		sig  syscall.Signal
		name string
		code int
	}{
		{syscall.SIGTERM, "TERM", 7},
		{syscall.SIGINT, "INT", 8},
		{syscall.SIGHUP, "HUP", 10},
		{syscall.SIGUSR1, "USR1", 9},
		{syscall.SIGQUIT, "QUIT", 11},
		{syscall.SIGUSR2, "USR2", 12},
		// Before, sandbox ignored these (the Go runtime's default for
		// them) and the command ran on.
		{syscall.SIGALRM, "ALRM", 13},
		{syscall.SIGVTALRM, "VTALRM", 14},
		{syscall.SIGPWR, "PWR", 15},
		{syscall.SIGXCPU, "XCPU", 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := fmt.Sprintf(`trap "echo got-%s; exit %d" %s; echo ready; while :; do sleep 0.1; done`, tc.name, tc.code, tc.name)
			p := start(t, opts{}, sh(nil, script)...)
			if !p.waitStdout("ready", 15*time.Second) {
				t.Fatalf("payload never became ready: %s", p.wait())
			}
			if err := syscall.Kill(p.pid(), tc.sig); err != nil {
				t.Fatal(err)
			}
			r := p.wait()
			if r.code != tc.code || r.timedOut || !strings.Contains(r.stdout, "got-"+tc.name) {
				t.Errorf("SIG%s sent to the sandbox should reach the payload's trap (got-%s, exit %d); got %s",
					tc.name, tc.name, tc.code, r)
			}
		})
	}
}

// TestCallersSignalMaskNotInherited: signals the caller blocked (a CI
// runner, a wrapper; here this test's thread, which sandbox is forked
// from) are not blocked in the payload, nor in what sandbox exec starts.
// Before, they were: the payload never saw SIGUSR1, and sandbox kill NAME
// USR1 never arrived. (The payloads are not sh: dash clears its mask.)
func TestCallersSignalMaskNotInherited(t *testing.T) {
	t.Parallel()
	name := "sigmask-" + randHex(4)
	runtime.LockOSThread()
	var set, old unix.Sigset_t
	for _, s := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGCONT, syscall.SIGWINCH} {
		set.Val[(s-1)/64] |= 1 << ((s - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	fg := start(t, opts{}, "run", "--net=none", "--", "grep", "^SigBlk", "/proc/self/status")
	bg := start(t, opts{}, "run", "-d", "--name", name, "--net=none", "--", "sleep", "30")
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	runtime.UnlockOSThread()
	t.Cleanup(func() {
		// stop waits for the end; rm right after kill could meet the
		// record still running, and leave it in the user's state.
		run(t, "stop", "--time", "1s", name)
		if r := run(t, "rm", name); r.code != 0 {
			t.Errorf("removing %s: %s", name, r)
		}
	})
	if r := fg.wait(); r.code != 0 || !strings.Contains(r.stdout, "SigBlk:\t0000000000000000") {
		t.Errorf("the payload runs with the caller's blocked signals (want SigBlk 0)\n%s", r)
	}
	wantCode(t, bg.wait(), 0)
	r := run(t, "exec", name, "--", "sh", "-c", `for f in /proc/[0-9]*/status; do grep -E "^(Name|SigBlk)" $f | tr "\n" " "; echo; done`)
	sleep := ""
	for _, l := range lines(r.stdout) {
		if strings.Contains(l, "Name:\tsleep") {
			sleep = l
		}
	}
	if r.code != 0 || !strings.Contains(sleep, "SigBlk:\t0000000000000000") {
		t.Errorf("a detached payload runs with the caller's blocked signals (want SigBlk 0 for sleep)\n%s", r)
	}
	if r := run(t, "exec", name, "--", "grep", "^SigBlk", "/proc/self/status"); r.code != 0 || !strings.Contains(r.stdout, "SigBlk:\t0000000000000000") {
		t.Errorf("what sandbox exec starts runs with the caller's blocked signals (want SigBlk 0)\n%s", r)
	}
}

// TestFaultSignalsToInit: the payload may signal PID 1, and a fault's
// signal it sends (kill -SEGV 1) is not init's own fault: the sandbox
// runs on, and the payload inherits none of these ignored. Before, init's
// Go runtime died of each with a stack trace of ~180 lines, and sandbox
// blamed the user's limits (125).
func TestFaultSignalsToInit(t *testing.T) {
	t.Parallel()
	r := run(t, sh([]string{"--net=none"}, `for s in SEGV ABRT BUS FPE ILL TRAP SYS; do kill -s $s 1 || echo "kill $s failed"; done; sleep 0.3; grep ^SigIgn /proc/self/status; exit 3`)...)
	if r.code != 3 || strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stdout, "failed") {
		t.Errorf("fault signals sent to init: want the payload's exit 3 and no Go trace\n%s", r)
	}
	// sh's own ignored signals are none: SigIgn is 0.
	if !strings.Contains(r.stdout, "SigIgn:\t0000000000000000") {
		t.Errorf("the payload inherits ignored signals\n%s", r)
	}
}

// TestSignalsFromInsideToInit: a process inside may signal PID 1 (kill
// -TSTP 1, kill -TERM 1), and init takes signals for the command only from
// `sandbox run` itself, over its socket: none of these changes anything
// (nor ends init: the Go runtime's default for some), and the command runs
// to its end. Before, init passed them on as the parent's:
// kill -TSTP 1 stopped the command's process group for good and sandbox
// waited forever, kill -TERM 1 ended the command.
func TestSignalsFromInsideToInit(t *testing.T) {
	t.Parallel()
	script := `trap "echo got-TERM" TERM; trap "echo got-INT" INT
for s in TSTP TERM INT HUP QUIT USR1 USR2 CONT ALRM VTALRM PWR XCPU WINCH TTIN TTOU ABRT; do kill -s $s 1 || echo "kill $s failed"; done
sleep 0.5; echo alive; exit 4`
	r := runOpts(t, opts{timeout: 20 * time.Second}, sh([]string{"--net=none"}, script)...)
	if r.timedOut || r.code != 4 || !strings.Contains(r.stdout, "alive") || strings.Contains(r.stdout, "got-") || strings.Contains(r.stdout, "failed") {
		t.Errorf("signals sent to PID 1 from inside must not reach the command nor stop it (want alive, exit 4)\n%s", r)
	}
}

// TestQueuedFaultSignalsToInit: a fault signal sent to PID 1 from inside
// with a siginfo of its own (rt_sigqueueinfo(2), SI_QUEUE, as sigqueue(3)
// sends it) is dropped, as kill's is: Go's runtime in init took it for
// init's own fault and died with a stack trace, which ended the sandbox
// (internal/sigdrop).
func TestQueuedFaultSignalsToInit(t *testing.T) {
	t.Parallel()
	_, err := exec.LookPath("perl")
	requireOrSkip(t, err == nil, "perl (its syscall() sends the signals; Debian package perl-base)")
	// siginfo_t: si_signo, si_errno, si_code (-1, SI_QUEUE), zeros to 128 bytes.
	perl := fmt.Sprintf(`for my $s (%d, %d, %d, %d, %d, %d) { syscall(%d, 1, $s, pack("i3", $s, 0, -1) . ("\0" x 116)) == 0 or die "rt_sigqueueinfo($s): $!\n"; print "sent $s\n" }`,
		syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, unix.SYS_RT_SIGQUEUEINFO)
	r := runOpts(t, opts{timeout: 20 * time.Second}, "run", "--net=none", "--", "sh", "-c", `perl -e "$0" || exit 9; sleep 0.3; echo alive; exit 4`, perl)
	if r.timedOut || r.code != 4 || strings.Count(r.stdout, "sent ") != 6 || !strings.Contains(r.stdout, "alive") || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("fault signals queued to PID 1 from inside must be dropped (want 6 sent, alive, exit 4, no stack trace of init)\n%s", r)
	}
}

// TestIgnoredSignalsStayIgnored: signals the caller ignores (nohup's
// SIGHUP, the SIGINT of a script's background job; here sh's trap of HUP
// and INT with an empty action) are not caught and passed on to end the
// sandbox: the payload runs to its end, as under any program that
// respects them (before, sandbox caught them and the payload died: exit
// 129, 130).
func TestIgnoredSignalsStayIgnored(t *testing.T) {
	t.Parallel()
	p := start(t, opts{prepare: afterSh(`trap '' HUP INT`)}, sh([]string{"--net=none"}, "echo ready; sleep 1; echo finished")...)
	if !p.waitStdout("ready", 15*time.Second) {
		t.Fatalf("payload never became ready: %s", p.wait())
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT} {
		if err := syscall.Kill(p.pid(), sig); err != nil {
			t.Fatal(err)
		}
	}
	r := p.wait()
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "finished") {
		t.Errorf("the payload did not run to its end with SIGHUP and SIGINT ignored by the caller\n%s", r)
	}
}

// TestCtrlZStopsTheSandbox: without a pty, Ctrl-Z (SIGTSTP to the job's
// process group, which start makes sandbox's own) stops the command too,
// and fg or bg (SIGCONT) continues it; for run and for exec. Before, only
// sandbox stopped: the command, in a session of its own, ran on while the
// shell said Stopped.
func TestCtrlZStopsTheSandbox(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("ctrlz", []string{"--net=none"}, "sleep", "3600")
	const ticks = `i=0; while [ $i -lt 40 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done`
	for _, cmd := range [][]string{{"run", "--net=none"}, {"exec", "ctrlz"}} {
		t.Run(cmd[0], func(t *testing.T) {
			t.Parallel()
			p := start(t, l.o, append(cmd, "--", "sh", "-c", ticks)...)
			if !p.waitStdout("tick 3", 15*time.Second) {
				t.Fatalf("the command never ticked\n%s", p.wait())
			}
			if err := syscall.Kill(-p.pid(), syscall.SIGTSTP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // the stop takes effect
			stoppedAt := strings.Count(p.stdout.String(), "tick")
			time.Sleep(1 * time.Second)
			if n := strings.Count(p.stdout.String(), "tick"); n != stoppedAt {
				t.Errorf("after Ctrl-Z the command of %s went on ticking (%d → %d)", cmd[0], stoppedAt, n)
			}
			if st, ok := readProc(p.pid()); !ok || st.state != 'T' {
				t.Errorf("after Ctrl-Z sandbox %s is not stopped: %v", cmd[0], st)
			}
			if err := syscall.Kill(-p.pid(), syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			r := p.wait()
			if r.code != 0 && cmd[0] == "exec" {
				// What the sandbox's supervisor and init said, to tell why.
				t.Logf("ps -a: %s\nlogs: %s", l.run("ps", "-a", "--json"), l.run("logs", "ctrlz"))
			}
			wantCode(t, r, 0)
			if !strings.Contains(r.stdout, "tick 39") {
				t.Errorf("after fg the command of %s did not run to its end\n%s", cmd[0], r)
			}
		})
	}
}

// TestKillZeroKeepsTheRoot: a command that signals its own process group
// (`kill 0`, a shell's `trap 'kill 0' EXIT`) does not reach init's
// fuse-overlayfs daemons: before, it killed them and the root was gone
// ("Transport endpoint is not connected").
func TestKillZeroKeepsTheRoot(t *testing.T) {
	t.Parallel()
	requireOrSkip(t, findHelper("fuse-overlayfs"), "fuse-overlayfs for --overlay=fuse")
	r := mustRun(t, opts{}, sh([]string{"--net=none", "--overlay=fuse"}, `trap "" TERM; kill 0; sleep 0.3; ls /usr/bin >/dev/null && echo root-ok`)...)
	if !strings.Contains(r.stdout, "root-ok") {
		t.Errorf("after the command's kill 0 the root is gone\n%s", r)
	}
}

// signalOn sends sig to the sandbox process the moment a line containing
// on appears on its stderr (the -v log), once.
type signalOn struct {
	on   string
	sig  syscall.Signal
	cmd  *exec.Cmd
	buf  []byte
	once sync.Once
}

func (s *signalOn) Write(b []byte) (int, error) {
	s.buf = append(s.buf, b...)
	if strings.Contains(string(s.buf), s.on) {
		s.once.Do(func() { syscall.Kill(s.cmd.Process.Pid, s.sig) })
	}
	return len(b), nil
}

// TestSignalDuringStart: a signal that reaches `sandbox run` while init is
// still starting (its Go runtime not yet running, or not yet catching
// signals) is neither lost nor the end of init: the parent holds it until
// init has said it catches them, and it reaches the payload once that
// runs. Forwarded at once, with a holder (init starts ~5 ms before it can
// catch a signal, and the parent is ready to forward sooner), it was
// dropped (the init of a pid namespace ignores a signal it has no handler
// for: the payload ran to its end) or ended init ("init exited with status
// 2 before it reported", exit 125).
func TestSignalDuringStart(t *testing.T) {
	t.Parallel()
	for _, way := range []string{"holder", "helpers"} {
		t.Run(way, func(t *testing.T) {
			t.Parallel()
			h := holderWay(t, way)
			for i := 0; i < 3; i++ {
				trig := &signalOn{on: "started init (pid", sig: syscall.SIGTERM}
				p := start(t, opts{env: h.env, prepare: func(c *exec.Cmd) {
					trig.cmd = c
					c.Stderr = io.MultiWriter(c.Stderr, trig)
				}}, "run", "-v", "--net=none", "--", "sh", "-c", "sleep 5; echo slept")
				r := p.wait()
				if !strings.Contains(r.stderr, trig.on) {
					t.Fatalf("the -v log has no %q line to send the signal on:\n%s", trig.on, r)
				}
				if via := mapsVia(t, r); via != way {
					t.Fatalf("maps written by %s, want %s", via, way)
				}
				if r.signaled || r.code != 128+int(syscall.SIGTERM) || strings.Contains(r.stdout, "slept") {
					t.Fatalf("run %d: SIGTERM sent as init started should end the payload (exit 143), not be lost or end init; got %s", i, r)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Cleanup. These tests are not parallel: they compare /tmp before and after
// and look for any process of the sandbox binary.

// toolchainTemp names what the Go toolchain and the testing package of
// packages tested concurrently make in /tmp: t.TempDir is named for its
// test, fuzz target or benchmark (a FuzzConfig… directory of oci/config's
// seed corpus run appeared during TestCleanupAfterSignalExit once).
var toolchainTemp = regexp.MustCompile(`^(Test|Fuzz|Benchmark|Example|go-build|go-link|gopls|cc[A-Za-z0-9]{6}|sandbox-test\.|sandbox-vm-)`)

// privateTmp gives the sandbox its own TMPDIR and checks at the end of the
// test that nothing is left in it.
func privateTmp(t *testing.T) []string {
	dir := slashTmpDir(t)
	t.Cleanup(func() {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("entries left in the sandbox's TMPDIR %s: %q", dir, names)
		}
	})
	return []string{"TMPDIR=" + dir}
}

// tmpEntries lists entries of the dirs where a sandbox could leave state,
// keeping those that could be ours (owned by us or our subordinate ids).
func tmpEntries() map[string]bool {
	dirs := []string{"/tmp", os.TempDir(), "/dev/shm", fmt.Sprintf("/run/user/%d", os.Getuid())}
	subs := expectedRanges("/etc/subuid")
	out := map[string]bool{}
	for _, d := range slices.Compact(dirs) {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := e.Name()
			// The test framework's and the Go toolchain's own temp files
			// (other packages may be built and tested concurrently: the
			// VM package's sandbox-vm-* too).
			if toolchainTemp.MatchString(name) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			uid := int64(info.Sys().(*syscall.Stat_t).Uid)
			mine := uid == int64(os.Getuid())
			for _, r := range subs {
				mine = mine || (uid >= r.start && uid < r.start+r.count)
			}
			if mine {
				out[filepath.Join(d, name)] = true
			}
		}
	}
	return out
}

func requireNoNewTmpEntries(t *testing.T, before map[string]bool) {
	t.Helper()
	var added []string
	for p := range tmpEntries() {
		if !before[p] {
			added = append(added, p)
		}
	}
	if len(added) > 0 {
		slices.Sort(added)
		t.Errorf("new entries left behind: %q", added)
	}
}

// sleepMarker is a `sleep` argument unique to one test, to find the process.
func sleepMarker() string { return sleepFor(1000) }

// sleepFor is a sleepMarker of about secs seconds.
func sleepFor(secs int) string { return fmt.Sprintf("%d.%06d", secs, time.Now().UnixNano()%1000000) }

func findSleep(arg string) (procInfo, bool) {
	for _, p := range allProcs() {
		if len(p.cmdline) == 2 && filepath.Base(p.cmdline[0]) == "sleep" && p.cmdline[1] == arg && p.state != 'Z' {
			return p, true
		}
	}
	return procInfo{}, false
}

func waitForSleep(t *testing.T, arg string, p *proc) procInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := findSleep(arg); ok {
			return s
		}
		if p != nil && p.exited() {
			t.Fatalf("sandbox exited before `sleep %s` appeared: %s", arg, p.wait())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("`sleep %s` never appeared", arg)
	return procInfo{}
}

// requireGone polls (bounded) until none of the processes is alive.
func requireGone(t *testing.T, procs []procInfo, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var left []string
		for _, p := range procs {
			if alive(p.pid, p.start) {
				left = append(left, p.String())
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				if alive(p.pid, p.start) {
					_ = syscall.Kill(p.pid, syscall.SIGKILL) // a descendant of the sandbox we started
				}
			}
			t.Errorf("still alive %v after the sandbox ended:\n%s", within, strings.Join(left, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCleanupAfterSandboxSIGKILL(t *testing.T) {
	env := privateTmp(t)
	before := tmpEntries()
	since := bootTicks()
	arg := sleepMarker()
	p := start(t, opts{env: env}, "run", "--", "sleep", arg)
	s := waitForSleep(t, arg, p)
	tree := descendants(p.pid())
	if !slices.ContainsFunc(tree, func(q procInfo) bool { return q.pid == s.pid }) {
		t.Logf("note: sleep (pid %d) is not a descendant of the sandbox (pid %d) in the host's view", s.pid, p.pid())
		tree = append(tree, s)
	}
	if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := p.wait()
	if r.timedOut {
		t.Fatalf("sandbox did not end after SIGKILL: %s", r)
	}
	requireGone(t, tree, 5*time.Second)
	requireNoLeftovers(t, since, true, 2*time.Second)
	requireNoNewTmpEntries(t, before)
}

func TestCleanupAfterNormalExit(t *testing.T) {
	env := privateTmp(t)
	before := tmpEntries()
	since := bootTicks()
	arg := sleepMarker()
	// The payload leaves a detached grandchild behind and exits.
	r := mustRun(t, opts{env: env}, sh(nil, "(sleep "+arg+" </dev/null >/dev/null 2>&1 &); echo started")...)
	if strings.TrimSpace(r.stdout) != "started" {
		t.Errorf("unexpected output: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, ok := findSleep(arg)
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(s.pid, syscall.SIGKILL) // started by our payload
			t.Errorf("the payload's background child survived the sandbox: %s", s)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	requireNoLeftovers(t, since, true, 2*time.Second)
	requireNoNewTmpEntries(t, before)
}

func TestCleanupAfterSignalExit(t *testing.T) {
	env := privateTmp(t)
	before := tmpEntries()
	since := bootTicks()

	t.Run("payload killed by itself", func(t *testing.T) {
		arg := sleepMarker()
		p := start(t, opts{env: env}, sh(nil, "sleep "+arg+" </dev/null >/dev/null 2>&1 & sleep 0.5; kill -KILL $$")...)
		s := waitForSleep(t, arg, nil)
		r := p.wait()
		wantCode(t, r, 128+9)
		requireGone(t, []procInfo{s}, 5*time.Second)
	})
	t.Run("SIGTERM forwarded", func(t *testing.T) {
		arg := sleepMarker()
		p := start(t, opts{env: env}, sh(nil, "sleep "+arg+" </dev/null >/dev/null 2>&1 & echo ready; wait")...)
		s := waitForSleep(t, arg, p)
		if !p.waitStdout("ready", 10*time.Second) {
			t.Fatalf("payload never became ready: %s", p.wait())
		}
		tree := descendants(p.pid())
		if err := syscall.Kill(p.pid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r := p.wait()
		wantCode(t, r, 128+15)
		requireGone(t, append(tree, s), 5*time.Second)
	})
	requireNoLeftovers(t, since, true, 2*time.Second)
	requireNoNewTmpEntries(t, before)
}
