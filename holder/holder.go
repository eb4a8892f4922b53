// Package holder keeps, per user, one user namespace whose id maps were
// written once (newuidmap/newgidmap, the whole subordinate range), and
// starts each sandbox's init in a new user namespace nested in it whose
// maps it writes itself, as root of that namespace: no setuid helper runs
// per sandbox. The nested namespace maps the very same ids as the helpers
// would have (the holder's namespace maps every id to itself), so
// /proc/self/uid_map inside reads as before.
//
// The holder is sandbox-init's program run as Arg0 (cmd/sandbox-init). It
// listens on a socket in the caller's private state directory, serves only
// clients of its own uid that are in the user namespace it was started
// from (never one inside a sandbox), keeps no sandbox alive (init watches
// its parent `sandbox` itself), and exits once it has had no client and no
// child for its idle time. Whatever the holder cannot do, the caller does
// the old way.
//
// This file is the protocol; server.go the holder, client.go the caller.
// It imports the standard library, x/sys and internal/proto only.
package holder

import (
	"syscall"
	"time"

	"sandbox/internal/proto"
)

// Arg0 is argv[0] of the holder.
const Arg0 = "sandbox-holder"

// Idle is how long the holder stays without a client or a child; IdleEnv
// (a duration) changes it.
const (
	Idle    = 60 * time.Second
	IdleEnv = "SANDBOX_HOLDER_IDLE"
)

// The conversation on one connection: Spawn (client), then Spawned or
// Error (holder), then Exited once the child is reaped (holder).
const (
	kindSpawn   proto.Kind = "spawn"
	kindSpawned proto.Kind = "spawned"
	kindExited  proto.Kind = "exited"
	kindError              = proto.KindError
)

// The holder's inherited fds.
const (
	listenFD = 3 // the listening socket
	nsFD     = 4 // the user namespace it was started from: its clients'
	goFD     = 5 // read end of a pipe: one byte once its maps are written
)

// Request asks the holder to start a process: argv Args of the holder's
// own executable (sandbox-init's program), in new namespaces, with fds
// 0, 1, 2, 3… the request's fds after the client's user namespace (and
// before the cgroup directory, when Cgroup is set).
type Request struct {
	Args       []string               `json:"args"`
	Env        []string               `json:"env"`
	Cloneflags uintptr                `json:"cloneflags"`
	LastCap    int                    `json:"last_cap"`
	UIDs       []syscall.SysProcIDMap `json:"uids"`
	GIDs       []syscall.SysProcIDMap `json:"gids"`
	Files      int                    `json:"files"`
	Cgroup     bool                   `json:"cgroup,omitempty"`
}

// Spawned is the started process, as the holder's pid namespace (the
// caller's) sees it.
type Spawned struct {
	Pid int `json:"pid"`
}

// Exited is its wait status.
type Exited struct {
	Status uint32 `json:"status"`
}

// Failure is why the holder did not start it: Errno is the system call's
// error, 0 when the holder refused.
type Failure struct {
	Msg   string `json:"msg"`
	Errno int    `json:"errno,omitempty"`
}

// MaxFiles is the most fds a request can give the child: one message
// carries at most 8 fds, two of them are the client's user namespace and
// the cgroup. A run with more (--preserve-fds) starts its init the old way.
const MaxFiles = 6
