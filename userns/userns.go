// Package userns starts a process in new namespaces, its user namespace
// unmapped until the caller writes the id maps, and keeps full capabilities
// in that namespace across the exec (ambient capabilities), so the child
// needs no second re-exec to become root inside.
package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
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
	// Cgroup is a cgroup v2 directory the child is born in (clone3 with
	// CLONE_INTO_CGROUP), so that nothing it ever starts runs outside;
	// where the kernel refuses that, the child is moved there at once,
	// before it is sent anything. nil: the caller's cgroup.
	Cgroup *os.File
}

// Child is a started process.
type Child struct {
	Pid int
	// CgroupVia says how the child entered Options.Cgroup: "clone3" or
	// "cgroup.procs" ("" without one).
	CgroupVia string
	done      chan result
}

type result struct {
	state *os.ProcessState
	err   error
}

// Start starts the child from a goroutine locked to its OS thread for the
// child's whole life: Pdeathsig fires when the creating *thread* exits, and
// the Go runtime may retire an unlocked thread at any time.
func Start(o Options) (*Child, error) {
	if o.Cgroup == nil {
		return start(o, false)
	}
	c, err := start(o, true)
	if err == nil {
		c.CgroupVia = "clone3"
		return c, nil
	}
	if !retryOutsideCgroup(err) {
		return nil, err
	}
	// Old kernel, or a cgroup clone3 refuses: start outside, move in (a
	// failure to create the namespaces then recurs, with its own error).
	if c, err = start(o, false); err != nil {
		return nil, err
	}
	if err := joinCgroup(o.Cgroup, c.Pid); err != nil {
		syscall.Kill(c.Pid, syscall.SIGKILL)
		c.Wait()
		return nil, err
	}
	c.CgroupVia = "cgroup.procs"
	return c, nil
}

// retryOutsideCgroup says whether clone3 may have failed for CLONE_INTO_CGROUP:
// no clone3 (ENOSYS), a pre-5.7 kernel (E2BIG), a cgroup that is not a leaf
// or not a domain (EBUSY, EOPNOTSUPP), or no permission over it (EACCES,
// EPERM, also what a refused user namespace gives).
func retryOutsideCgroup(err error) bool {
	for _, e := range []error{syscall.ENOSYS, syscall.E2BIG, syscall.EBUSY, syscall.EOPNOTSUPP, syscall.EACCES, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// joinCgroup moves pid into the cgroup directory dir.
func joinCgroup(dir *os.File, pid int) error {
	fd, err := unix.Openat(int(dir.Fd()), "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		_, err = unix.Write(fd, []byte(strconv.Itoa(pid)))
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("moving the sandbox (pid %d) into its cgroup %s: %w", pid, dir.Name(), err)
	}
	return nil
}

func start(o Options, intoCgroup bool) (*Child, error) {
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
	if intoCgroup {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(o.Cgroup.Fd())
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
