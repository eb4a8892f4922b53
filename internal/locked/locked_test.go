package locked

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/proc"

	"golang.org/x/sys/unix"
)

// lineWriter is a writer exec copies a pipe into (so that Wait waits for
// the pipe's end, as for the network helpers' logs).
type lineWriter struct {
	ch chan []byte
}

func (b *lineWriter) Write(p []byte) (int, error) {
	b.ch <- bytes.Clone(p)
	return len(p), nil
}

// firstLine is the first line written to b, bounded in time.
func (b *lineWriter) firstLine(t *testing.T) string {
	t.Helper()
	var got []byte
	deadline := time.After(10 * time.Second)
	for !bytes.Contains(got, []byte("\n")) {
		select {
		case p := <-b.ch:
			got = append(got, p...)
		case <-deadline:
			t.Fatalf("no line from the helper within 10s (got %q)", got)
		}
	}
	line, _, _ := strings.Cut(string(got), "\n")
	return line
}

// stopBounded runs p.Stop and fails the test if it does not return.
func stopBounded(t *testing.T, p *Proc, within time.Duration) {
	t.Helper()
	stopped := make(chan struct{})
	go func() { p.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(within):
		t.Fatalf("Stop did not return within %v", within)
	}
}

// alive says whether pid runs (a zombie has ended).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f, err := proc.StatFields(b)
	return err == nil && f[0][0] != 'Z'
}

// startWrapper starts script as a helper whose output goes through a
// pipe (as the network helpers' logs do), and returns it and the pid of
// the child it says first.
func startWrapper(t *testing.T, script string) (*Proc, int) {
	t.Helper()
	out := &lineWriter{ch: make(chan []byte, 64)}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdout = out
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(out.firstLine(t))
	if err != nil {
		t.Fatal(err)
	}
	return p, child
}

// A helper that is a wrapper (a shell that runs the real program as its
// child instead of exec'ing it): Stop ends the child too, and does not
// wait forever on the output pipe the child holds.
func TestStopEndsWhatTheHelperStarted(t *testing.T) {
	p, child := startWrapper(t, `sleep 60 & echo $!; wait`)
	stopBounded(t, p, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for alive(child) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(child) {
		unix.Kill(child, unix.SIGKILL)
		t.Errorf("the wrapper's child (pid %d) outlived Stop", child)
	}
}

// A child that left the helper's process group and holds its output
// pipe: Stop still returns (bounded by the pipe delay).
func TestStopBoundedByAnEscapedChild(t *testing.T) {
	// The child says its pid once it has left the group (setsid).
	p, child := startWrapper(t, `setsid /bin/sh -c 'echo $$; exec sleep 60' & wait`)
	defer unix.Kill(child, unix.SIGKILL)
	began := time.Now()
	stopBounded(t, p, pipeDelay+10*time.Second)
	if !alive(child) {
		t.Fatalf("the child that left the group (pid %d) was killed too: nothing held the pipe", child)
	}
	if d := time.Since(began); d < pipeDelay/2 {
		t.Errorf("Stop returned after %v, before the pipe delay (%v): was the pipe held?", d, pipeDelay)
	}
	if !strings.Contains(p.Err().Error(), "signal: killed") {
		t.Errorf("Err() = %v, want the wrapper killed", p.Err())
	}
}

// The helper leads a process group of its own: the caller's terminal
// signals (Ctrl-C: SIGINT to the foreground group) do not reach it.
func TestHelperHasItsOwnProcessGroup(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "60")
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer stopBounded(t, p, 10*time.Second)
	pgid, err := syscall.Getpgid(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != cmd.Process.Pid || pgid == syscall.Getpgrp() {
		t.Errorf("helper pid %d is in process group %d (ours %d), want a group of its own", cmd.Process.Pid, pgid, syscall.Getpgrp())
	}
}

// Stop after the helper ended by itself returns at once with its status.
func TestStopAfterExit(t *testing.T) {
	p, err := Start(exec.Command("/bin/sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the helper did not end")
	}
	stopBounded(t, p, time.Second)
	if ee, ok := p.Err().(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("Err() = %v, want exit status 3", p.Err())
	}
}
