package parent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sandbox/holder"
	"sandbox/idmap"
	"sandbox/internal/memexec"
	"sandbox/internal/proto"
	"sandbox/internal/ttyrelay"
	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/netns"
	"sandbox/spec"
	"sandbox/userns"
)

// launched is a started init: its process, this end of its control
// socket, what init's stdin was opened for, and how its maps were written.
type launched struct {
	c       *userns.Child
	parent  *proto.Conn
	devnull *os.File // init's stdin for a pty or a background job; nil otherwise
	staged  bool     // created by init's stage, which wrote the maps
	holder  bool     // staged in the holder's namespace
	tapMade bool     // the stage made slirp4netns' tap
	// maps has the result of writing init's maps: nil at once when the
	// stage wrote them, else once newuidmap ∥ newgidmap (or this process,
	// idmap.Apply) have, which launch starts.
	maps chan error
	// startHolder starts the user's holder for the next runs (this one
	// found none); nil if none is due. See holderDue.
	startHolder func()
	holderOnce  sync.Once
	// An early launch's: the holder's namespace and init's and the
	// stage's memfds, kept open until run decides (see earlyInit).
	hold      *holder.NS
	memfds    io.Closer
	sharedMem *memexec.File // init's memfd when it is the holder's copy
}

// close releases what the run kept of the launch once it has ended; a
// holder it was to start and has not is left to StartDueHolder.
func (l *launched) close() {
	if l.startHolder != nil {
		dueHolder.Store(l)
	}
	l.parent.Close()
	if l.devnull != nil {
		l.devnull.Close()
	}
}

// holderDue starts the holder if this run is to start one, once: run
// calls it holderDelay after the payload started, and StartDueHolder as
// the process ends, for a run that ended before. Its start (its Go
// runtime, a process in a new user namespace, newuidmap ∥ newgidmap: ~30
// ms of two busy cores) then competes with neither this run's start nor
// its teardown.
func (l *launched) holderDue() {
	if l.startHolder != nil {
		l.holderOnce.Do(l.startHolder)
	}
}

// dueHolder is the launch of a run that ended with the holder it was to
// start not started yet.
var dueHolder atomic.Pointer[launched]

// StartDueHolder starts the user's holder that a run which found none
// was to start, if it ended before it did: the caller's last step before
// it exits, after the run's record and report, which the holder's start
// would otherwise compete with (a first run's end, from init's exit to
// the process's, took ~7 ms with it started when the run ended against
// ~3 without). It outlives the caller.
func StartDueHolder() {
	if l := dueHolder.Swap(nil); l != nil {
		l.holderDue()
	}
}

// holderDelay is how long after the payload started a run that found no
// holder starts one (holderDue).
const holderDelay = 100 * time.Millisecond

// errNoEarly: an early launch is made only by init's stage, in a holder's
// namespace or without one (directStage, helperStage).
var errNoEarly = errors.New("no holder to start init in early")

// launch starts init for s in new namespaces, in cg, and has its maps
// written (launched.maps). With a holder, init is created inside its
// namespace by init's stage, which writes the maps itself: no setuid
// helper on this run's path; maps this process may write itself the stage
// writes too, without a holder (directStage); without a holder for maps
// only the helpers may write, the stage creates init and the helpers
// write them once it has (helperStage).
// early (StartEarly) starts it only by the stage, and keeps the holder's
// namespace open (launched.hold): a run that does not adopt it asks the
// same answer again.
func launch(s *spec.Spec, cg cgroupManager, useTTY, early bool) (*launched, error) {
	lg := s.EnsureLog()
	logf := lg.Step
	var hold *holder.NS
	var holdDir string
	var startHolder bool
	// The stage may create init: in a holder's namespace (which holderFor
	// gives only then), or without one.
	staged := directStage(s) || helperStage(s)
	if early {
		if hold, holdDir, startHolder = holderFor(s, lg); !staged {
			return nil, errNoEarly
		}
	}
	parent, child, err := proto.Pair()
	if err != nil {
		return nil, journal.AtStep("creating the control socket", err)
	}
	defer child.Close()
	l := &launched{parent: parent}
	fail := func(err error) (*launched, error) {
		l.close()
		return nil, err
	}
	flags := uintptr(userns.Namespaces)
	if s.NetNS {
		flags |= userns.Net
	}
	stdin, stdout, stderr := os.Stdin, os.Stdout, os.Stderr
	if s.Output != nil {
		stdout, stderr = s.Output, s.Output
	}
	background := !useTTY && ttyrelay.Background(os.Stdin)
	if useTTY || background {
		if l.devnull, err = os.Open(os.DevNull); err != nil {
			return fail(journal.AtStep("opening /dev/null", err))
		}
		if useTTY {
			// The payload gets a pty made inside; the host terminal stays here.
			stdin, stdout = l.devnull, stderr
		} else {
			stdin = l.devnull
			logf("stdin is /dev/null: started in the background of a terminal, whose input is the shell's")
		}
	}
	extra := []*os.File{child.File()}
	for fd := 3; fd < 3+s.PreserveFDs; fd++ {
		extra = append(extra, os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd)))
	}
	if !early {
		hold, holdDir, startHolder = holderFor(s, lg)
	}
	closeHold := func() {
		if hold != nil && !early {
			hold.Close() // init's stage had its own copy
		}
	}
	initPath, initMemfd, initFile, shared, err := initCommand(childFDFloor(append([]*os.File{stdin, stdout, stderr}, extra...)), hold, staged)
	if err != nil {
		closeHold()
		return fail(journal.AtStep("loading init", err))
	}
	if shared {
		logf("init's program: the holder's sealed copy")
	}
	// One P from the runtime's start: init's own runtime.GOMAXPROCS(1)
	// would stop the world to drop the second, and with two the runtime
	// starts threads to run its goroutines on (measured: 1.3 ms a start).
	initEnv := []string{wire.PreserveEnv + "=" + strconv.Itoa(s.PreserveFDs), "GOMAXPROCS=1", memexec.GoDebug}
	opts := userns.Options{
		Path:       initPath,
		Args:       []string{wire.InitArg0},
		Env:        initEnv,
		Cloneflags: flags,
		LastCap:    s.LastCap,
		Stdin:      stdin,
		Stdout:     stdout,
		Stderr:     stderr,
		ExtraFiles: extra,
	}
	switch {
	case hold != nil:
		opts.Stage = stageOf(hold, s.Maps, initMemfd)
	case staged && initMemfd != nil:
		if opts.Stage, err = directStageOf(s.Maps, initMemfd); err != nil {
			if early {
				// initFile stays open: loadInit's copy, for the run's own launch.
				return fail(fmt.Errorf("%w: init's stage: %w", errNoEarly, err))
			}
			lg.Detail("identity", fmt.Sprintf("not using init's stage: %v", err))
		}
	}
	if opts.Stage.WritesMaps() && stageTap(s) {
		// Made by the stage, so that slirp4netns starts now rather than
		// once init runs and has made it.
		opts.Stage.Tap = netns.TapName
	}
	c, err := cg.startInit(opts)
	if err != nil && opts.Stage != nil && !early {
		// Whatever the stage could not do, the helpers (or this process)
		// do as without it.
		what := "the holder"
		if hold == nil {
			what = "init's stage"
		}
		lg.Detail("identity", fmt.Sprintf("not using %s: %v", what, err))
		opts.Stage = nil
		c, err = cg.startInit(opts)
	}
	closeHold()
	if err == nil && startHolder {
		// For the next runs, once this one no longer starts (holderDue):
		// it maps its namespace itself, with the same helpers, and on two
		// cores its start beside this run's made a first run ~74 ms, 48–60
		// after. From init's memfd: kept open until then.
		closeInit := initFile
		l.startHolder = func() {
			if herr := holder.Start(holdDir, initPath, InitID, s.Maps.UIDs, s.Maps.GIDs); herr != nil {
				lg.Detail("identity", herr.Error())
			}
			if closeInit != nil {
				closeInit.Close()
			}
		}
		initFile = nil
	}
	if initFile != nil && !early {
		initFile.Close() // init has its own copy once started
	}
	if err != nil {
		if early && shared {
			initMemfd.Close() // the holder's copy; the stage's stays for the run
		}
		return fail(journal.AtStep("creating the namespaces", diagnoseStart(err)))
	}
	l.c, l.staged = c, opts.Stage.WritesMaps()
	l.holder = l.staged && opts.Stage.NS != nil
	l.tapMade = l.staged && opts.Stage.Tap != ""
	l.maps = make(chan error, 1)
	if l.staged {
		l.maps <- nil
	} else {
		// At once: for an init started early, while the run is planned.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l.maps <- idmap.Apply(ctx, c.Pid, s.Maps.UIDs, s.Maps.GIDs, s.Maps.ViaHelpers)
		}()
	}
	if early {
		logf("init started early (pid %d), while the run is planned", c.Pid)
		l.hold, l.memfds = hold, initFile
		if shared {
			l.sharedMem = initMemfd
		}
	}
	return l, nil
}

// stageTap says whether init's stage makes the network's tap: slirp4netns,
// which attaches by name to a tap that outlives its maker.
func stageTap(s *spec.Spec) bool {
	n := s.ChildNet()
	return n != nil && n.CreateTap && n.TapByName
}

// launchKey is everything of a plan that decides how init is started: an
// init started early is adopted only if the plan, once whole, gives the
// same key (see StartEarly).
type launchKey struct {
	netNS, tty, background, output bool
	preserveFDs, lastCap           int
	uidMap, gidMap                 string
	viaHelpers, tap                bool
	nproc                          uint64
}

// launchKeyOf is the key of s for a run with or without a pty.
func launchKeyOf(s *spec.Spec, useTTY bool) launchKey {
	return launchKey{
		netNS: s.NetNS, tty: useTTY, background: !useTTY && ttyrelay.Background(os.Stdin), output: s.Output != nil,
		preserveFDs: s.PreserveFDs, lastCap: s.LastCap,
		uidMap: idmap.Format(s.Maps.UIDs), gidMap: idmap.Format(s.Maps.GIDs), viaHelpers: s.Maps.ViaHelpers,
		tap: stageTap(s), nproc: s.Resources.NProc,
	}
}
