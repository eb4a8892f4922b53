package spec

import (
	"sandbox/cgroupdelegate"
	"sandbox/journal"
)

// Resources are the cgroup part of a run: the limits asked for and how
// strictly they must hold.
type Resources struct {
	Limits cgroupdelegate.Limits
	// NProc is the RLIMIT_NPROC of every user inside (0: inherited;
	// procLimit has the last word).
	NProc uint64
	// BestEffort (--limits=best-effort) runs without a limit that cannot
	// be applied, with a warning; strict (the default) refuses to run.
	BestEffort bool
}

// prepareResources validates the limit flags (Prepare's part).
func prepareResources(opts Options, s *Spec) error {
	switch opts.LimitsMode {
	case "", "strict":
	case "best-effort":
		s.Resources.BestEffort = true
	default:
		return journal.Usagef("--limits=%s: use strict or best-effort", opts.LimitsMode)
	}
	pids := opts.Limits.Pids
	if pids == "max" { // no pids.max, and the inherited RLIMIT_NPROC
		opts.Limits.Pids = ""
	}
	l, err := cgroupdelegate.ParseLimits(opts.Limits, cgroupdelegate.HostDevices())
	if err != nil {
		return &journal.UsageError{Msg: err.Error()}
	}
	s.Resources.Limits = l
	s.Resources.NProc = NprocLimit(pids, l.Pids)
	return nil
}
