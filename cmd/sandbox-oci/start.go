package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/oci/state"
)

type startCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *startCmd) Run(g *globals) error {
	ct, err := g.container(c.ID)
	if err != nil {
		return err
	}
	unlock, err := ct.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	spec, err := loadSpec(ct)
	if err != nil {
		return err
	}
	return startContainer(ct, spec)
}

// loadSpec reads the spec create kept in the container's directory.
func loadSpec(c *state.Container) (*specs.Spec, error) {
	f, err := os.Open(filepath.Join(c.Dir, state.ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("container %q: its config: %w", c.ID, err)
	}
	defer f.Close()
	var s specs.Spec
	if err := json.NewDecoder(io.LimitReader(f, 64<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("container %q: its config: %w", c.ID, err)
	}
	return &s, nil
}

// startWait bounds start's wait for the init (beyond its hooks' timeouts).
const startWait = 10 * time.Second

// startContainer releases a created container's init: it opens the exec
// fifo for reading, which lets the init run the startContainer hooks and
// execve; the init writes "0" just before, or "E<why>" on failure.
func startContainer(c *state.Container, spec *specs.Spec) error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	if st != specs.StateCreated {
		return fmt.Errorf("container %q is %s, not created: cannot start it", c.ID, st)
	}
	bound := startWait
	if spec.Hooks != nil {
		for _, h := range spec.Hooks.StartContainer {
			if h.Timeout != nil && *h.Timeout > 0 {
				bound += time.Duration(*h.Timeout) * time.Second
			} else {
				bound += hookDefaultTimeout
			}
		}
	}
	fifo := filepath.Join(c.Dir, state.FifoFile)
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Blocking open: returns once the init has opened it for writing.
		fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		f := os.NewFile(uintptr(fd), fifo)
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, 64<<10))
		done <- result{data, err}
	}()
	deadline := time.After(bound)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var r result
wait:
	for {
		select {
		case r = <-done:
			break wait
		case <-tick.C:
			if !c.Alive() {
				// It may have written its error before it went.
				select {
				case r = <-done:
					break wait
				case <-time.After(100 * time.Millisecond):
				}
				return fmt.Errorf("container %q: its init ended before start", c.ID)
			}
		case <-deadline:
			killInit(c)
			return fmt.Errorf("container %q: its init did not start within %v (killed)", c.ID, bound)
		}
	}
	if r.err != nil {
		return fmt.Errorf("container %q: exec fifo: %w", c.ID, r.err)
	}
	msg := string(r.data)
	if msg != "0" {
		killInit(c)
		if why, ok := strings.CutPrefix(strings.TrimPrefix(msg, "0"), "E"); ok {
			return errors.New(why)
		}
		return fmt.Errorf("container %q: its init ended before start", c.ID)
	}
	if err := os.Remove(fifo); err != nil {
		return fmt.Errorf("container %q: %w", c.ID, err)
	}
	if spec.Hooks != nil && len(spec.Hooks.Poststart) > 0 {
		st := hookState(c.ID, c.Bundle, c.Pid, specs.StateRunning, c.Annotations)
		if err := runHooks("poststart", spec.Hooks.Poststart, st); err != nil {
			logWarn("%v", err)
		}
	}
	return nil
}

// killInit makes sure a container whose start failed does not run.
func killInit(c *state.Container) {
	_ = signalInit(c, unix.SIGKILL)
}

// signalInit signals the container's init through a pidfd, after making
// sure the pid is still its (start time).
func signalInit(c *state.Container, sig unix.Signal) error {
	pfd, err := unix.PidfdOpen(c.Pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errNotRunning
		}
		return fmt.Errorf("container %q: pidfd: %w", c.ID, err)
	}
	defer unix.Close(pfd)
	if !c.Alive() {
		return errNotRunning
	}
	if err := unix.PidfdSendSignal(pfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errNotRunning
		}
		return fmt.Errorf("container %q: signal %v: %w", c.ID, sig, err)
	}
	return nil
}

var errNotRunning = errors.New("container not running")
