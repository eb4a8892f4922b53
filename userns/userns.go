// Package userns starts a process in new namespaces, its user namespace
// unmapped until the caller writes the id maps, and keeps full capabilities
// in that namespace across the exec (ambient capabilities), so the child
// needs no second re-exec to become root inside.
package userns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// Namespaces are the clone flags of a sandbox; Net is added unless the
// host's network is shared.
const (
	Namespaces = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
		syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC
	Net = syscall.CLONE_NEWNET
)

// Options describe the child.
type Options struct {
	Path       string
	Args       []string
	Env        []string
	Cloneflags uintptr
	LastCap    int // highest capability of this kernel: all of 0..LastCap are kept
	Stdin      *os.File
	Stdout     *os.File
	Stderr     *os.File
	ExtraFiles []*os.File
}

// Child is a started process.
type Child struct {
	Pid  int
	done chan result
}

type result struct {
	state *os.ProcessState
	err   error
}

// Start starts the child from a goroutine locked to its OS thread for the
// child's whole life: Pdeathsig fires when the creating *thread* exits, and
// the Go runtime may retire an unlocked thread at any time.
func Start(o Options) (*Child, error) {
	caps := make([]uintptr, 0, o.LastCap+1)
	for c := 0; c <= o.LastCap; c++ {
		caps = append(caps, uintptr(c))
	}
	cmd := &exec.Cmd{
		Path:       o.Path,
		Args:       o.Args,
		Env:        o.Env,
		Stdin:      o.Stdin,
		Stdout:     o.Stdout,
		Stderr:     o.Stderr,
		ExtraFiles: o.ExtraFiles,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: o.Cloneflags,
			// A new session: the sandbox has no controlling terminal, so
			// TIOCSTI into the caller's terminal is refused.
			Setsid:      true,
			Pdeathsig:   syscall.SIGKILL,
			AmbientCaps: caps,
		},
	}
	started := make(chan error, 1)
	c := &Child{done: make(chan result, 1)}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, after the
		// child has been waited for.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.Pid = cmd.Process.Pid
		started <- nil
		err := cmd.Wait()
		if _, ok := err.(*exec.ExitError); ok {
			err = nil
		}
		c.done <- result{cmd.ProcessState, err}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s in new namespaces: %w", o.Path, err)
	}
	return c, nil
}

// Wait waits for the child and returns its wait status.
func (c *Child) Wait() (syscall.WaitStatus, error) {
	r := <-c.done
	if r.err != nil {
		return 0, r.err
	}
	return r.state.Sys().(syscall.WaitStatus), nil
}
