// Package locked starts helper processes that must die with the caller:
// Pdeathsig fires when the creating *thread* exits, and the Go runtime may
// retire an unlocked thread at any time, so each process is started from a
// goroutine locked to its OS thread that lives until the process is waited
// for. Each helper leads a process group of its own: a terminal's signals
// (Ctrl-C is SIGINT to the foreground group) reach it only through the
// caller, and Stop ends whatever it started too (a wrapper script's child).
package locked

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeDelay bounds how long Wait waits, once the process has ended, for
// output pipes that something it left running still holds open.
const pipeDelay = 2 * time.Second

// Proc is a started process.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, set before done is closed

	mu     sync.Mutex
	exited bool // the process has ended (not yet reaped while mu is held)
}

// Start starts cmd with Pdeathsig SIGKILL, in a new process group (both
// added to cmd.SysProcAttr), and with cmd.WaitDelay bounded if unset.
func Start(cmd *exec.Cmd) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pgid = true, 0
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = pipeDelay
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the process
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		// Seen ended before it is reaped, so that Stop never signals a
		// process group whose id a reaped leader has freed for reuse.
		awaitExit(cmd.Process.Pid)
		p.mu.Lock()
		p.exited = true
		p.mu.Unlock()
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	return p, nil
}

// awaitExit returns once pid has ended, leaving it unreaped.
func awaitExit(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return // ended, or not ours to wait for: Wait says which
		}
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (nil: exit status 0); valid after Done.
func (p *Proc) Err() error { return p.err }

// Stop kills the process and its process group, and waits for it (and,
// bounded, for the output it was given to write to).
func (p *Proc) Stop() {
	p.mu.Lock()
	if !p.exited {
		// The leader is alive or a zombie: the group id is still its own.
		unix.Kill(-p.Cmd.Process.Pid, unix.SIGKILL)
	}
	p.mu.Unlock()
	<-p.done
}
