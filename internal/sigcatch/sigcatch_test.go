//go:build linux && (amd64 || arm64)

package sigcatch

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/sigaction"
	"sandbox/internal/testenv"

	"golang.org/x/sys/unix"
)

func receive(t *testing.T, c <-chan os.Signal, want syscall.Signal) {
	t.Helper()
	select {
	case s := <-c:
		if s != want {
			t.Errorf("received %v, want %v", s, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%v did not arrive within 10 s", want)
	}
}

// nothingOn fails if c has a signal waiting.
func nothingOn(t *testing.T, c <-chan os.Signal, what string) {
	t.Helper()
	select {
	case s := <-c:
		t.Errorf("%v arrived on %s", s, what)
	default:
	}
}

func handler(t *testing.T, s syscall.Signal) uint64 {
	t.Helper()
	a, err := sigaction.Get(s)
	if err != nil {
		t.Fatal(err)
	}
	return a.Handler
}

// TestNotifyAndStop: caught signals come on the channel (SIGTERM's
// default in the runtime would end the test), by the relay and not by
// the runtime's handler; Stop puts the runtime's handler back exactly.
func TestNotifyAndStop(t *testing.T) {
	runtimeHandler := handler(t, syscall.SIGTERM)
	c := make(chan os.Signal, 4)
	if err := Notify(c, syscall.SIGTERM, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if h := handler(t, syscall.SIGTERM); h != uint64(relayAddr()) {
		t.Fatalf("SIGTERM's handler is %#x, want the relay %#x", h, relayAddr())
	}
	unix.Kill(os.Getpid(), unix.SIGTERM)
	receive(t, c, syscall.SIGTERM)
	unix.Kill(os.Getpid(), unix.SIGUSR2)
	receive(t, c, syscall.SIGUSR2)
	Stop(c)
	if h := handler(t, syscall.SIGTERM); h != runtimeHandler {
		t.Errorf("after Stop SIGTERM's handler is %#x, want the runtime's %#x", h, runtimeHandler)
	}
	// The runtime's handling is whole again: os/signal gets it.
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGUSR2)
	defer signal.Stop(again)
	unix.Kill(os.Getpid(), unix.SIGUSR2)
	receive(t, again, syscall.SIGUSR2)
	nothingOn(t, c, "the stopped channel")
}

// TestAnyThread: a signal sent to one thread of the process (tgkill: the
// one a locked goroutine runs on), not to the process, is relayed too.
func TestAnyThread(t *testing.T) {
	c := make(chan os.Signal, 4)
	if err := Notify(c, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	defer Stop(c)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGUSR1)
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	receive(t, c, syscall.SIGUSR1)
}

// TestMovesToNewChannel: a signal caught again for another channel goes
// there, and the first channel's Stop leaves it caught.
func TestMovesToNewChannel(t *testing.T) {
	a, b := make(chan os.Signal, 1), make(chan os.Signal, 1)
	if err := Notify(a, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := Notify(b, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	defer Stop(b)
	Stop(a)
	unix.Kill(os.Getpid(), unix.SIGUSR1)
	receive(t, b, syscall.SIGUSR1)
	nothingOn(t, a, "the first channel")
}

// TestRefused: what cannot be caught leaves every handler as it was, the
// others of the same call included.
func TestRefused(t *testing.T) {
	before := handler(t, syscall.SIGUSR1)
	c := make(chan os.Signal, 1)
	if err := Notify(c, syscall.SIGUSR1, syscall.SIGKILL); err == nil {
		t.Error("SIGKILL was caught")
	}
	if err := Notify(c, syscall.SIGUSR1, syscall.Signal(65)); err == nil {
		t.Error("signal 65 was caught")
	}
	if err := Notify(nil, syscall.SIGUSR1); err == nil {
		t.Error("a nil channel was taken")
	}
	// An ignored signal has no handler of the runtime's to take the place
	// of (nohup's SIGHUP): refused, and left ignored.
	setHandler(t, syscall.SIGUSR2, sigaction.IGN)
	if err := Notify(c, syscall.SIGUSR1, syscall.SIGUSR2); err == nil {
		t.Error("an ignored SIGUSR2 was caught")
	}
	if h := handler(t, syscall.SIGUSR2); h != sigaction.IGN {
		t.Errorf("SIGUSR2's handler is %#x after the refusal, want SIG_IGN", h)
	}
	if h := handler(t, syscall.SIGUSR1); h != before {
		t.Errorf("SIGUSR1's handler is %#x after the refusals, want %#x", h, before)
	}
}

// TestPipeNeverBlocks: the relay writes to a non-blocking pipe, so that a
// full one drops a signal rather than hang the thread it came to; and
// the pipe is not inherited by a program started.
func TestPipeNeverBlocks(t *testing.T) {
	c := make(chan os.Signal, 1)
	if err := Notify(c, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	defer Stop(c)
	flags, err := unix.FcntlInt(uintptr(pipeFD), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Error("the relay's pipe blocks")
	}
	fdFlags, err := unix.FcntlInt(uintptr(pipeFD), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fdFlags&unix.FD_CLOEXEC == 0 {
		t.Error("the relay's pipe would be inherited")
	}
}

// TestDefaultCaught: a signal the runtime leaves at SIG_DFL (SIGCONT,
// SIGTSTP until os/signal asks for them) is caught with the flags,
// restorer and mask of the runtime's handler, and Stop puts SIG_DFL back.
// Before, Notify refused them and the caller fell back on os/signal,
// whose first use starts its thread (~0.5 ms of every exec and run).
func TestDefaultCaught(t *testing.T) {
	for _, s := range []syscall.Signal{syscall.SIGCONT, syscall.SIGTSTP} {
		setHandler(t, s, sigaction.DFL) // whatever the test's caller left
	}
	like, err := sigaction.Get(template)
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan os.Signal, 4)
	if err := Notify(c, syscall.SIGCONT, syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	defer Stop(c) // on a failure below: twice is harmless
	for _, s := range []syscall.Signal{syscall.SIGCONT, syscall.SIGTSTP} {
		a, err := sigaction.Get(s)
		if err != nil {
			t.Fatal(err)
		}
		want := like
		want.Handler = uint64(relayAddr())
		if a != want {
			t.Errorf("%v's action is %+v, want the runtime's flags, restorer and mask with the relay: %+v", s, a, want)
		}
	}
	// SIGCONT only: were SIGTSTP not caught, it would stop the test.
	unix.Kill(os.Getpid(), unix.SIGCONT)
	receive(t, c, syscall.SIGCONT)
	Stop(c)
	for _, s := range []syscall.Signal{syscall.SIGCONT, syscall.SIGTSTP} {
		if h := handler(t, s); h != sigaction.DFL {
			t.Errorf("after Stop %v's handler is %#x, want SIG_DFL", s, h)
		}
	}
	unix.Kill(os.Getpid(), unix.SIGCONT)
	time.Sleep(50 * time.Millisecond)
	nothingOn(t, c, "the stopped channel")
}

// TestDefaultIgnoredRefused: a job-control signal the caller ignores is
// refused as any ignored signal, and stays ignored.
func TestDefaultIgnoredRefused(t *testing.T) {
	setHandler(t, syscall.SIGCONT, sigaction.IGN)
	if err := Notify(make(chan os.Signal, 1), syscall.SIGCONT); err == nil {
		t.Error("an ignored SIGCONT was caught")
	}
	if h := handler(t, syscall.SIGCONT); h != sigaction.IGN {
		t.Errorf("SIGCONT's handler is %#x after the refusal, want SIG_IGN", h)
	}
}

// forkKill forks this process (no exec) and has the child send sig to
// itself and exit: the child runs only raw system calls, on the stack it
// was forked on, hence nosplit.
//
//go:nosplit
func forkKill(sig syscall.Signal) (int, syscall.Errno) {
	pid, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if pid == 0 {
		self, _, _ := syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		syscall.RawSyscall(syscall.SYS_KILL, self, uintptr(sig), 0)
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(pid), 0
}

// TestChildDoesNotRelay: a signal to a child forked from here before its
// exec (which has the relay and the pipe until then, and os.StartProcess
// does not reset a handler installed over SIG_DFL) does not come out of
// this process's channel: the relay writes only in the process that
// caught the signal. Before, the child's SIGUSR1 arrived here.
func TestChildDoesNotRelay(t *testing.T) {
	c := make(chan os.Signal, 4)
	if err := Notify(c, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	defer Stop(c)
	runtime.LockOSThread()
	pid, errno := forkKill(syscall.SIGUSR1)
	runtime.UnlockOSThread()
	if errno != 0 {
		t.Fatalf("fork: %v", errno)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("the child ended with %v, want exit 0 (its SIGUSR1 caught by the relay)", ws)
	}
	time.Sleep(200 * time.Millisecond) // the reader passes on what came
	nothingOn(t, c, "the parent's channel (the child's signal)")
	unix.Kill(os.Getpid(), unix.SIGUSR1)
	receive(t, c, syscall.SIGUSR1)
}

// setHandler sets s's handler to h (SIG_DFL or SIG_IGN) for the test, and
// puts its action back after.
func setHandler(t *testing.T, s syscall.Signal, h uint64) {
	t.Helper()
	saved, err := sigaction.Get(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigaction.Set(s, sigaction.Action{Handler: h}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sigaction.Set(s, saved) })
}

// TestOnlyJobControlAtDefault: at SIG_DFL only the job-control signals are
// caught (another is no program's to take), and never the runtime's
// preemption signal, whose action the relay of those borrows.
func TestOnlyJobControlAtDefault(t *testing.T) {
	setHandler(t, syscall.SIGUSR1, sigaction.DFL)
	c := make(chan os.Signal, 1)
	if err := Notify(c, syscall.SIGUSR1); err == nil {
		Stop(c)
		t.Error("SIGUSR1 at SIG_DFL was caught")
	}
	if h := handler(t, syscall.SIGUSR1); h != sigaction.DFL {
		t.Errorf("SIGUSR1's handler is %#x after the refusal, want SIG_DFL", h)
	}
	before := handler(t, template)
	if err := Notify(c, template); err == nil {
		Stop(c)
		t.Errorf("%v was caught", template)
	}
	if h := handler(t, template); h != before {
		t.Errorf("%v's handler is %#x after the refusal, want the runtime's %#x", template, h, before)
	}
}

// pid1Env tells the test binary it runs as PID 1 of a new PID namespace
// for TestDefaultRefusedAsPID1.
const pid1Env = "SIGCATCH_TEST_AS_PID1"

// TestDefaultRefusedAsPID1: as PID 1 (a container's first process), where
// a child forked in a new PID namespace has the same pid and the relay
// could not tell the child's signal from its own, a signal at SIG_DFL is
// refused (callersig then uses os/signal, whose handler the runtime resets
// in a child); one the runtime handles is still caught (the runtime resets
// the relay in a child). Before, SIGCONT was caught, and a child's came out
// of the parent's channel.
func TestDefaultRefusedAsPID1(t *testing.T) {
	if os.Getenv(pid1Env) == "1" {
		if os.Getpid() != 1 {
			t.Fatalf("pid %d, want 1", os.Getpid())
		}
		setHandler(t, syscall.SIGCONT, sigaction.DFL)
		c := make(chan os.Signal, 1)
		if err := Notify(c, syscall.SIGCONT); err == nil {
			t.Error("SIGCONT at SIG_DFL was caught by a PID 1")
		}
		if h := handler(t, syscall.SIGCONT); h != sigaction.DFL {
			t.Errorf("SIGCONT's handler is %#x after the refusal, want SIG_DFL", h)
		}
		if err := Notify(c, syscall.SIGUSR1); err != nil {
			t.Errorf("SIGUSR1 (the runtime's handler) was refused to a PID 1: %v", err)
		}
		Stop(c)
		return
	}
	probe := exec.Command("unshare", "-Urpf", "true")
	out, err := probe.CombinedOutput()
	testenv.RequireOrSkip(t, err == nil, fmt.Sprintf("unshare -Urpf (util-linux, unprivileged user namespaces): %v %s", err, out))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-Urpf", self, "-test.run=^TestDefaultRefusedAsPID1$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), pid1Env+"=1")
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDefaultRefusedAsPID1") {
		t.Fatalf("the test as PID 1: %v\n%s", err, out)
	}
}
