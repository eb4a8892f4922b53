// Command sandbox-init is PID 1 of a sandbox (package initproc), built as
// its own small program so that its start costs what a minimal Go program
// costs, not what the whole CLI costs. scripts/build.sh embeds it in
// sandbox, which runs it from a sealed memfd. It is pure Go (CGO_ENABLED=0):
// the holder stage that creates it inside a holder's namespace is a program
// of its own (cmd/sandbox-stage). It also runs as the holder itself
// (package holder, by argv[0]).
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
		holder.CloseInherited()
		os.Exit(holder.Serve())
	case holder.PinArg0:
		holder.CloseInherited()
		os.Exit(holder.Pin())
	}
	os.Exit(initproc.Init())
}
