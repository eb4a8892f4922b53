package parent

import (
	"errors"
	"fmt"
	"sync/atomic"

	"sandbox/internal/ttyrelay"
	"sandbox/journal"
	"sandbox/netns"
	"sandbox/netns/driver"
	"sandbox/spec"

	"golang.org/x/sys/unix"
)

// earlyInit is init started while the run is still planned (StartEarly):
// its start (the stage, the namespaces, init's Go runtime, ~10 ms here)
// then overlaps the rest of the planning and the run's preparations (the
// root's plan, the record, the cgroup decision) instead of following them.
type earlyInit struct {
	done chan struct{} // closed once launch returned
	key  launchKey     // the plan it was started from
	l    *launched     // nil if not started (err)
	err  error
}

// pending is the early init of this process's run, until run takes it.
var pending atomic.Pointer[earlyInit]

// StartEarly starts init for s, planned as far as what starts it
// (spec.Options.Planned), in the background: only for a run that needs
// nothing else to start it, in the foreground, by init's stage (in a
// holder's namespace, or without one: for maps this process writes
// itself, directStage, or that newuidmap and newgidmap write, started
// at once, helperStage), with no limits (a cgroup with limits takes only
// an init born in it).
// The run adopts it if the whole plan starts init the same way (launchKey)
// and its cgroup takes it (cgroupManager.adoptInit), and kills it
// otherwise; DiscardEarly kills it for a run that ends before.
// It reads s only here: planning goes on with it meanwhile.
func StartEarly(s *spec.Spec) {
	startEarlyNetwork(s)
	if s.Detach || s.Output != nil || s.PreserveFDs > 0 || !(helperStage(s) || directStage(s)) ||
		s.Resources.Limits.Any() || pending.Load() != nil {
		return
	}
	snap := *s
	useTTY := ttyrelay.Want(snap.TTY)
	e := &earlyInit{done: make(chan struct{}), key: launchKeyOf(&snap, useTTY)}
	// Before any namespace is made, as run does (see boundAllProcs).
	boundAllProcs(snap.Resources.NProc)
	pending.Store(e)
	snap.EnsureLog().Step("starting init while the rest of the run is planned")
	go func() {
		defer close(e.done)
		e.l, e.err = launch(&snap, noCgroup{}, useTTY, true)
	}()
}

// takeEarly is the early init, once its launch returned; nil if none.
func takeEarly() *earlyInit {
	e := pending.Swap(nil)
	if e != nil {
		<-e.done
	}
	return e
}

// DiscardEarly kills an early init and network helper the run did not
// take (it failed before), and waits for them: nothing of them outlives
// the run.
func DiscardEarly() {
	if e := takeEarly(); e != nil && e.l != nil {
		e.discard()
	}
	if n := pendingNet.Swap(nil); n != nil {
		<-n.done
		if n.d != nil {
			n.d.Close()
		}
	}
}

// earlyNet is the builtin network's helper started while the run is
// planned (startEarlyNetwork): it needs nothing of init until the tap
// comes, so its start (a copy of ~10 MB into its memfd, its Go runtime)
// overlaps init's instead of following it.
type earlyNet struct {
	done chan struct{}  // closed once its start returned
	cfg  *driver.Config // the plan's, which run compares with its own
	d    driver.ParentDriver
	err  error
}

var pendingNet atomic.Pointer[earlyNet]

// startEarlyNetwork starts the builtin network's helper for s in the
// background; the other drivers join init's namespaces, so they wait for
// init (run starts them).
func startEarlyNetwork(s *spec.Spec) {
	if s.Net == nil || s.Net.Mode != netns.Builtin || pendingNet.Load() != nil {
		return
	}
	n := &earlyNet{done: make(chan struct{}), cfg: s.Net}
	cfg := networkConfig(s, "") // builtin makes nothing in a state directory
	lg := s.EnsureLog()
	pendingNet.Store(n)
	go func() {
		defer close(n.done)
		if n.d, n.err = driver.Start(cfg, 0); n.err == nil {
			lg.Step("started the %s network driver, early: while the run is planned", cfg.Mode)
		}
	}()
}

// takeEarlyNetwork is the helper started early for the plan's network
// cfg, once its start returned; ok is false if none was started for it
// (one started for another plan is stopped).
func takeEarlyNetwork(cfg *driver.Config) (d driver.ParentDriver, ok bool, err error) {
	n := pendingNet.Swap(nil)
	if n == nil {
		return nil, false, nil
	}
	<-n.done
	if n.cfg != cfg {
		if n.d != nil {
			n.d.Close()
		}
		return nil, false, nil
	}
	return n.d, true, n.err
}

// adopt is e's launch for a run of key in cg, or nil: e was not started,
// or not as the whole plan starts init (then it is killed); the run then
// starts init itself, with the holder's answer e left open.
func (e *earlyInit) adopt(key launchKey, cg cgroupManager, lg *journal.Logger) *launched {
	if e.l == nil {
		if !errors.Is(e.err, errNoEarly) {
			lg.Detail("sandbox", fmt.Sprintf("init not started early: %v", e.err))
		}
		return nil
	}
	if key != e.key || !cg.adoptInit(e.l.c) {
		lg.Detail("sandbox", "init started early was not what the whole plan starts, or its cgroup takes: started again")
		e.discard()
		return nil
	}
	l := e.l
	if l.hold != nil {
		l.hold.Close()
	}
	if l.memfds != nil {
		l.memfds.Close() // init has its own copy once started
	}
	l.hold, l.memfds, l.sharedMem = nil, nil, nil
	return l
}

// discard kills e's init and releases what is its own; the holder it
// was to start is the run's own launch's to start, with the files it keeps.
func (e *earlyInit) discard() {
	unix.Kill(e.l.c.Pid, unix.SIGKILL)
	e.l.c.Wait()
	<-e.l.maps // the helpers fail on the dead pid; bounded by their context
	e.l.startHolder = nil
	e.l.close()
	if e.l.sharedMem != nil {
		e.l.sharedMem.Close()
	}
}
