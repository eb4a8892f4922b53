//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package initproc

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// faultSignals are the signals of a fault that init ignores when they are
// sent to it (see Init); SIGSTKFLT exists where the architecture has it.
var faultSignals = []os.Signal{syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, unix.SIGSTKFLT, syscall.SIGSYS}
