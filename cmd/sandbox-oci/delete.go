package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/oci/state"
)

type deleteCmd struct {
	Force bool   `short:"f" help:"Kill a running container first."`
	ID    string `arg:"" help:"Container id."`
}

func (c *deleteCmd) Run(g *globals) error {
	ct, err := g.container(c.ID)
	if err != nil {
		if c.Force && strings.Contains(err.Error(), "does not exist") {
			// As runc: engines delete --force what may be gone. What a
			// create killed before its record left goes too.
			if root, rerr := g.stateRoot(); rerr == nil && state.CheckID(c.ID) == nil {
				_ = os.RemoveAll(filepath.Join(root, c.ID))
			}
			return nil
		}
		return err
	}
	unlock, err := ct.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	return deleteContainer(ct, c.Force)
}

// deleteContainer removes a container: a created one is killed (it never
// ran), a running or paused one only with force.
func deleteContainer(c *state.Container, force bool) error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	switch st {
	case specs.StateStopped:
	case specs.StateCreated, specs.StateCreating:
		if err := stopContainer(c); err != nil {
			return err
		}
	default:
		if !force {
			return fmt.Errorf("container %q is %s: stop it first, or delete --force", c.ID, st)
		}
		if err := stopContainer(c); err != nil {
			return err
		}
	}
	if spec, err := loadSpec(c); err != nil {
		logWarn("%v: no poststop hooks run", err)
	} else if spec.Hooks != nil && len(spec.Hooks.Poststop) > 0 {
		hs := hookState(c.ID, c.Bundle, 0, specs.StateStopped, c.Annotations)
		if err := runHooks("poststop", spec.Hooks.Poststop, hs); err != nil {
			logWarn("%v", err)
		}
	}
	if c.Cgroup != nil && c.Cgroup.Path != "" {
		if err := c.Cgroup.Destroy(); err != nil {
			return fmt.Errorf("container %q: %w", c.ID, err)
		}
	}
	return c.Remove()
}

// stopWait bounds the wait for a killed container's init to end.
const stopWait = 10 * time.Second

// stopContainer kills every process of the container and waits
// (bounded) for its init to end.
func stopContainer(c *state.Container) error {
	if c.Cgroup != nil && c.Cgroup.Path != "" {
		// A frozen cgroup's processes get SIGKILL too (cgroup v2).
		if err := c.Cgroup.Signal(int(unix.SIGKILL)); err != nil {
			logDebugf("container %s: kill through its cgroup: %v", c.ID, err)
		}
	}
	if c.Pid <= 0 {
		return nil
	}
	pfd, err := unix.PidfdOpen(c.Pid, 0)
	if err != nil {
		return nil // gone
	}
	defer unix.Close(pfd)
	if !c.Alive() {
		return nil
	}
	if err := unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("container %q: kill: %w", c.ID, err)
	}
	// The pidfd becomes readable when the process ends.
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(stopWait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("container %q: its init did not end within %v of SIGKILL", c.ID, stopWait)
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("container %q: waiting for its init: %w", c.ID, err)
		}
		if n > 0 {
			return nil
		}
	}
}
