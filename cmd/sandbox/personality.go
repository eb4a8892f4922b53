package main

import (
	"os"
	"path/filepath"
	"runtime"

	"sandbox/hostcheck"
	"sandbox/image"
	"sandbox/initproc"
	"sandbox/internal/wire"
	"sandbox/parent"
)

// personalities are the roles this binary is re-executed in, by argv[0]:
// each runs before any flag parsing and returns the process's exit status.
// The background supervisor of `run --detach` is no personality: it is
// `sandbox run` itself, told its role by parent.DetachedEnv.
var personalities = map[string]func() int{
	wire.InitArg0:       initproc.Init,                                           // PID 1 of a sandbox
	parent.CleanArg0:    parent.CleanChild,                                       // removes --ephemeral=disk directories in the user's id range
	image.HelperArg0:    func() int { return image.HelperChild(nil) },            // removes image layers in a user namespace (sandbox-pull's unpacks them)
	hostcheck.ProbeArg0: func() int { return hostcheck.ProbeChild(os.Args[1:]) }, // sandbox check's namespace probe
}

// personality returns the entry point argv[0] names, if any.
func personality() (func() int, bool) {
	run, ok := personalities[filepath.Base(os.Args[0])]
	return run, ok
}

func init() {
	// sandbox-init runs on the thread group leader from the start, so a
	// seccomp profile that kills the thread making a system call
	// (SCMP_ACT_KILL) leaves a zombie leader the parent can see, never a
	// lost thread it cannot (see parent/initwatch.go).
	if filepath.Base(os.Args[0]) == wire.InitArg0 {
		runtime.LockOSThread()
	}
}
