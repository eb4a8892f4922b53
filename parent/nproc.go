package parent

import (
	"fmt"
	"os"
	"strconv"
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

// boundAllProcs lowers this process's soft RLIMIT_NPROC to half the
// host's kernel.pid_max when it is higher, before any namespace is made:
// a user namespace takes its creator's soft limit as the bound of all the
// tasks counted to its owner (in the parent namespace), whatever their
// uids inside. Root inside switches among the 65536 mapped users, each
// held to RLIMIT_NPROC on its own, and so reached 8197 tasks with two of
// them: with the caller's own limit (often ~96000) above pid_max, the
// sandbox could take every pid on the host. With it, the caller's
// sandboxes and processes keep to half of them. n is the per-user limit
// (0: --pids max, which lifts both).
func boundAllProcs(n uint64) {
	if n == 0 {
		return
	}
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return
	}
	pidMax, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return
	}
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &own); err != nil {
		return
	}
	if l := allProcsLimit(own.Cur, pidMax, n); l < own.Cur {
		own.Cur = l
		unix.Setrlimit(unix.RLIMIT_NPROC, &own)
	}
}

// allProcsLimit is the soft RLIMIT_NPROC for boundAllProcs: half of
// pidMax, never under the per-user limit n, never above cur.
func allProcsLimit(cur, pidMax, n uint64) uint64 {
	return min(cur, max(pidMax/2, n))
}
