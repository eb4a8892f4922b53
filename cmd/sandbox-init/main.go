// Command sandbox-init is PID 1 of a sandbox (package initproc), built as
// its own small program so that its start costs what a minimal Go program
// costs, not what the whole CLI costs. scripts/build.sh embeds it in
// sandbox, which runs it from a sealed memfd.
//
// Built with cgo (scripts/build.sh on amd64), it also has the holder
// stage (stage.c: init created inside the holder's user namespace before
// the Go runtime starts) and runs as the holder itself (package holder,
// by argv[0]).
package main

import (
	"os"
	"path/filepath"
	"runtime"

	"sandbox/holder"
	"sandbox/initproc"
)

func init() {
	// On the thread group leader from the start, so that a seccomp profile
	// that kills the thread making a system call leaves a zombie leader the
	// parent can see, never a lost thread it cannot (parent/initwatch.go).
	runtime.LockOSThread()
}

func main() {
	switch filepath.Base(os.Args[0]) {
	case holder.Arg0:
		os.Exit(holder.Serve())
	case holder.PinArg0:
		os.Exit(holder.Pin())
	}
	os.Exit(initproc.Init())
}
