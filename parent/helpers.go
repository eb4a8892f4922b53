package parent

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"sandbox/holder"
	"sandbox/idmap"
	"sandbox/internal/memexec"
	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/spec"
	"sandbox/state"
	"sandbox/userns"

	"golang.org/x/sys/unix"
)

// InitELF is sandbox-init (cmd/sandbox-init), embedded by cmd/sandbox when
// built with scripts/build.sh: PID 1 then costs what a small program
// costs to start. Without it (a plain `go build`), init is this binary
// again, re-executed as wire.InitArg0.
var InitELF string

// InitStage says that InitELF has the holder stage (cmd/sandbox-init built
// with cgo: scripts/build.sh on amd64), so that a run may have its init
// created in a holder's namespace. Never set for an init without it: that
// one would run in our own namespaces (the start would notice and fail
// over to the helpers, but only after it started).
var InitStage bool

// InitID names the build of InitELF (its SHA-256, set by scripts/build.sh):
// a holder started by a run of the same build shares its copy of init
// (holder.NS.TakeProgram). Empty: none is taken.
var InitID string

// holderFor decides how a run's maps are written: in the namespace of the
// user's holder (ns, checked), or with newuidmap/newgidmap, starting a
// holder in dir for the next runs when none answers (start).
func holderFor(s *spec.Spec, lg *journal.Logger) (ns *holder.NS, dir string, start bool) {
	if !InitStage || InitELF == "" || !s.Maps.ViaHelpers || holder.Off() {
		return nil, "", false
	}
	base, err := state.BaseDir()
	if err == nil {
		dir, err = holder.Dir(base)
	}
	if err != nil {
		lg.Detail("identity", fmt.Sprintf("no holder: %v", err))
		return nil, "", false
	}
	ns, err = holder.Get(dir, s.Maps.UIDs, s.Maps.GIDs)
	switch {
	case err == nil:
		return ns, dir, false
	case errors.Is(err, holder.ErrNone):
		// Not again at every run while one that failed says why.
		return nil, dir, !holder.FailedRecently(dir)
	}
	lg.Detail("identity", fmt.Sprintf("not using the holder: %v", err))
	return nil, dir, false
}

// stageOf is what init's stage needs to create init in ns.
func stageOf(ns *holder.NS, m idmap.Prepared) *userns.Stage {
	return &userns.Stage{NS: ns.File, UIDMap: idmap.Format(m.UIDs), GIDMap: idmap.Format(m.GIDs),
		HolderUIDMap: ns.UIDMap, HolderGIDMap: ns.GIDMap}
}

// mapsWritten says how the maps were written, for the verbose log.
func mapsWritten(m idmap.Prepared, staged bool) string {
	if !staged {
		return mapKind(m)
	}
	uids, _, _ := strings.Cut(mapKind(m), ", ")
	return uids + ", by init's stage in the holder's namespace"
}

// loadInit copies init into its memfd, once per process (one run); a
// second caller waits for the first.
var loadInit = sync.OnceValues(func() (*memexec.File, error) {
	return memexec.New(wire.InitArg0, InitELF)
})

// PreloadInit starts copying init into its memfd, so that the copy runs
// while the caller plans the run; Run then takes it. Not when a holder
// listens: it shares its own copy (initCommand copies then only if it
// does not, e.g. a holder of another build).
func PreloadInit() {
	if InitELF != "" && !holderListens() {
		go loadInit()
	}
}

// holderListens: the run may get init's program from a holder.
func holderListens() bool {
	if !InitStage || InitID == "" || holder.Off() {
		return false
	}
	base, err := state.BaseDir()
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Lstat(filepath.Join(holder.Path(base), holder.Socket), &st) == nil
}

// initCommand is the path that starts init, and a file to close once it
// has started (a sealed memfd of init), at minFD or above (see
// childFDFloor): the holder's copy if hold has one of this build
// (shared), else this process's own.
func initCommand(minFD int, hold *holder.NS) (path string, file io.Closer, shared bool, err error) {
	if InitELF == "" {
		return "/proc/self/exe", nil, false, nil
	}
	var m *memexec.File
	if hold != nil {
		m = hold.TakeProgram(wire.InitArg0, InitID, len(InitELF))
	}
	if shared = m != nil; !shared {
		if m, err = loadInit(); err != nil {
			return "", nil, false, err
		}
	}
	p, err := m.PathAbove(minFD)
	if err != nil {
		m.Close()
		return "", nil, false, err
	}
	return p, m, shared, nil
}

// netstackCommand is the path that starts the builtin network helper and a
// file to close once it has started (the sealed memfd of the embedded
// copy).
func netstackCommand() (string, io.Closer, error) {
	if spec.NetstackELF == "" {
		p, err := spec.NetstackPath()
		if err != nil {
			return "", nil, nil // Start reports the missing helper
		}
		return p, nil, nil
	}
	m, err := memexec.New(spec.NetstackName, spec.NetstackELF)
	if err != nil {
		return "", nil, err
	}
	// Above the fds the helper's fork moves its files through (its socket
	// was made before, at a lower number; see childFDFloor).
	p, err := m.PathAbove(256)
	if err != nil {
		m.Close()
		return "", nil, err
	}
	return p, m, nil
}
