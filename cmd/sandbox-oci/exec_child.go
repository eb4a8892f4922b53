package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"sandbox/confine"
	"sandbox/internal/fds"
	"sandbox/oci/process"
)

// An exec's process reaches the Go runtime here, inside the container's
// namespaces (nsenter.c has joined them and forked it; only that child
// returns from the stage). It runs before the command line is parsed.
func init() {
	if os.Getenv(nsenterEnv) == "" {
		return
	}
	os.Exit(execChild())
}

// execChild reads the plan from the sync socket and executes it; on
// failure it says why on the socket and returns the status.
func execChild() int {
	fd, err := strconv.Atoi(os.Getenv(syncEnv))
	if err != nil || fd < 3 {
		fmt.Fprintf(os.Stderr, "sandbox-oci: exec: %s is not a file descriptor\n", syncEnv)
		return 125
	}
	unix.CloseOnExec(fd)
	sync := os.NewFile(uintptr(fd), "sync")
	fail := func(code int, err error) int {
		fmt.Fprintf(sync, "err %d %s\n", code, strings.ReplaceAll(err.Error(), "\n", " "))
		return code
	}
	if !haveNsenter {
		// Unreachable (exec refuses first), but never run a process
		// outside the container.
		return fail(125, errors.New("no namespace stage in this binary"))
	}
	for _, k := range []string{nsenterEnv, syncEnv, oomEnv} {
		os.Unsetenv(k)
	}
	data, err := io.ReadAll(io.LimitReader(sync, 64<<20))
	if err != nil {
		return fail(125, fmt.Errorf("reading the process: %w", err))
	}
	var m execMsg
	if err := json.Unmarshal(data, &m); err != nil || m.Plan == nil || m.Plan.Process == nil {
		return fail(125, fmt.Errorf("reading the process: %v", err))
	}
	// Only stdio and --preserve-fds (3 up to the sync socket) go on.
	if err := fds.CloseExecFrom(fd); err != nil {
		return fail(125, err)
	}
	if m.Console {
		unix.CloseOnExec(fd + 1)
		cons := os.NewFile(uintptr(fd+1), "console-socket")
		err := process.ConsoleTo(cons)
		cons.Close()
		if err != nil {
			return fail(125, err)
		}
	}
	// Not the session keyring of whoever ran exec (the engine's, the
	// host user's): an empty one of its own.
	if err := confine.NewSessionKeyring(); err != nil {
		return fail(125, err)
	}
	err = m.Plan.Exec()
	var ee *process.ExecError
	if errors.As(err, &ee) {
		return fail(ee.Code, err)
	}
	return fail(125, err)
}
