package sandbox

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultNProc bounds the processes and threads each user inside a
// sandbox may have at once (RLIMIT_NPROC) when --pids does not say: a
// fork bomb stops there instead of at the host's pid_max. It needs no
// cgroup: the kernel counts the tasks of each uid per user namespace, and
// raising a hard limit takes CAP_SYS_RESOURCE in the host's namespace,
// which nothing inside has. podman's default pids limit is 2048; twice
// that leaves room for parallel builds and thread-heavy runtimes.
const DefaultNProc = 4096

// nprocLimit is the RLIMIT_NPROC for a run: no flag gives the default,
// --pids max keeps the inherited limit (0), --pids N the default or N if
// higher (applied only where pids.max is not: see procLimit).
func nprocLimit(pids string, parsed int64) uint64 {
	switch {
	case pids == "max":
		return 0
	case parsed > DefaultNProc:
		return uint64(parsed)
	}
	return DefaultNProc
}

// procLimit is the RLIMIT_NPROC to set once the cgroup is open: with
// --pids N and pids.max written, none (pids.max counts the same tasks and
// is the one that should refuse, as pids.events shows); with --pids N
// skipped (--limits=best-effort, no cgroup: the run goes on without it, as
// the warning says), the default bound still holds (N if higher).
func procLimit(r Resources, cg *runCgroup) uint64 {
	if r.Limits.Pids > 0 && cg != nil {
		for _, a := range cg.applied {
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
