package parent

import (
	"fmt"
	"strings"

	"sandbox/spec"

	"golang.org/x/sys/unix"
)

// procLimit is the RLIMIT_NPROC to set once the cgroup is open: with
// --pids N and pids.max written, none (pids.max counts the same tasks and
// is the one that should refuse, as pids.events shows); with --pids N
// skipped (--limits=best-effort, no cgroup: the run goes on without it, as
// the warning says), the default bound still holds (N if higher).
// applied are the limits the cgroup manager wrote, as FILE=VALUE.
func procLimit(r spec.Resources, applied []string) uint64 {
	if r.Limits.Pids > 0 {
		for _, a := range applied {
			if strings.HasPrefix(a, "pids.max=") {
				return 0
			}
		}
	}
	return r.NProc
}

// limitProcs sets init's RLIMIT_NPROC (soft and hard) before it starts
// anything: the payload, `sandbox exec` commands and all they start
// inherit it. Never above the caller's own hard limit.
func limitProcs(pid int, n uint64) error {
	if n == 0 {
		return nil
	}
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &own); err == nil && own.Max < n {
		n = own.Max
	}
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Prlimit(pid, unix.RLIMIT_NPROC, &lim, nil); err != nil {
		return fmt.Errorf("limiting the sandbox to %d processes per user (RLIMIT_NPROC): %w", n, err)
	}
	return nil
}
