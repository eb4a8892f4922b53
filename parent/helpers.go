package parent

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

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

// StageELF is the holder stage (cmd/sandbox-stage, a static C program),
// embedded by cmd/sandbox when scripts/build.sh had a C compiler: a run
// may then have its init created in a holder's namespace. Without it runs
// write their maps with newuidmap/newgidmap.
var StageELF string

// InitID names the build of InitELF (its SHA-256, set by scripts/build.sh):
// a holder started by a run of the same build shares its copy of init
// (holder.NS.TakeProgram). Empty: none is taken.
var InitID string

// holderFor decides how a run's maps are written: in the namespace of the
// user's holder (ns, checked), or with newuidmap/newgidmap, starting a
// holder in dir for the next runs when none answers (start).
func holderFor(s *spec.Spec, lg *journal.Logger) (ns *holder.NS, dir string, start bool) {
	if !stageable() || !s.Maps.ViaHelpers {
		dropFetched()
		return nil, "", false
	}
	if _, err := loadStage(); err != nil {
		dropFetched()
		lg.Detail("identity", fmt.Sprintf("no holder: %v", err))
		return nil, "", false
	}
	dir, err := holderDir()
	if err != nil {
		lg.Detail("identity", fmt.Sprintf("no holder: %v", err))
		return nil, "", false
	}
	if ns, err = fetched(); err == nil {
		if err = ns.Check(s.Maps.UIDs, s.Maps.GIDs); err != nil {
			ns.Close()
			ns = nil
		}
	}
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

// stageable says whether runs may use a holder: the stage and init are
// embedded, and the caller did not ask for the helpers.
func stageable() bool { return StageELF != "" && InitELF != "" && !holder.Off() }

// directStage says whether init's stage creates init for s without a
// holder: maps this process writes itself (one id, the caller's own; or
// root's), which the stage, with the same credentials, writes as well.
// Go's runtime forks this whole process for a child in a new user
// namespace (no vfork then): the stage, a 13 KB program, is started with
// a vfork and makes the namespaces itself, so init can also be started
// while the run is planned (StartEarly), as with a holder.
func directStage(s *spec.Spec) bool { return StageELF != "" && InitELF != "" && !s.Maps.ViaHelpers }

// helperStage says whether init's stage may create init for s where no
// holder answers, its maps left to newuidmap and newgidmap (a user's
// first run, before a holder does; with one, the stage creates init in
// its namespace and writes them), for the reason directStage gives, and
// so that the helpers too start while the run is planned. SANDBOX_HOLDER=off
// keeps Go's fork (stageable).
func helperStage(s *spec.Spec) bool { return stageable() && s.Maps.ViaHelpers }

// stageOf is what the stage needs to create init in ns, from init's memfd
// (holderFor has loaded the stage, initCommand chose init's copy).
func stageOf(ns *holder.NS, m idmap.Prepared, init *memexec.File) *userns.Stage {
	st, _ := loadStage()
	return &userns.Stage{Exe: st.File(), Init: init.File(), NS: ns.File,
		UIDMap: idmap.Format(m.UIDs), GIDMap: idmap.Format(m.GIDs),
		HolderUIDMap: ns.UIDMap, HolderGIDMap: ns.GIDMap}
}

// directStageOf is what the stage needs to create init without a holder:
// with maps only the helpers may write (helperStage), none for the stage.
func directStageOf(m idmap.Prepared, init *memexec.File) (*userns.Stage, error) {
	st, err := loadStage()
	if err != nil {
		return nil, err
	}
	if m.ViaHelpers {
		return &userns.Stage{Exe: st.File(), Init: init.File()}, nil
	}
	return &userns.Stage{Exe: st.File(), Init: init.File(),
		UIDMap: idmap.Format(m.UIDs), GIDMap: idmap.Format(m.GIDs), DenySetgroups: !idmap.Privileged()}, nil
}

// mapsWritten says how the maps were written, for the verbose log.
func mapsWritten(m idmap.Prepared, staged, viaHolder bool) string {
	switch {
	case !staged:
		return mapKind(m)
	case !viaHolder:
		return mapKind(m) + ", by init's stage"
	}
	uids, _, _ := strings.Cut(mapKind(m), ", ")
	return uids + ", by init's stage in the holder's namespace"
}

// loadInit copies init into its memfd, once per process (one run); a
// second caller waits for the first.
var loadInit = sync.OnceValues(func() (*memexec.File, error) {
	return memexec.New(wire.InitArg0, InitELF)
})

// loadStage copies the stage into its memfd, likewise.
var loadStage = sync.OnceValues(func() (*memexec.File, error) {
	return memexec.New(userns.StageArg0, StageELF)
})

// PreloadInit starts copying init and the stage into their memfds, at
// once, so that the copies run while the caller plans the run; Run then
// takes them. When a holder listens, it asks it for its namespace instead
// (checked once the maps are planned), and init is not copied: the holder
// shares its own copy (initCommand copies then only if it does not, e.g. a
// holder of another build).
func PreloadInit() {
	switch {
	case holderListens():
		prefetching.Store(true)
		go fetched()
	case InitELF != "":
		go loadInit()
	}
	if StageELF != "" && InitELF != "" {
		go loadStage() // with a holder, or without (directStage)
	}
}

// stateBase is the state directory, found and checked once for the run's
// holder (PreloadInit looks for its socket, holderFor asks it), not twice.
var stateBase = sync.OnceValues(state.BaseDir)

// holderDir is the holder's directory, made once.
var holderDir = sync.OnceValues(func() (string, error) {
	base, err := stateBase()
	if err != nil {
		return "", err
	}
	return holder.Dir(base)
})

// fetched is the holder's answer, asked for while the run is planned
// (PreloadInit) and checked against the planned maps by holderFor.
var (
	fetched = sync.OnceValues(func() (*holder.NS, error) {
		dir, err := holderDir()
		if err != nil {
			return nil, err
		}
		return holder.Fetch(dir)
	})
	prefetching atomic.Bool
)

// dropFetched closes the holder's answer when a run that asked for it
// early does not use it.
func dropFetched() {
	if prefetching.Load() {
		if ns, err := fetched(); err == nil {
			ns.Close()
		}
	}
}

// holderListens: the run may get init's program from a holder.
func holderListens() bool {
	if !stageable() || InitID == "" {
		return false
	}
	base, err := stateBase()
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Lstat(filepath.Join(holder.Path(base), holder.Socket), &st) == nil
}

// initCommand is the path that starts init, at minFD or above (see
// childFDFloor); init's sealed memfd: the holder's copy if hold has one of
// this build (shared), else this process's own; and what to close once
// init has started: that memfd, and the stage's when it is loaded (staged:
// the run may use it). initMem is nil when init is this binary again (no
// embedded copy).
func initCommand(minFD int, hold *holder.NS, staged bool) (path string, initMem *memexec.File, closer io.Closer, shared bool, err error) {
	if InitELF == "" {
		return "/proc/self/exe", nil, nil, false, nil
	}
	if hold != nil {
		initMem = hold.TakeProgram(wire.InitArg0, InitID, len(InitELF))
	}
	if shared = initMem != nil; !shared {
		if initMem, err = loadInit(); err != nil {
			return "", nil, nil, false, err
		}
	}
	p, err := initMem.PathAbove(minFD)
	if err != nil {
		// Only the holder's copy is this call's own. loadInit's is the
		// process's one copy, which a later launch takes again (the run's
		// own after an early one that failed here): closed, it would move
		// a closed fd, or one since reused for another file.
		if shared {
			initMem.Close()
		}
		return "", nil, nil, false, err
	}
	if !staged {
		return p, initMem, initMem, shared, nil
	}
	// A stage that could not be loaded leaves runs to the helpers
	// (holderFor says why), or to Go's fork (launch).
	if st, err := loadStage(); err == nil {
		return p, initMem, memfds{initMem, st}, shared, nil
	}
	return p, initMem, initMem, shared, nil
}

// memfds are closed together.
type memfds []*memexec.File

func (fs memfds) Close() error {
	var errs []error
	for _, f := range fs {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// netstackCommand is the path that starts the builtin network helper and a
// file to close once it has started: the sealed memfd of the embedded
// copy, the holder's (of this build: spec.NetstackID) or this process's
// own, which is then given to the holder for the user's later runs
// (holder.Share). logf says which.
func netstackCommand(logf func(string, ...any)) (string, io.Closer, error) {
	if spec.NetstackELF == "" {
		p, err := spec.NetstackPath()
		if err != nil {
			return "", nil, nil // Start reports the missing helper
		}
		return p, nil, nil
	}
	dir := ""
	if spec.NetstackID != "" && stageable() {
		if d, err := holderDir(); err == nil {
			dir = d
		}
	}
	var m *memexec.File
	var err error
	if dir != "" {
		if m, err = holder.TakeShared(dir, spec.NetstackName, spec.NetstackID, len(spec.NetstackELF)); err != nil {
			logf("the network helper's program: not the holder's (%v)", err)
		}
	}
	var closer io.Closer
	if m != nil {
		logf("the network helper's program: the holder's sealed copy")
		closer = m
	} else {
		if m, err = memexec.New(spec.NetstackName, spec.NetstackELF); err != nil {
			return "", nil, err
		}
		closer = m
		if dir != "" {
			closer = shareOnClose{m, dir, logf}
		}
	}
	// Above the fds the helper's fork moves its files through (its socket
	// was made before, at a lower number; see childFDFloor).
	p, err := m.PathAbove(256)
	if err != nil {
		m.Close()
		return "", nil, err
	}
	return p, closer, nil
}

// shareOnClose gives the holder in dir the network helper's memfd (m)
// once the helper has started from it, then closes it: the holder had
// none of this build, and the user's next runs take it from there.
type shareOnClose struct {
	m    *memexec.File
	dir  string
	logf func(string, ...any)
}

func (c shareOnClose) Close() error {
	if err := holder.Share(c.dir, spec.NetstackName, spec.NetstackID, c.m); err == nil {
		c.logf("the network helper's program: a copy of its own, now the holder's for the next runs")
	} else if !errors.Is(err, holder.ErrNone) {
		c.logf("the network helper's program: a copy of its own (the holder did not take it: %v)", err)
	}
	return c.m.Close()
}
