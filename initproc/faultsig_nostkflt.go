//go:build linux && (mips || mipsle || mips64 || mips64le)

package initproc

import (
	"os"
	"syscall"
)

// faultSignals are the signals of a fault that init ignores when they are
// sent to it (see Init); MIPS has no SIGSTKFLT.
var faultSignals = []os.Signal{syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSYS}
