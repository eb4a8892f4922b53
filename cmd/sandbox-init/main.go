// Command sandbox-init is PID 1 of a sandbox (package initproc), built as
// its own small program so that its start costs what a minimal Go program
// costs, not what the whole CLI costs. scripts/build.sh embeds it in
// sandbox, which runs it from a sealed memfd.
package main

import (
	"os"
	"runtime"

	"sandbox/initproc"
)

func init() {
	// On the thread group leader from the start, so that a seccomp profile
	// that kills the thread making a system call leaves a zombie leader the
	// parent can see, never a lost thread it cannot (parent/initwatch.go).
	runtime.LockOSThread()
}

func main() {
	os.Exit(initproc.Init())
}
