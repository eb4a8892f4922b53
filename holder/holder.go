// Package holder keeps, per user, one user namespace whose id maps were
// written once by newuidmap/newgidmap: the identity map of the user's own
// ids and whole subordinate ranges (1001→1001, 200000→200000 ×65536), so
// that ids in it read as on the host. The stage of each sandbox (the C
// program cmd/sandbox-stage) joins it and creates the sandbox's user
// namespace inside it, init as the `sandbox` process's own child, writing
// that namespace's maps itself: no setuid helper runs on a
// run's critical path, and /proc/self/uid_map inside reads as it would
// with the helpers (the holder's namespace maps every id to itself).
//
// The holder is sandbox-init's program run as Arg0. It lives beside its
// clients, in the user namespace it was started from (a process in a
// nested namespace may not read its clients' /proc/PID/ns, so it could not
// tell one inside a sandbox from one outside), and holds the mapped
// namespace by an fd. It hands that fd, with its maps, over a unix socket
// in the caller's private state directory to peers of its own uid in its
// own user namespace without no_new_privs, and to no one else. With it
// goes a read-only fd of the holder's own program, the sealed memfd it
// runs from, so that a run of the same sandbox build (ProgramEnv says
// which) starts init from it instead of copying init into a memfd of its
// own: no copy on the run's path, and one copy of init's code in memory
// for all the user's sandboxes. Runs share other embedded programs
// through it likewise (the builtin network's helper: share.go). It
// holds no sandbox alive, has no fd of any sandbox, and exits after Idle
// without a client. A run that finds no holder writes its maps with the
// helpers and starts one for the next runs once its payload runs
// (parent's launched.holderDue).
//
// server.go is the holder, client.go the caller's side, share.go the
// programs shared through it (both sides), verify.go the caller's check
// of what it was given, limits.go the limits its namespace was made with
// (a namespace holds all nested in it to its creator's).
// It imports the standard library, x/sys, idmap, internal/memexec and
// internal/proc only.
package holder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Arg0 is argv[0] of the holder; PinArg0 of the short-lived process whose
// new user namespace it has mapped.
const (
	Arg0    = "sandbox-holder"
	PinArg0 = "sandbox-holder-pin"
)

// Idle is how long the holder stays without a client; IdleEnv (a Go
// duration, e.g. "2s") changes it.
const (
	Idle    = 60 * time.Second
	IdleEnv = "SANDBOX_HOLDER_IDLE"
)

// OffEnv set to "off" makes runs write their maps with newuidmap and
// newgidmap, neither using nor starting a holder.
const OffEnv = "SANDBOX_HOLDER"

// Off says whether the caller asked for the helpers (OffEnv).
func Off() bool { return os.Getenv(OffEnv) == "off" }

// The holder's environment, set by Start.
const (
	dirEnv  = "SANDBOX_HOLDER_DIR"  // its directory (see Dir)
	uidsEnv = "SANDBOX_HOLDER_UIDS" // the uids to map to themselves, as idmap.Format writes them
	gidsEnv = "SANDBOX_HOLDER_GIDS"
	// ProgramEnv is which build of sandbox-init the holder runs (the
	// starting run's init ID), handed on with its program; empty: the
	// program is not shared.
	ProgramEnv = "SANDBOX_HOLDER_PROGRAM"
)

// Files in the holder's directory.
const (
	Socket   = "holder.sock"
	lockName = "holder.lock" // held while a holder starts (and exits)
)

// Dir is the holder's directory below the caller's private state
// directory base (made if missing): a directory of the caller's, closed
// to everyone else.
func Dir(base string) (string, error) {
	d := Path(base)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating %s: %w", d, err)
	}
	if err := private(d); err != nil {
		return "", err
	}
	return d, nil
}

// Path is the holder's directory below base, as Dir makes it.
func Path(base string) string { return filepath.Join(base, ".holder") }

// private checks that d is a directory of ours that no one else may enter.
func private(d string) error {
	var st unix.Stat_t
	if err := unix.Lstat(d, &st); err != nil {
		return fmt.Errorf("the holder's directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Getuid() || st.Mode&0o077 != 0 {
		return fmt.Errorf("%s is not a private directory of yours (mode %04o, owner %d)", d, st.Mode&0o7777, st.Uid)
	}
	return nil
}

// CloseInherited closes every fd above stdio that this process was
// started with (its starter's fds without close-on-exec): the holder
// keeps no file of the run that started it. It runs first in main; the
// Go runtime's and the standard library's own fds are all close-on-exec,
// so an fd without the flag can only have come through the exec.
func CloseInherited() {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return // no /proc: the holder fails at its start anyway (it needs /proc/self/ns)
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < 3 {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}
