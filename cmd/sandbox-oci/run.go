package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

type runCmd struct {
	createFlags `embed:""`
	Detach      bool   `short:"d" help:"Return once the container has started."`
	ID          string `arg:"" help:"Container id."`
}

// forwarded are the signals run passes on to the container's process.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

func (c *runCmd) Run(g *globals) error {
	if !c.Detach {
		// Orphans of the container (no pid namespace of its own) come to
		// us, not to the host's init.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	// Signals that arrive while the container is being made are kept for it.
	sigs := make(chan os.Signal, 16)
	if !c.Detach {
		signal.Notify(sigs, forwarded...)
	}
	o := c.opts(c.ID)
	o.foreground = !c.Detach
	cr, err := createContainer(g, o)
	if err != nil {
		return err
	}
	unlock, err := cr.c.Lock()
	if err != nil {
		_ = deleteContainer(cr.c, true)
		return err
	}
	err = startContainer(cr.c, cr.spec)
	unlock()
	if err != nil {
		if !c.Detach {
			waitBounded(cr.cmd, stopWait)
		}
		if derr := deleteContainer(cr.c, true); derr != nil {
			logWarn("%v", derr)
		}
		return err
	}
	if c.Detach {
		return nil
	}
	if cr.master != nil {
		finish := joinConsole(cr.master)
		defer finish()
	}
	done := make(chan error, 1)
	go func() { done <- cr.cmd.Wait() }()
	var werr error
loop:
	for {
		select {
		case s := <-sigs:
			if s == unix.SIGWINCH && cr.master != nil {
				continue // the pty's size follows ours (joinConsole)
			}
			_ = signalInit(cr.c, s.(syscall.Signal))
		case werr = <-done:
			break loop
		}
	}
	signal.Stop(sigs)
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = ws.ExitStatus()
		}
	} else if werr != nil {
		return werr
	}
	// Reap what else came to us as subreaper.
	for i := 0; i < 1024; i++ {
		var ws unix.WaitStatus
		if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
			break
		}
	}
	// As runc: a container run in the foreground is removed when its
	// process ends (what is left of it is killed first).
	if unlock, err := cr.c.Lock(); err == nil {
		if err := deleteContainer(cr.c, true); err != nil {
			logWarn("%v", err)
		}
		unlock()
	}
	return exitStatus{code}
}
