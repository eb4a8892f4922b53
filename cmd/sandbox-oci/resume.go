package main

import (
	"fmt"

	"sandbox/oci/state"
)

type resumeCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *resumeCmd) Run(g *globals) error {
	ct, unlock, err := loadLocked(g, c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if ct.Cgroup == nil || ct.Cgroup.Path == "" {
		return fmt.Errorf("resume: the container has no cgroup (%s)", skippedWhy(ct))
	}
	st, err := ct.Status()
	if err != nil {
		return err
	}
	if st != state.StatePaused {
		return fmt.Errorf("resume: container %q is %s, not paused", c.ID, st)
	}
	return ct.Cgroup.Thaw()
}
