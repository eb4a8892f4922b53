package parent

import (
	"errors"
	"fmt"
	"io"
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

// holderFor decides how a run's maps are written: in the namespace of the
// user's holder (ns, checked), or with newuidmap/newgidmap, starting a
// holder in dir for the next runs when none answers (start).
func holderFor(s *spec.Spec, lg *journal.Logger) (ns *holder.NS, dir string, start bool) {
	if !stageable() || !s.Maps.ViaHelpers {
		return nil, "", false
	}
	if _, err := loadStage(); err != nil {
		lg.Detail("identity", fmt.Sprintf("no holder: %v", err))
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

// stageable says whether runs may use a holder: the stage and init are
// embedded, and the caller did not ask for the helpers.
func stageable() bool { return StageELF != "" && InitELF != "" && !holder.Off() }

// stageOf is what the stage needs to create init in ns (holderFor has
// loaded the stage, initCommand init).
func stageOf(ns *holder.NS, m idmap.Prepared) *userns.Stage {
	st, _ := loadStage()
	in, _ := loadInit()
	return &userns.Stage{Exe: st.File(), Init: in.File(), NS: ns.File,
		UIDMap: idmap.Format(m.UIDs), GIDMap: idmap.Format(m.GIDs),
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

// loadStage copies the stage into its memfd, likewise.
var loadStage = sync.OnceValues(func() (*memexec.File, error) {
	return memexec.New(userns.StageArg0, StageELF)
})

// PreloadInit starts copying init and the stage into their memfds, at
// once, so that the copies run while the caller plans the run; Run then
// takes them.
func PreloadInit() {
	if InitELF != "" {
		go loadInit()
	}
	if stageable() {
		go loadStage()
	}
}

// initCommand is the path that starts init, at minFD or above (see
// childFDFloor), and what to close once it has started: the sealed memfd
// of the embedded copy, and the stage's when it is loaded.
func initCommand(minFD int) (string, io.Closer, error) {
	if InitELF == "" {
		return "/proc/self/exe", nil, nil
	}
	m, err := loadInit()
	if err != nil {
		return "", nil, err
	}
	p, err := m.PathAbove(minFD)
	if err != nil {
		m.Close()
		return "", nil, err
	}
	if !stageable() {
		return p, m, nil
	}
	// A stage that could not be loaded leaves runs to the helpers
	// (holderFor says why).
	if st, err := loadStage(); err == nil {
		return p, memfds{m, st}, nil
	}
	return p, m, nil
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
