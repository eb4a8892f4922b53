package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandbox/idmap"
	"sandbox/internal/proto"
	"sandbox/netns"
	"sandbox/netns/driver"
	"sandbox/rootfs"
	"sandbox/state"
	"sandbox/userns"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Exit statuses of `sandbox run` besides the payload's own.
const (
	StatusError       = 125 // the sandbox itself failed
	StatusNotExec     = 126 // the command exists but cannot be executed
	StatusNotFound    = 127 // the command was not found
	StatusSignalStart = 128 // 128+N: the command died of signal N
)

// InitArg0 is argv[0] of the re-executed child; main dispatches on it
// before parsing any flags.
const InitArg0 = "sandbox-init"

// forwarded are the signals the parent passes on to the sandbox.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// run starts the sandbox described by s and waits for it. It returns the
// exit status for `sandbox run`; errors of the sandbox itself are printed
// to stderr by the caller and mean status 125.
func run(s *Spec) (status int, err error) {
	start := s.Start
	lg, rep := s.logger(), s.report()
	logf := lg.Step
	defer func() { rep.finish(lg, status, err) }() // last: after the cgroup's finish
	logf("planned the sandbox (%d mount steps)", len(s.Plan.Steps))
	for _, w := range s.Warnings {
		lg.Warn(w)
	}
	h := s.state
	if h == nil {
		if h, err = state.Claim(s.Name); err != nil {
			return StatusError, atStep("claiming the name", err)
		}
	}
	s.describe(&h.Info)
	defer func() {
		// Last: the cgroup's finish (deferred below) may still change status.
		if ferr := h.Finish(status); ferr != nil {
			lg.Warn(fmt.Sprintf("updating the record of sandbox %s: %v", s.Name, ferr))
		}
	}()
	if err := h.Write(); err != nil {
		return StatusError, atStep("writing the sandbox's record", err)
	}
	unlock, err := lockUpper(s.Upper)
	if err != nil {
		return StatusError, atStep("locking the --upper directory", err)
	}
	defer unlock()
	if err := prepareUpper(s); err != nil {
		return StatusError, atStep("preparing the --upper directory", err)
	}
	// Removed once init is gone (every defer below runs first).
	defer s.removeEphemeral(lg)
	if err := s.makeEphemeral(); err != nil {
		return StatusError, atStep("creating the ephemeral directory", err)
	}
	cg, err := openCgroup(s, lg)
	if err != nil {
		return StatusError, atStep("setting up the cgroup", err)
	}
	defer func() { status, err = cg.finish(status, err) }()
	useTTY := wantTTY(s.TTY)
	parent, child, err := proto.Pair()
	if err != nil {
		return StatusError, atStep("creating the control socket", err)
	}
	defer parent.Close()

	flags := uintptr(userns.Namespaces)
	if s.NetNS {
		flags |= userns.Net
	}
	stdin, stdout := os.Stdin, os.Stdout
	if useTTY {
		// The payload gets a pty made inside; the host terminal stays here.
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return StatusError, atStep("opening /dev/null", err)
		}
		defer devnull.Close()
		stdin, stdout = devnull, os.Stderr
	}
	// Catch signals before the child exists, so none is lost in between.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	extra := []*os.File{child.File()}
	for fd := 3; fd < 3+s.PreserveFDs; fd++ {
		extra = append(extra, os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd)))
	}
	c, err := cg.startInit(userns.Options{
		Path:       "/proc/self/exe",
		Args:       []string{InitArg0},
		Env:        []string{preserveEnv + "=" + strconv.Itoa(s.PreserveFDs)},
		Cloneflags: flags,
		LastCap:    s.LastCap,
		Stdin:      stdin,
		Stdout:     stdout,
		Stderr:     os.Stderr,
		ExtraFiles: extra,
	})
	child.Close()
	if err != nil {
		return StatusError, atStep("creating the namespaces", diagnoseStart(err))
	}
	logf("started init (pid %d) in new namespaces%s", c.Pid, cg.where(c))
	cg.placed(c)
	abort := func(err error) (int, error) {
		unix.Kill(c.Pid, unix.SIGKILL)
		c.Wait()
		return StatusError, err
	}
	if err := limitProcs(c.Pid, s.Resources.procLimit(cg)); err != nil {
		return abort(atStep("limiting processes", err))
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
			return abort(atStep("starting the network driver", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = idmap.Apply(ctx, c.Pid, s.Maps.UIDs, s.Maps.GIDs, s.Maps.ViaHelpers)
	cancel()
	if err != nil {
		return abort(atStep("writing the id maps", fmt.Errorf("writing the id maps: %w", err)))
	}
	logf("wrote uid and gid maps (%s)", mapKind(s.Maps))
	var netReadyC <-chan error
	var netDied <-chan error
	if network != nil {
		// A driver whose tap init makes is ready once it has it.
		netReadyC, netDied = network.Ready(), network.Died()
	}

	cfg := childConfig{
		Args: s.Args, Env: s.Env, Hostname: s.Hostname, HostnameAsked: s.HostnameAsked, LoopUp: s.NetNS, Net: s.childNet(),
		Plan: s.Plan, TTY: useTTY, Verbose: s.Verbose, Umask: currentUmask(), LogFormat: lg.format(), Start: lg.start,
		Caps: s.Caps, LastCap: s.LastCap, Landlock: s.Landlock, PreserveFDs: s.PreserveFDs, Seccomp: s.Seccomp,
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
		return abort(atStep("creating the exec socket", err))
	}
	defer ln.Close()
	userNS, err := os.Open("/proc/self/ns/user")
	if err != nil {
		return abort(fmt.Errorf("opening our user namespace: %w", err))
	}
	defer userNS.Close()
	cfg.Exec = true
	// Init's threads before it can install a filter: a thread killed later
	// is seen gone (initWatch).
	watch := initWatch{pid: c.Pid, seccomp: s.Seccomp != nil, profile: s.SeccompFile}
	watch.check()
	if err := parent.Send(proto.KindConfig, cfg, int(ln.Fd()), int(userNS.Fd())); err != nil {
		return abort(atStep("sending the configuration", err))
	}

	msgs := make(chan message, 4)
	go receive(parent, msgs)
	var relay *ttyRelay
	defer func() {
		if relay != nil {
			relay.restore()
		}
	}()
	var exit *childExit
	var cerr *childError
	tick := time.NewTicker(initWatchEvery)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
			watch.check()
		case sig := <-sigs:
			if relay != nil && sig == syscall.SIGWINCH {
				relay.resize()
				continue
			}
			unix.Kill(c.Pid, sig.(syscall.Signal))
		case err := <-netReadyC:
			netReadyC = nil
			msg := netReady{}
			if err != nil {
				msg.Err = err.Error()
			} else {
				logf("network up (%s)", s.Net.Mode)
			}
			parent.Send(proto.KindNet, msg)
		case err := <-netDied:
			netDied = nil
			lg.Error(err.Error())
		case m, ok := <-msgs:
			if !ok {
				done = true
				break
			}
			switch m.env.Kind {
			case proto.KindTap:
				if network == nil || len(m.fds) > 1 {
					closeFDs(m.fds)
					continue
				}
				var tap *os.File // nil: a persistent tap, attached by name
				if len(m.fds) == 1 {
					tap = os.NewFile(uintptr(m.fds[0]), "tap")
				}
				if err := network.GiveTap(tap); err != nil {
					parent.Send(proto.KindNet, netReady{Err: err.Error()})
				}
			case proto.KindPTY:
				if len(m.fds) != 1 {
					closeFDs(m.fds)
					continue
				}
				relay, err = startRelay(m.fds[0])
				if err != nil {
					logf("terminal relay: %v", err)
				}
			case proto.KindConfining:
				watch.confining()
			case proto.KindStarted:
				watch.started()
				rep.started(m.env)
				logf("payload started after %v", time.Since(start).Round(time.Microsecond))
				var st childStarted
				m.env.Decode(&st)
				h.Info.Status, h.Info.InitPid, h.Info.PayloadPid = state.Running, c.Pid, st.PID
				h.Info.InitStart, _ = state.StartTime(c.Pid)
				cg.describe(&h.Info)
				if err := h.Write(); err != nil {
					lg.Warn(err.Error())
				}
				if s.onStarted != nil {
					s.onStarted()
				}
				// Off the start-up path: drop records of killed runs.
				state.List()
			case proto.KindExit:
				exit = new(childExit)
				if err := m.env.Decode(exit); err != nil {
					exit = nil
				}
				rep.exited(exit)
				watch.reported()
			case proto.KindError:
				cerr = new(childError)
				if err := m.env.Decode(cerr); err != nil {
					cerr = &childError{Msg: err.Error(), Status: StatusError}
				}
				watch.reported()
			default:
				closeFDs(m.fds)
			}
		}
	}
	ws, werr := c.Wait()
	if relay != nil {
		relay.finish()
	}
	logf("sandbox ended after %v", time.Since(start).Round(time.Microsecond))
	switch {
	case cerr != nil:
		if cerr.Status == 0 {
			cerr.Status = StatusError
		}
		return cerr.Status, &childFailure{*cerr}
	case exit != nil:
		if exit.Signal > 0 {
			return StatusSignalStart + exit.Signal, nil
		}
		return exit.Code, nil
	case watch.dead != nil:
		return StatusError, atStep("running init", watch.dead)
	case werr != nil:
		return StatusError, atStep("waiting for the sandbox", fmt.Errorf("waiting for the sandbox: %w", werr))
	case ws.Signaled():
		return StatusError, atStep("running init", fmt.Errorf("the sandbox's init was killed by signal %d (%v) before it reported%s",
			int(ws.Signal()), ws.Signal(), initKilledHint(ws.Signal(), s.Seccomp != nil)))
	default:
		return StatusError, atStep("running init", fmt.Errorf("the sandbox's init exited with status %d before it reported%s",
			ws.ExitStatus(), initKilledHint(0, s.Seccomp != nil)))
	}
}

// childNet is init's part of the network setup, or nil.
func (s *Spec) childNet() *netns.Child {
	if s.Net == nil {
		return nil
	}
	return s.Net.ChildPart()
}

// startNetwork starts s's network driver on the namespaces of init (pid).
func startNetwork(s *Spec, h *state.Handle, pid int, logf func(string, ...any)) (driver.ParentDriver, error) {
	cfg := *s.Net
	if s.Verbose {
		cfg.Log = s.Log.Writer("net")
	}
	// In the sandbox's own directory: a killed run's is removed with it.
	cfg.StateDir = h.Path("net")
	cfg.Netstack = netstackCommand
	n, err := driver.Start(cfg, pid)
	if err != nil {
		return nil, err
	}
	logf("started the %s network driver", cfg.Mode)
	return n, nil
}

// childFailure is an error the child reported; Error prints its message
// as the one line the user sees.
type childFailure struct{ e childError }

func (f *childFailure) Error() string {
	if f.e.Step == "" {
		return f.e.Msg
	}
	return f.e.Step + ": " + f.e.Msg
}

// Status returns the exit status the failure stands for.
func (f *childFailure) Status() int { return f.e.Status }

type message struct {
	env proto.Envelope
	fds []int
}

func receive(c *proto.Conn, out chan<- message) {
	defer close(out)
	for {
		env, fds, err := c.Recv()
		if err != nil {
			return
		}
		out <- message{env, fds}
	}
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
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

func wantTTY(mode string) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	return term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))
}

// lockUpper takes an exclusive lock on the persistent upper directory for
// the whole run: the kernel only warns when two overlays share an upper
// (without index=on), and the layer would be corrupted.
func lockUpper(dir string) (func(), error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("--upper: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("--upper %s is in use by another running sandbox; wait for it or use another directory", dir)
		}
		return nil, fmt.Errorf("--upper: locking %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// prepareUpper creates the persistent upper and work directories the plan
// names; the child cannot create them once the host is covered.
func prepareUpper(s *Spec) error {
	if s.Upper == "" {
		return nil
	}
	all := append([]rootfs.Step{s.Plan.Root}, s.Plan.Steps...)
	for _, st := range all {
		if st.Op != rootfs.OpOverlay || st.Upper == "" {
			continue
		}
		for _, d := range []string{st.Upper, st.Work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("--upper: creating %s: %w", d, err)
			}
		}
		if st.Mode != 0 {
			if err := os.Chmod(st.Upper, os.FileMode(st.Mode)); err != nil {
				return fmt.Errorf("--upper: %w", err)
			}
		}
	}
	return nil
}

func currentUmask() int {
	// umask can only be read by setting it; put it back at once.
	m := unix.Umask(0o022)
	unix.Umask(m)
	return m
}

// diagnoseStart turns a failure to create the namespaces into advice.
func diagnoseStart(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w\nthe kernel refused to create a user namespace. Check: sysctl kernel.unprivileged_userns_clone=1 (Debian), "+
			"sysctl user.max_user_namespaces > 0, and on Ubuntu 24.04+ the AppArmor restriction "+
			"(sysctl kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for %s)", err, exePath())
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%w\ntoo many user namespaces: raise sysctl user.max_user_namespaces", err)
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
