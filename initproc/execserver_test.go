package initproc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/proto"
	"sandbox/rootfs"

	"sandbox/internal/wire"

	"golang.org/x/sys/unix"
)

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4", "A="})
	if want := []string{"A=", "B=3", "C=4"}; !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

// The exec socket serves only clients in the user namespace that started
// the sandbox: the same user from inside a sandbox is refused.
func TestServeExecChecksUserNamespace(t *testing.T) {
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s")
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 4); err != nil {
		t.Fatal(err)
	}
	var userNS unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &userNS); err != nil {
		t.Fatal(err)
	}
	events := make(chan execEvent, 1)
	go serveExec(os.NewFile(uintptr(lfd), "ln"), userNS, os.Getuid(), events)
	dial := func(proof string) *proto.Conn {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		c := proto.FromFD(fd)
		f, err := os.Open(proof)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := c.Send(proto.KindExec, wire.ExecRequest{Args: []string{"true"}}, int(f.Fd()), 0, 1, 2); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Another namespace file stands for a sandbox's user namespace.
	c := dial("/proc/self/ns/net")
	env, _, err := c.Recv()
	var ce wire.ChildError
	if err != nil || env.Kind != proto.KindError || env.Decode(&ce) != nil || !strings.Contains(ce.Msg, "refused") {
		t.Errorf("client with a foreign namespace: got %v %s %v, want a refusal", env.Kind, ce.Msg, err)
	}
	select {
	case ev := <-events:
		t.Fatalf("a refused client reached the main loop: %+v", ev.req)
	default:
	}
	c.Close()
	c = dial("/proc/self/ns/user")
	defer c.Close()
	select {
	case ev := <-events:
		if ev.req == nil || len(ev.fds) != 3 {
			t.Errorf("accepted request: %+v with %d fds, want the command and 3 stdio fds", ev.req, len(ev.fds))
		}
		proto.CloseFDs(ev.fds)
	case <-time.After(10 * time.Second):
		t.Fatal("the client in our own user namespace was not served")
	}
}

// An exec'd command that ends together with the payload is reported with
// its own status, not as killed with the sandbox: both are reaped at one
// wake of the child watch, the payload (the older child) first.
func TestSuperviseTellsExecEndingWithPayload(t *testing.T) {
	dir := t.TempDir()
	devNull := func() *os.File {
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	null := devNull()
	stdio := []*os.File{null, null, null}
	env := []string{"PATH=/usr/bin:/bin"}
	// The payload ends once the exec'd command has made its file.
	payload, err := forkExec("/bin/sh", []string{"sh", "-c", "i=0; while [ ! -e go ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; exit 3"}, dir, env, stdio, &syscall.SysProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	parent, child, err := proto.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	client, server, err := proto.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	children := &childWatch{ended: make(chan struct{}, 1), reaped: make(chan struct{}, 1)}
	execs := make(chan execEvent, 1)
	status := make(chan int, 1)
	cfg := &wire.ChildConfig{Env: env, Plan: &rootfs.Plan{Chdir: dir}}
	go func() { status <- supervise(child, payload, children, nil, execs, cfg) }()
	fds := make([]int, 3)
	for i := range fds {
		if fds[i], err = unix.Dup(int(devNull().Fd())); err != nil {
			t.Fatal(err)
		}
	}
	execs <- execEvent{conn: server, req: &wire.ExecRequest{Args: []string{"sh", "-c", "touch go; exit 4"}}, fds: fds}
	env0, _, err := client.Recv()
	var started wire.ChildStarted
	if err != nil || env0.Kind != proto.KindStarted || env0.Decode(&started) != nil {
		t.Fatalf("exec: got %v %v, want it started", env0.Kind, err)
	}
	// JSON on the exec socket, whose client may be another build (only
	// the parent's connection carries binary forms).
	if env0.Binary {
		t.Errorf("exec's client got Started in the binary form")
	}
	// Both end before init hears of either.
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range []int{started.PID, payload} {
		for !zombie(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d did not end within 20s", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	children.ended <- struct{}{}
	select {
	case s := <-status:
		if s != 3 {
			t.Errorf("supervise returned %d, want the payload's 3", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("supervise did not return when the payload ended")
	}
	// What was not sent by now reads as the end of the connection.
	server.Close()
	env1, _, err := client.Recv()
	var ex wire.ChildExit
	if err != nil || env1.Kind != proto.KindExit || env1.Decode(&ex) != nil || ex.Status() != 4 || env1.Binary {
		t.Errorf("exec's client: got %v %+v (binary %v) %v, want its exit with status 4 in JSON", env1.Kind, ex, env1.Binary, err)
	}
}

// zombie reports whether pid has ended and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// TestReadSignals: init passes on, of what the parent sends after Config,
// only the signals the parent catches and forwards; it stops reading when
// the parent's end closes.
func TestReadSignals(t *testing.T) {
	parent, child, err := proto.Pair()
	if err != nil {
		t.Fatal(err)
	}
	seq := wire.NewSequence(&wire.FromParent)
	parent.Send(proto.KindConfig, wire.ChildConfig{})
	if _, _, err := seq.Expect(child, proto.KindConfig); err != nil {
		t.Fatal(err)
	}
	out := make(chan syscall.Signal, 16)
	done := make(chan struct{})
	go func() { readSignals(child, seq, out); close(done) }()
	for _, sig := range []int{int(syscall.SIGKILL), int(syscall.SIGSTOP), 0, -1, 65, int(syscall.SIGTERM), int(syscall.SIGSEGV), int(syscall.SIGTSTP)} {
		if err := parent.Send(proto.KindSignal, wire.Signal{Signal: sig}); err != nil {
			t.Fatal(err)
		}
	}
	parent.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("readSignals did not return once the parent's end closed")
	}
	close(out)
	var got []syscall.Signal
	for s := range out {
		got = append(got, s)
	}
	if want := []syscall.Signal{syscall.SIGTERM, syscall.SIGTSTP}; !slices.Equal(got, want) {
		t.Errorf("passed on %v, want only %v", got, want)
	}
}

// TestChildWatch: the watch tells of a child's end without reaping it
// (the main loop's reapAll does, so a pid it holds is not freed before
// it has seen the end), tells again for the next one only once told that
// the loop has reaped, and ends when no child is left.
func TestChildWatch(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	stdio := []*os.File{null, null, null}
	start := func(script string) int {
		pid, err := forkExec("/bin/sh", []string{"sh", "-c", script}, "/", nil, stdio, &syscall.SysProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	w := watchChildren()
	first := start("exit 5")
	w.begin()
	select {
	case <-w.ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the watch did not tell of a child's end within 20 s")
	}
	if !zombie(first) {
		t.Fatalf("pid %d is not left for the main loop to reap", first)
	}
	second := start("exit 6")
	deadline := time.Now().Add(20 * time.Second)
	for !zombie(second) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-w.ended:
		t.Fatal("the watch told again before the loop had reaped")
	case <-time.After(100 * time.Millisecond):
	}
	reaped, err := reapAll()
	codes := map[int]int{}
	for _, ex := range reaped {
		codes[ex.pid] = ex.Exit.Code
	}
	if err != nil || len(reaped) != 2 || codes[first] != 5 || codes[second] != 6 {
		t.Fatalf("reapAll: %+v, %v; want pids %d (5) and %d (6)", reaped, err, first, second)
	}
	// Started before the loop says it has reaped: with no child at all,
	// the watch ends (in init, the payload is a child until the end).
	third := start("exit 7")
	w.reaped <- struct{}{}
	select {
	case <-w.ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the watch did not tell of the next child's end")
	}
	if reaped, err := reapAll(); err != nil || len(reaped) != 1 || reaped[0].pid != third {
		t.Fatalf("reapAll: %+v, %v; want pid %d", reaped, err, third)
	}
	w.reaped <- struct{}{}
	// No child left: the watch ends, and tells of nothing more.
	select {
	case <-w.ended:
		t.Fatal("the watch told of an end with no child")
	case <-time.After(200 * time.Millisecond):
	}
}
