package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/oci/state"
)

type killCmd struct {
	All    bool   `short:"a" help:"Signal every process of the container (its cgroup)."`
	ID     string `arg:"" help:"Container id."`
	Signal string `arg:"" optional:"" default:"SIGTERM" help:"Signal: name (with or without SIG) or number."`
}

func (c *killCmd) Run(g *globals) error {
	sig, err := parseSignal(c.Signal)
	if err != nil {
		return err
	}
	ct, st, err := g.containerStatus(c.ID)
	if err != nil {
		return err
	}
	if st == specs.StateStopped || st == specs.StateCreating {
		return errNotRunning
	}
	if c.All && ct.Cgroup != nil && ct.Cgroup.Path != "" {
		return ct.Cgroup.Signal(int(sig))
	}
	if c.All {
		logInfof("kill --all: container %s has no cgroup of its own (%s): signalling its init only", c.ID, skippedWhy(ct))
	}
	return signalInit(ct, sig)
}

func skippedWhy(c *state.Container) string {
	if c.Cgroup != nil && c.Cgroup.Skipped != "" {
		return c.Cgroup.Skipped
	}
	return "none recorded"
}

// parseSignal reads KILL, SIGKILL, sigkill or 9; as runc, 0 (is the
// container's init alive?) and "" (SIGTERM, runc's default) too.
func parseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 64 {
			return 0, fmt.Errorf("signal %q: out of range", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, errors.New("unknown signal " + strconv.Quote(s))
	}
	return sig, nil
}
