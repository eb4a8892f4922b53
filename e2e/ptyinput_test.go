//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ptySession is a sandbox run on the slave of a pty the test drives from
// the master, as a user's terminal would: keys typed in, output read back.
type ptySession struct {
	t      *testing.T
	master *os.File
	p      *proc
	out    syncBuffer
	done   chan struct{}
}

func startPty(t *testing.T, args ...string) *ptySession {
	t.Helper()
	master, slave := openPty(t, 24, 80)
	s := &ptySession{t: t, master: master, done: make(chan struct{})}
	// Longer than any waitFor below, so that a wait that times out still
	// finds the processes to describe (processTree).
	s.p = start(t, opts{timeout: 2 * cmdTimeout, prepare: func(c *exec.Cmd) {
		c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}}, args...)
	slave.Close() // only the sandbox holds it now, so reads end with EIO
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			s.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	return s
}

// output is what the terminal showed so far, CRLF as LF.
func (s *ptySession) output() string { return strings.ReplaceAll(s.out.String(), "\r\n", "\n") }

// waitFor waits until the terminal shows sub; it fails the test on timeout
// or when the sandbox ends without showing it.
func (s *ptySession) waitFor(sub string, d time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(s.output(), sub) {
			return
		}
		if s.p.exited() {
			time.Sleep(100 * time.Millisecond) // the last output may still be in flight
			if strings.Contains(s.output(), sub) {
				return
			}
			s.t.Fatalf("the sandbox ended without showing %q: %s\n--- terminal:\n%q", sub, s.p.wait(), s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("the terminal did not show %q within %v:\n%q\n--- processes:\n%s", sub, d, s.output(), processTree(s.p.pid()))
}

// processTree describes pid and its descendants as /proc/PID/stat has
// them (state, process group, session, the terminal's foreground group),
// for a wait that timed out: a stopped or waiting process shows where.
func processTree(pid int) string {
	kids := map[int][]int{}
	for _, p := range allProcs() {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var b strings.Builder
	var walk func(pid, depth int)
	walk = func(pid, depth int) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		comm, rest := string(stat), ""
		if i := bytes.LastIndexByte(stat, ')'); i > 0 {
			comm, rest = string(stat[bytes.IndexByte(stat, '(')+1:i]), string(stat[i+1:])
		}
		f := strings.Fields(rest)
		if len(f) > 5 {
			fmt.Fprintf(&b, "%s%d %s: state %s, pgrp %s, session %s, tty's foreground group %s\n",
				strings.Repeat("  ", depth), pid, comm, f[0], f[2], f[3], f[5])
		}
		for _, k := range kids[pid] {
			walk(k, depth+1)
		}
	}
	walk(pid, 0)
	return b.String()
}

// typeIn writes keys to the terminal.
func (s *ptySession) typeIn(keys string) {
	s.t.Helper()
	if _, err := s.master.Write([]byte(keys)); err != nil {
		s.t.Fatalf("typing %q: %v", keys, err)
	}
}

// wait waits for the sandbox to end and for its output.
func (s *ptySession) wait() result {
	r := s.p.wait()
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		_ = s.master.SetReadDeadline(time.Now())
		<-s.done
	}
	r.stdout = s.output()
	return r
}

// The typed-in text is echoed by the terminal; markers are typed split by
// quotes (st""art) so that only the command's own output contains them whole.

func TestPtyInput(t *testing.T) {
	t.Parallel()
	t.Run("keystrokes", func(t *testing.T) {
		t.Parallel()
		s := startPty(t, sh(nil, `echo re""ady; read line; echo "got=$line"`)...)
		s.waitFor("ready", cmdTimeout)
		s.typeIn("hello world\r")
		s.waitFor("got=hello world", 10*time.Second)
		wantCode(t, s.wait(), 0)
	})
	t.Run("ctrl-c is SIGINT", func(t *testing.T) {
		t.Parallel()
		s := startPty(t, sh(nil, `trap 'echo got-int; exit 7' INT; echo re""ady; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; echo no-int`)...)
		s.waitFor("ready", cmdTimeout)
		s.typeIn("\x03")
		r := s.wait()
		if r.code != 7 || !strings.Contains(r.stdout, "got-int") {
			t.Errorf("^C typed into the terminal should reach the command as SIGINT (trap: got-int, exit 7); got %s", r)
		}
		if strings.Contains(r.stdout, "^C") && !strings.Contains(r.stdout, "got-int") {
			t.Errorf("^C was echoed but made no signal: the sandbox's pty is not in canonical mode with ISIG")
		}
	})
	t.Run("resize during the run", func(t *testing.T) {
		t.Parallel()
		s := startPty(t, sh(nil, `trap 'echo "winch size=$(stty size)"; exit 0' WINCH; echo "re""ady size=$(stty size)"; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; echo no-winch; exit 3`)...)
		s.waitFor("ready size=24 80", cmdTimeout)
		if err := unix.IoctlSetWinsize(int(s.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 51, Col: 133}); err != nil {
			t.Fatalf("TIOCSWINSZ: %v", err)
		}
		r := s.wait()
		if r.code != 0 || !strings.Contains(r.stdout, "winch size=51 133") {
			t.Errorf("resizing the terminal during the run should send SIGWINCH to the command with the new size (winch size=51 133); got %s", r)
		}
	})
	t.Run("job control", func(t *testing.T) {
		t.Parallel()
		s := startPty(t, "run", "-e", "PS1=prompt> ", "-e", "ENV=", "--", "sh", "-i")
		s.waitFor("prompt> ", cmdTimeout)
		// A job that says when it started and when it got past its sleep.
		arg := sleepFor(3)
		s.typeIn(`sh -c 'echo job-st""arted; sleep ` + arg + `; echo job-res""umed'` + "\r")
		s.waitFor("job-started", 10*time.Second)
		// Not before sleep runs: dash starts it with vfork, and a ^Z
		// between the vfork and the exec stops the child while its parent
		// waits for that exec uninterruptibly (state D), so the job never
		// stops as a whole and dash never says "Stopped" (seen under load:
		// 3 in 60 runs).
		waitForSleep(t, arg, s.p)
		s.typeIn("\x1a") // ^Z
		s.waitFor("Stopped", 30*time.Second)
		time.Sleep(4500 * time.Millisecond) // the sleep (under 4 s) would be over if the job were not stopped
		if strings.Contains(s.output(), "job-resumed") {
			t.Fatalf("^Z did not stop the job:\n%q", s.output())
		}
		s.typeIn("fg\r")
		s.waitFor("job-resumed", 10*time.Second)
		s.typeIn("echo sh-al\"\"ive; exit 4\r")
		s.waitFor("sh-alive", 10*time.Second)
		r := s.wait()
		wantCode(t, r, 4)
	})
}

// TestTerminalHangUp: when the caller's terminal goes away (its window
// closed) the sandbox's terminal hangs up too: a command that ignores
// SIGHUP and goes on writing gets EIO and finishes, as under nohup. Before,
// its writes blocked for ever once nobody read them, and the run with them.
func TestTerminalHangUp(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	done := dir + "/done"
	s := startPty(t, "run", "--net=none", "--bind", dir+":"+dir, "--", "sh", "-c",
		`trap "" HUP TERM INT; echo st""arted; i=0; while [ $i -lt 100000 ]; do echo chatty line $i; i=$((i+1)); done; echo ok > `+done)
	s.waitFor("started", 30*time.Second)
	s.master.Close() // the window closes
	deadline := time.Now().Add(60 * time.Second)
	for !s.p.exited() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !s.p.exited() {
		t.Fatalf("the run still waits 60 s after its terminal went away:\n%s", processTree(s.p.pid()))
	}
	if b, err := os.ReadFile(done); err != nil || string(b) != "ok\n" {
		t.Errorf("the command did not finish (%q, %v): %s", b, err, s.p.wait())
	}
}
