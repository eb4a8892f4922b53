package main

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/state"
)

type pauseCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *pauseCmd) Run(g *globals) error {
	ct, unlock, err := loadLocked(g, c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if ct.Cgroup == nil || ct.Cgroup.Path == "" {
		return fmt.Errorf("pause: the container has no cgroup (%s)", skippedWhy(ct))
	}
	st, err := ct.Status()
	if err != nil {
		return err
	}
	if st != specs.StateRunning && st != specs.StateCreated {
		return fmt.Errorf("pause: container %q is %s", c.ID, st)
	}
	return ct.Cgroup.Freeze()
}

// loadLocked loads a container's record and takes its lock.
func loadLocked(g *globals, id string) (*state.Container, func(), error) {
	root, err := g.stateRoot()
	if err != nil {
		return nil, nil, err
	}
	ct, err := state.Load(root, id)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := ct.Lock()
	if err != nil {
		return nil, nil, err
	}
	return ct, unlock, nil
}
