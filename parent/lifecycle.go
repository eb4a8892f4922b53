package parent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"sandbox/state"

	"sandbox/internal/callersig"
	"sandbox/internal/wire"
	"sandbox/spec"

	"golang.org/x/sys/unix"
)

// DetachedEnv marks the background supervisor of `run --detach`: its value
// is the sandbox's name; fd 3 holds the name's lock, fd 4 the pipe on which
// it reports that the command started (or why not).
const DetachedEnv = "_SANDBOX_DETACHED"

const (
	detachedLockFD  = 3
	detachedReadyFD = 4
)

// umaskEnv carries the caller's umask to the background supervisor, whose
// own was already set by KeepOwnerBits.
const umaskEnv = "_SANDBOX_UMASK"

// callerUmask is the umask sandbox was started with: the payload's. -1
// until KeepOwnerBits has read it.
var callerUmask = -1

// KeepOwnerBits keeps the owner's permission bits of every file and
// socket sandbox itself makes (records, locks, the exec socket, the
// holder's, caches), whatever the caller's umask: a umask of 0700 made a
// record whose lock nobody could open, and a sandbox no command could
// reach. The caller's group and other bits still apply; the payload gets
// the caller's umask unchanged.
func KeepOwnerBits() {
	m := unix.Umask(0)
	if v, ok := os.LookupEnv(umaskEnv); ok {
		os.Unsetenv(umaskEnv)
		if n, err := strconv.ParseUint(v, 8, 32); err == nil && n <= 0o777 && os.Getenv(DetachedEnv) != "" {
			m = int(n)
		}
	}
	callerUmask = m
	unix.Umask(m & 0o077)
}

// detachedReport is what the background supervisor tells the foreground.
type detachedReport struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Run starts the sandbox described by s. In the foreground it waits for it
// and returns the exit status for `sandbox run`; with --detach it returns
// 0 once the command runs in the background. Errors of the sandbox itself
// are printed to stderr by the caller and mean status 125.
func Run(s *spec.Spec) (int, error) {
	defer DiscardEarly() // one the run did not take
	switch {
	case s.Detached:
		return runDetached(s)
	case s.Detach:
		return detach(s)
	}
	return run(s)
}

// describe fills the sandbox's record with what Prepare decided.
func describe(s *spec.Spec, i *state.Info) {
	i.Name, i.Pid, i.Command, i.Created, i.Hostname = s.Name, os.Getpid(), s.Args, s.Start, s.Hostname
	i.PidStart, _ = state.StartTime(i.Pid)
	i.Root = "host"
	if s.Rootfs != "" {
		i.Root = s.Rootfs
	}
	i.Upper, i.Net, i.Detached = s.Upper, string(s.NetMode), s.Detached
}

// Detach claims the name, starts the same command line again as a
// background supervisor (new session, output to the sandbox's log) and
// waits until it reports that the command started.
func detach(s *spec.Spec) (int, error) {
	lg := s.EnsureLog()
	for _, w := range s.Warnings {
		lg.Warn(w)
	}
	// Interrupted while it starts (Ctrl-C, a CI job's cancel), the
	// sandbox must not run on behind a failure status: the signal goes to
	// the supervisor, which passes it on to the command once that runs,
	// and we say what became of it. Before, we died of it (130) and the
	// sandbox ran on. Caught from here, before anything is started; the
	// signals the caller ignores stay ignored (nohup).
	var stopping []os.Signal
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			stopping = append(stopping, sig)
		}
	}
	sigs := make(chan os.Signal, 1)
	callersig.Notify(sigs, stopping...)
	defer callersig.Stop(sigs)
	var interrupted atomic.Int32
	var supervisor atomic.Pointer[os.Process]
	go func() {
		for sig := range sigs {
			interrupted.Store(int32(sig.(syscall.Signal)))
			if p := supervisor.Load(); p != nil {
				p.Signal(sig)
			}
		}
	}()
	h, err := state.Claim(s.Name)
	if err != nil {
		return wire.StatusError, err
	}
	fail := func(err error) (int, error) {
		h.Finish(wire.StatusError)
		return wire.StatusError, err
	}
	logf, err := os.OpenFile(h.Path(state.LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fail(fmt.Errorf("creating the log: %w", err))
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), DetachedEnv+"="+s.Name, fmt.Sprintf("%s=%o", umaskEnv, currentUmask()))
	cmd.ExtraFiles = []*os.File{h.LockFile(), w} // fds 3 and 4
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fail(fmt.Errorf("starting the background supervisor: %w", err))
	}
	supervisor.Store(cmd.Process)
	if sig := interrupted.Load(); sig != 0 {
		cmd.Process.Signal(syscall.Signal(sig)) // came before it existed
	}
	// From here the supervisor owns the name (it shares our lock).
	var rep detachedReport
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		ws, _ := cmd.Process.Wait()
		// Ended (killed by `sandbox stop` while starting, or failed)
		// without a word: its record, which we still hold, is ended
		// here with its log, which says what it said.
		describe(s, &h.Info)
		h.Info.Pid, h.Info.PidStart, h.Info.Detached = cmd.Process.Pid, 0, true
		h.Finish(wire.StatusError)
		if sig := syscall.Signal(interrupted.Load()); sig != 0 {
			return wire.StatusSignalStart + int(sig), fmt.Errorf("interrupted (%v): sandbox %s ended before its command started", sig, s.Name)
		}
		return wire.StatusError, fmt.Errorf("the background supervisor of %s ended (%v) before its command started; sandbox logs %s shows its output", s.Name, ws, s.Name)
	}
	cmd.Process.Release()
	if rep.Error != "" {
		return rep.Status, errors.New(rep.Error)
	}
	if sig := syscall.Signal(interrupted.Load()); sig != 0 {
		// Not the name: the caller asked to stop. The command got the
		// signal (and may have caught it).
		return wire.StatusSignalStart + int(sig), fmt.Errorf("interrupted (%v) while sandbox %s started: the signal was passed on to its command (sandbox ps shows whether it still runs; sandbox stop %s ends it)", sig, s.Name, s.Name)
	}
	if _, err := fmt.Println(s.Name); err != nil {
		// A caller reading the name ($(sandbox run -d …)) would get none:
		// said, with what runs.
		return wire.StatusError, fmt.Errorf("sandbox %s runs in the background, but its name could not be printed (%w): sandbox stop %s ends it",
			s.Name, err, s.Name)
	}
	return 0, nil
}

// runDetached is the background supervisor: a run whose record outlives it
// and that reports its start on the inherited pipe.
func runDetached(s *spec.Spec) (int, error) {
	ready := os.NewFile(detachedReadyFD, "ready")
	unix.CloseOnExec(detachedReadyFD)
	report := func(r detachedReport) {
		if ready != nil {
			json.NewEncoder(ready).Encode(r)
			ready.Close()
			ready = nil
		}
	}
	h, err := state.Adopt(s.Name, detachedLockFD)
	if err != nil {
		report(detachedReport{Status: wire.StatusError, Error: err.Error()})
		return wire.StatusError, err
	}
	// The command's output goes to the log through a relay that bounds
	// it; without one (it could not start), straight to the log,
	// unbounded, as said.
	if relay, err := startLogRelay(h.Dir, LogMax); err != nil {
		s.EnsureLog().Warn(fmt.Sprintf("the log is not rotated: %v", err))
	} else {
		s.Output = relay.w
		defer relay.stop()
	}
	h.Info.Detached = true
	s.State = h
	s.OnStarted = func() { report(detachedReport{}) }
	status, err := run(s)
	if err != nil {
		report(detachedReport{Status: status, Error: err.Error()})
	} else {
		// Ended before it reported a start: cannot happen but for a
		// payload that exits at once; its status is the report.
		report(detachedReport{Status: status, Error: fmt.Sprintf("the command exited with status %d at once", status)})
	}
	return status, err
}
