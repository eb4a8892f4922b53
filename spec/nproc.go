package spec

// DefaultNProc bounds the processes and threads each user inside a
// sandbox may have at once (RLIMIT_NPROC) when --pids does not say: a
// fork bomb stops there instead of at the host's pid_max. It needs no
// cgroup: the kernel counts the tasks of each uid per user namespace, and
// raising a hard limit takes CAP_SYS_RESOURCE in the host's namespace,
// which nothing inside has. podman's default pids limit is 2048; twice
// that leaves room for parallel builds and thread-heavy runtimes.
const DefaultNProc = 4096

// NprocLimit is the RLIMIT_NPROC for a run: no flag gives the default,
// --pids max keeps the inherited limit (0), --pids N the default or N if
// higher (applied only where pids.max is not: see procLimit).
func NprocLimit(pids string, parsed int64) uint64 {
	switch {
	case pids == "max":
		return 0
	case parsed > DefaultNProc:
		return uint64(parsed)
	}
	return DefaultNProc
}
