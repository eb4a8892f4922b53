package parent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sandbox/idmap"
	"sandbox/image"
	"sandbox/internal/callersig"
	"sandbox/internal/proc"
	"sandbox/internal/proto"
	"sandbox/netns/driver"
	"sandbox/netns/egress"
	"sandbox/rootfs"
	"sandbox/state"

	"sandbox/internal/ttyrelay"
	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/spec"

	"golang.org/x/sys/unix"
)

// run starts the sandbox described by s and waits for it. It returns the
// exit status for `sandbox run`; errors of the sandbox itself are printed
// to stderr by the caller and mean status 125.
func run(s *spec.Spec) (status int, err error) {
	start := s.Start
	lg, rep := s.EnsureLog(), s.EnsureReport()
	logf := lg.Step
	// Caught below, before init is taken; stopped after every cleanup
	// deferred here.
	sigs := make(chan os.Signal, 16)
	defer callersig.Stop(sigs)
	defer func() { // last: after the cgroup's finish
		err = fdLimitHint(err)
		rep.Finish(lg, status, err)
	}()
	logf("planned the sandbox (%d mount steps)", len(s.Plan.Steps))
	boundAllProcs(s.Resources.NProc)
	for _, w := range s.Warnings {
		lg.Warn(w)
	}
	// Held until this process ends, so that `sandbox image rm` leaves the
	// layers alone while the run uses them.
	if err := image.LockLayers(s.ImageLayers); err != nil {
		return wire.StatusError, journal.AtStep("locking the image's layers", err)
	}
	h := s.State
	if h == nil {
		if h, err = state.Claim(s.Name); err != nil {
			return wire.StatusError, journal.AtStep("claiming the name", err)
		}
	}
	describe(s, &h.Info)
	defer func() {
		// Last: the cgroup's finish (deferred below) may still change status.
		if ferr := h.Finish(status); ferr != nil {
			lg.Warn(fmt.Sprintf("updating the record of sandbox %s: %v", s.Name, ferr))
		}
	}()
	if err := h.Write(); err != nil {
		return wire.StatusError, journal.AtStep("writing the sandbox's record", err)
	}
	if s.Upper != "" {
		// Prepare planned it; made here if new.
		if err := os.MkdirAll(s.Upper, 0o700); err != nil {
			return wire.StatusError, journal.AtStep("creating the --upper directory", fmt.Errorf("--upper %s: %w", s.Upper, err))
		}
	}
	unlock, err := lockUpper(s.Upper)
	if err != nil {
		return wire.StatusError, journal.AtStep("locking the --upper directory", err)
	}
	defer unlock()
	if err := prepareUpper(s); err != nil {
		return wire.StatusError, journal.AtStep("preparing the --upper directory", err)
	}
	// Removed once init is gone (every defer below runs first).
	eph, err := makeEphemeral(s)
	defer func() { dropEphemeral(eph, lg) }()
	if err != nil {
		return wire.StatusError, journal.AtStep("creating the ephemeral directory", err)
	}
	cg, err := openCgroup(s, lg)
	if err != nil {
		return wire.StatusError, journal.AtStep("setting up the cgroup", err)
	}
	defer func() { status, err = cg.finish(status, err) }()
	useTTY := ttyrelay.Want(s.TTY)
	// Catch signals before the child exists, so none is lost in between
	// (an init started early, beside the planning, is killed with this
	// process by a signal that comes before: its Pdeathsig). Stopped
	// once the run's cleanup is done (the first deferred call above): one
	// that comes during the cleanup is better held than obeyed halfway
	// through it.
	callersig.Notify(sigs, callersig.ForwardedByCaller()...)
	if !useTTY {
		// Ctrl-Z stops the job; the payload, in a session of its own, is
		// stopped by init (with a pty, Ctrl-Z is a key for its terminal).
		callersig.Notify(sigs, callersig.JobControl...)
	}
	var l *launched
	early := ""
	if e := takeEarly(); e != nil {
		if l = e.adopt(launchKeyOf(s, useTTY), cg, lg); l != nil {
			early = ", early: while the run was planned"
		}
	}
	if l == nil {
		l, err = launch(s, cg, useTTY, false)
	}
	if s.Output != nil {
		s.Output.Close() // init has its own; see Spec.Output
	}
	if err != nil {
		return wire.StatusError, err
	}
	defer l.close()
	c, parent, staged, tapMade := l.c, l.parent, l.staged, l.tapMade
	logf("started init (pid %d) in new namespaces%s%s", c.Pid, cg.where(c), early)
	cg.placed(c)
	// The id maps are written (newuidmap ∥ newgidmap: two setuid helpers,
	// started by launch) while this process sets up the rest; init waits
	// for its configuration, which is sent once both are done. Init's
	// stage wrote them already.
	mapsDone := l.maps
	if staged && rep.Identity != nil && l.holder {
		rep.Identity.Via = "holder"
		rep.Identity.Why = "your /etc/subuid and /etc/subgid ranges, written by init in your holder's namespace (which newuidmap and newgidmap mapped once)"
	}
	mapsPending := true
	abort := func(err error) (int, error) {
		unix.Kill(c.Pid, unix.SIGKILL)
		if mapsPending {
			<-mapsDone // the helpers fail on the dead pid; bounded by their context
		}
		c.Wait()
		return wire.StatusError, err
	}
	if err := limitProcs(c.Pid, procLimit(s.Resources, cg.limits())); err != nil {
		return abort(journal.AtStep("limiting processes", err))
	}
	// The network driver starts now, alongside the id maps and init's root.
	var network driver.ParentDriver
	defer func() {
		if network != nil {
			network.Close()
		}
	}()
	if s.Net != nil {
		if network, err = startNetwork(s, h, c.Pid, logf); err != nil {
			return abort(journal.AtStep("starting the network driver", err))
		}
		if tapMade {
			if err := network.GiveTap(nil); err != nil {
				return abort(journal.AtStep("starting the network driver", err))
			}
			logf("the tap made by init's stage went to the driver")
		}
	}
	var netReadyC <-chan error
	var netDied <-chan error
	if network != nil {
		// A driver whose tap init makes is ready once it has it.
		netReadyC, netDied = network.Ready(), network.Died()
	}

	cfg := wire.ChildConfig{
		Args: s.Args, Env: s.Env, Hostname: s.Hostname, HostnameAsked: s.HostnameAsked, LoopUp: s.NetNS, Net: s.ChildNet(),
		Plan: s.Plan, TTY: useTTY, Verbose: s.Verbose, Report: s.Reported, Umask: currentUmask(), LogFormat: lg.Format(), Start: lg.Start,
		Caps: s.Caps, LastCap: s.LastCap, Landlock: s.Landlock, PreserveFDs: s.PreserveFDs, Seccomp: s.Seccomp,
		// A round trip (~1.2 ms) only where it may matter: a filter that
		// kills a single thread, or a user's profile (its start is bounded).
		SeccompWatch: s.Seccomp != nil && (s.SeccompFile || s.Seccomp.MayKillThread()),
	}
	if tapMade {
		cfg.Net.TapMade = true
	}
	if useTTY {
		if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
			cfg.Rows, cfg.Cols = ws.Row, ws.Col
		}
	}
	// init serves `sandbox exec` on this socket once the payload runs, to
	// clients in this user namespace only (see serveExec).
	ln, err := h.Listen()
	if err != nil {
		return abort(journal.AtStep("creating the exec socket", err))
	}
	defer ln.Close()
	userNS, err := os.Open("/proc/self/ns/user")
	if err != nil {
		return abort(fmt.Errorf("opening our user namespace: %w", err))
	}
	defer userNS.Close()
	cfg.Exec = true
	err = <-mapsDone
	mapsPending = false
	if err != nil {
		return abort(journal.AtStep("writing the id maps", fmt.Errorf("writing the id maps: %w", err)))
	}
	logf("wrote uid and gid maps (%s)", mapsWritten(s.Maps, staged, l.holder))
	// Init's threads before it can install a filter that may kill one: a
	// thread killed later is seen gone (initWatch).
	watch := initWatch{pid: c.Pid, seccomp: s.Seccomp != nil, profile: s.SeccompFile, threads: cfg.SeccompWatch}
	defer watch.reader.close()
	watch.check()
	// In its binary form: init then decodes it without JSON (proto.SendBinary).
	if err := parent.SendBinary(proto.KindConfig, cfg, int(ln.Fd()), int(userNS.Fd())); err != nil {
		return abort(journal.AtStep("sending the configuration", err))
	}

	msgs := make(chan wire.Message, 4)
	go wire.Receive(parent, &wire.FromInit, msgs)
	var relay *ttyrelay.Relay
	defer func() {
		if relay != nil {
			relay.Restore()
		}
	}()
	var exit *wire.ChildExit
	var protoErr error
	var cerr *wire.ChildError
	// Signals go to init as messages (wire.Signal), not as signals: init
	// passes on none sent to itself, which any process inside may send.
	// They wait for Started: init reads them once the payload runs, and
	// a signal for a command that does not run yet is for it once it does.
	started, held := false, make([]syscall.Signal, 0, 16)
	forward := func(sig syscall.Signal) {
		parent.Send(proto.KindSignal, wire.Signal{Signal: int(sig)})
	}
	tick := time.NewTicker(initWatchEvery)
	defer tick.Stop()
	var recorded chan struct{} // closed once the record of the started payload is written
	for done := false; !done; {
		select {
		case <-tick.C:
			watch.check()
		case sig := <-sigs:
			if relay != nil && sig == syscall.SIGWINCH {
				relay.Resize()
				continue
			}
			if !started {
				if len(held) < cap(held) {
					held = append(held, sig.(syscall.Signal))
				}
			} else {
				forward(sig.(syscall.Signal))
			}
			if sig == syscall.SIGTSTP {
				// This process stops as the rest of the job did; SIGCONT
				// (fg, bg) resumes it, and it passes that on.
				unix.Kill(os.Getpid(), unix.SIGSTOP)
			}
		case err := <-netReadyC:
			netReadyC = nil
			msg := wire.NetReady{}
			if err != nil {
				msg.Err = err.Error()
			} else {
				logf("network up (%s)", s.Net.Mode)
			}
			parent.SendBinary(proto.KindNet, msg)
		case err := <-netDied:
			netDied = nil
			lg.Fail(err)
		case m, ok := <-msgs:
			if !ok {
				done = true
				break
			}
			if m.Err != nil { // init broke the protocol: it is not trusted further
				protoErr = m.Err
				unix.Kill(c.Pid, unix.SIGKILL)
				continue
			}
			switch m.Env.Kind {
			case proto.KindTap:
				if network == nil || len(m.Fds) > 1 {
					proto.CloseFDs(m.Fds)
					continue
				}
				var tap *os.File // nil: a persistent tap, attached by name
				if len(m.Fds) == 1 {
					tap = os.NewFile(uintptr(m.Fds[0]), "tap")
				}
				if err := network.GiveTap(tap); err != nil {
					netReadyC = nil // init hears it now; Net is sent once
					parent.SendBinary(proto.KindNet, wire.NetReady{Err: err.Error()})
				}
			case proto.KindPTY:
				if len(m.Fds) != 1 {
					proto.CloseFDs(m.Fds)
					continue
				}
				relay, err = ttyrelay.Start(m.Fds[0])
				if err != nil {
					logf("terminal relay: %v", err)
				}
			case proto.KindConfining:
				watch.confining()
				parent.Send(proto.KindWatched, nil) // init installs the filter now
			case proto.KindStarted:
				watch.started()
				started = true
				for _, sig := range held {
					forward(sig)
				}
				held = nil
				var st wire.ChildStarted
				m.Env.Decode(&st)
				rep.Started(st.Init)
				logf("payload started after %v", time.Since(start).Round(time.Microsecond))
				if l.startHolder != nil {
					holderTimer := time.AfterFunc(holderDelay, l.holderDue)
					defer holderTimer.Stop() // StartDueHolder starts it then
				}
				if recorded != nil {
					<-recorded // a second Started: the first record is written
				}
				h.Info.Status, h.Info.InitPid, h.Info.PayloadPid = state.Running, c.Pid, st.PID
				h.Info.InitStart, _ = state.StartTime(c.Pid)
				cg.describe(&h.Info)
				// Written beside this loop, which may already have the
				// payload's exit to handle (a short payload ends before a
				// record is written on two busy cores); waited for after
				// init is gone, before the record is finished.
				written := make(chan struct{})
				recorded = written
				go func() {
					defer close(written)
					if err := h.Write(); err != nil {
						lg.Warn(err.Error())
					}
					if s.OnStarted != nil {
						s.OnStarted()
					}
				}()
				// Off the start-up and exit paths: drop records of killed
				// runs meanwhile (a sweep cut short by our exit is finished
				// by the next one).
				go state.List()
			case proto.KindExit:
				exit = new(wire.ChildExit)
				if err := m.Env.Decode(exit); err != nil {
					exit = nil
				}
				rep.Exited(exit)
				watch.reported()
			case proto.KindError:
				cerr = new(wire.ChildError)
				if err := m.Env.Decode(cerr); err != nil {
					cerr = &wire.ChildError{Msg: err.Error(), Status: wire.StatusError}
				}
				watch.reported()
			default:
				proto.CloseFDs(m.Fds)
			}
		}
	}
	ws, werr := c.Wait()
	if recorded != nil {
		<-recorded
	}
	if relay != nil {
		relay.Finish()
	}
	if network != nil && s.Net.Policy != nil {
		rep.NetBlocked(lg, network.Blocked())
	}
	logf("sandbox ended after %v", time.Since(start).Round(time.Microsecond))
	switch {
	case protoErr != nil:
		return wire.StatusError, journal.AtStep("running init", protoErr)
	case cerr != nil:
		if cerr.Status == 0 {
			cerr.Status = wire.StatusError
		}
		return cerr.Status, &wire.ChildFailure{E: *cerr}
	case exit != nil:
		if exit.Signal > 0 {
			return wire.StatusSignalStart + exit.Signal, nil
		}
		return exit.Code, nil
	case watch.dead != nil:
		return wire.StatusError, journal.AtStep("running init", watch.dead)
	case werr != nil:
		return wire.StatusError, journal.AtStep("waiting for the sandbox", fmt.Errorf("waiting for the sandbox: %w", werr))
	case ws.Signaled() && recorded != nil:
		// Killed while the payload ran (`sandbox stop` past its grace
		// period, a SIGKILL to init): the payload ended with it, as one
		// killed by that signal.
		return wire.StatusSignalStart + int(ws.Signal()), journal.AtStep("running the command",
			fmt.Errorf("the sandbox's init was killed by signal %d (%v) while the command ran; the command ended with it", int(ws.Signal()), ws.Signal()))
	case ws.Signaled():
		return wire.StatusError, journal.AtStep("running init", fmt.Errorf("the sandbox's init was killed by signal %d (%v) before it reported%s",
			int(ws.Signal()), ws.Signal(), initKilledHint(ws.Signal(), 0, s.SeccompFile)))
	case recorded != nil:
		// Ended while the payload ran, without a report: its Go
		// runtime's fatal error (out of threads when the sandbox's
		// processes fill their limit, which init shares), or a bug.
		return wire.StatusError, journal.AtStep("running the command", fmt.Errorf("the sandbox's init exited with status %d while the command ran; the command ended with it%s",
			ws.ExitStatus(), runningInitHint(ws.ExitStatus())))
	default:
		return wire.StatusError, journal.AtStep("running init", fmt.Errorf("the sandbox's init exited with status %d before it reported%s",
			ws.ExitStatus(), initKilledHint(0, ws.ExitStatus(), s.SeccompFile)))
	}
}

// startNetwork starts s's network driver on the namespaces of init (pid),
// or takes the one StartEarly started for it.
func startNetwork(s *spec.Spec, h *state.Handle, pid int, logf func(string, ...any)) (driver.ParentDriver, error) {
	if d, ok, err := takeEarlyNetwork(s.Net); ok {
		return d, err
	}
	// In the sandbox's own directory: a killed run's is removed with it.
	cfg := networkConfig(s, h.Path(state.NetDir))
	n, err := driver.Start(cfg, pid)
	if err != nil {
		return nil, err
	}
	logf("started the %s network driver", cfg.Mode)
	return n, nil
}

// networkConfig is the driver's configuration for s, with its state in
// stateDir.
func networkConfig(s *spec.Spec, stateDir string) driver.Config {
	cfg := *s.Net
	lg := s.EnsureLog()
	cfg.Netstack = func() (string, io.Closer, error) { return netstackCommand(lg.Step) }
	if s.Verbose {
		cfg.Log = lg.Writer("net")
		cfg.OnBlocked = func(r egress.Record) { lg.Detail("net", r.Line()) }
	}
	cfg.StateDir = stateDir
	return cfg
}

func mapKind(p idmap.Prepared) string {
	var uids []string
	for _, m := range p.UIDs {
		uids = append(uids, fmt.Sprintf("%d:%d:%d", m.Inside, m.Outside, m.Count))
	}
	how := "written directly"
	if p.ViaHelpers {
		how = "newuidmap/newgidmap"
	}
	return strings.Join(uids, " ") + ", " + how
}

// lockUpper takes an exclusive lock on the persistent upper directory for
// the whole run, and a shared one on each directory above it: the kernel
// only warns when two overlays share an upper (without index=on), or when
// one's upper holds another's, and the layer would be corrupted. So a
// second run on DIR, on a directory inside it (DIR/upper) or on one that
// holds it finds a lock it cannot take.
func lockUpper(dir string) (func(), error) {
	if dir == "" {
		return func() {}, nil
	}
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
	}
	for d := dir; ; d = filepath.Dir(d) {
		how := unix.LOCK_SH
		if d == dir {
			how = unix.LOCK_EX
		}
		f, err := os.Open(d)
		if err != nil {
			if d == dir {
				release()
				return nil, fmt.Errorf("--upper: %w", err)
			}
			// A directory above that this user cannot read cannot be
			// locked; nobody else's run can lock it either.
		} else {
			held = append(held, f)
			if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
				release()
				if errors.Is(err, unix.EWOULDBLOCK) {
					if d == dir {
						return nil, fmt.Errorf("--upper %s is in use by another running sandbox (as its --upper, or holding it); wait for it or use another directory", dir)
					}
					return nil, fmt.Errorf("--upper %s is inside %s, the --upper of another running sandbox; wait for it or use a directory outside it", dir, d)
				}
				return nil, fmt.Errorf("--upper: locking %s: %w", d, err)
			}
		}
		if d == "/" || d == "." {
			break
		}
	}
	return release, nil
}

// prepareUpper creates the persistent upper and work directories the plan
// names; the child cannot create them once the host is covered.
func prepareUpper(s *spec.Spec) error {
	if s.Upper == "" {
		return nil
	}
	all := append([]rootfs.Step{s.Plan.Root}, s.Plan.Steps...)
	for _, st := range all {
		if st.Op != rootfs.OpOverlay || st.Upper == "" {
			continue
		}
		if err := mkdirBelow(s.Upper, st.Work, 0); err != nil {
			return err
		}
		if err := mkdirBelow(s.Upper, st.Upper, st.Mode); err != nil {
			return err
		}
	}
	return nil
}

// mkdirBelow makes dir, below the --upper directory base, with every
// directory between (mode, if not 0, set on dir), and refuses a symlink
// or anything but a directory on the way: an --upper below a shared
// working directory is one a sandbox can write, and a symlink it planted
// there would be followed by the next run's mounts, making any directory
// of the caller's the sandbox's.
func mkdirBelow(base, dir string, mode uint32) error {
	rel, err := filepath.Rel(base, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("--upper: %s is not below %s", dir, base)
	}
	fd, err := unix.Open(base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("--upper %s: %w", base, err)
	}
	at := base
	for _, name := range strings.Split(rel, "/") {
		if name == "." {
			continue
		}
		at = filepath.Join(at, name)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(fd)
			return fmt.Errorf("--upper: creating %s: %w", at, err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("--upper: %s is a symlink or not a directory; sandbox makes only directories there (was it changed from inside a sandbox? remove it)", at)
		}
		if err != nil {
			return fmt.Errorf("--upper: %s: %w", at, err)
		}
		fd = next
	}
	defer unix.Close(fd)
	if mode != 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("--upper: %s: %w", dir, err)
		}
	}
	return nil
}

func currentUmask() int {
	if callerUmask >= 0 {
		return callerUmask
	}
	// umask can only be read by setting it; put it back at once.
	m := unix.Umask(0o022)
	unix.Umask(m)
	return m
}

// fdLimitHint names the fix for a step that ran out of file descriptors
// (EMFILE: the helpers' /dev/null, a pipe), as memexec does for init's fd:
// the caller's open-file limit, of which a run needs a few dozen.
func fdLimitHint(err error) error {
	var lim unix.Rlimit
	if err == nil || !errors.Is(err, unix.EMFILE) || strings.Contains(err.Error(), "(ulimit -n)") ||
		unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return err
	}
	return fmt.Errorf("%w: the open-file limit is %d (ulimit -n); raise it", err, lim.Cur)
}

// diagnoseStart turns a failure to create the namespaces into advice.
func diagnoseStart(err error) error {
	switch {
	case (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) && proc.SeccompFiltered():
		// A sandbox's or a container's filter refuses it, not the
		// host's settings (before, those were named).
		return journal.WithHint(err, "the kernel refused to create a user namespace: sandbox runs under a seccomp filter (inside another sandbox or a container?), "+
			"which refuses them: start the outer one with --allow-nested-userns (sandbox), or with a filter that allows them (docker/podman --security-opt seccomp=unconfined); sandbox check says more")
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return journal.WithHint(err, "the kernel refused to create a user namespace. Check: sysctl kernel.unprivileged_userns_clone=1 (Debian), "+
			"sysctl user.max_user_namespaces > 0, and on Ubuntu 24.04+ the AppArmor restriction "+
			"(sysctl kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for "+exePath()+")")
	case errors.Is(err, unix.ENOSPC):
		return journal.WithHint(err, "too many user namespaces: raise sysctl user.max_user_namespaces")
	}
	return err
}

func exePath() string {
	p, err := os.Executable()
	if err != nil {
		return "sandbox"
	}
	return filepath.Clean(p)
}

// childFDFloor is the lowest fd that survives a child's fd setup: Go's
// fork moves its files to 0..n-1 through fds above the highest of them
// (syscall's nextfd), so an fd that the child needs by number (the memfd
// it executes) must be above those too.
func childFDFloor(files []*os.File) int {
	top := 0
	for _, f := range files {
		if fd := int(f.Fd()); fd > top {
			top = fd
		}
	}
	return top + len(files) + 3
}
