package control

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/state"

	"sandbox/journal"
	"sandbox/parent"

	"golang.org/x/sys/unix"
)

// lookupRunning finds a running sandbox by name, or says why not.
func lookupRunning(name string) (state.Entry, error) {
	e, err := state.Lookup(name)
	if err != nil {
		return e, &journal.UsageError{Msg: err.Error()}
	}
	if !e.Live {
		return e, journal.Usagef("sandbox %s has ended%s (sandbox logs %s shows its output; sandbox rm %s removes it)",
			name, exitNote(e.Info), name, name)
	}
	if e.Status != state.Running || !state.SameProcess(e.InitPid, e.InitStart) {
		return e, journal.Usagef("sandbox %s is starting or ending; try again", name)
	}
	return e, nil
}

func exitNote(i state.Info) string {
	if i.ExitStatus == nil {
		return ""
	}
	return fmt.Sprintf(" with status %d", *i.ExitStatus)
}

// ParseSignal reads a signal as TERM, SIGTERM or 15.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, journal.Usagef("signal %s: out of range 1-64", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	if sig, ok := realtime(name); ok {
		return sig, nil
	}
	return 0, journal.Usagef("unknown signal %q (use a name such as TERM, KILL, HUP, INT, USR1, RTMIN+1, or a number)", s)
}

// realtime reads SIGRTMIN[+N] and SIGRTMAX[-N] as kill(1) does: from 34 (the
// kernel's 32 and 33 are the C library's own) to 64.
func realtime(name string) (syscall.Signal, bool) {
	const rtmin, rtmax = 34, 64
	base, sign, rest := 0, 0, ""
	switch {
	case strings.HasPrefix(name, "SIGRTMIN"):
		base, sign, rest = rtmin, '+', name[len("SIGRTMIN"):]
	case strings.HasPrefix(name, "SIGRTMAX"):
		base, sign, rest = rtmax, '-', name[len("SIGRTMAX"):]
	default:
		return 0, false
	}
	n := 0
	if rest != "" {
		if rest[0] != byte(sign) || len(rest) < 2 || len(rest) > 3 || strings.Trim(rest[1:], "0123456789") != "" {
			return 0, false
		}
		n, _ = strconv.Atoi(rest[1:])
	}
	if sign == '-' {
		n = -n
	}
	if sig := base + n; sig >= rtmin && sig <= rtmax {
		return syscall.Signal(sig), true
	}
	return 0, false
}

// Kill sends sig to the command of the running sandbox name.
func Kill(name string, sig syscall.Signal) error {
	e, err := lookupRunning(name)
	if err != nil {
		return err
	}
	return signalPayload(e, sig)
}

// signalPayload signals the sandbox's command through a pidfd taken after
// the pid was found and checked again after, so a reused pid is never hit.
func signalPayload(e state.Entry, sig syscall.Signal) error {
	pid, err := payloadHostPid(e.InitPid, e.PayloadPid)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", e.Name, err)
	}
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("sandbox %s: the command has ended (%w)", e.Name, err)
	}
	defer unix.Close(pfd)
	if again, err := payloadHostPid(e.InitPid, e.PayloadPid); err != nil || again != pid {
		return fmt.Errorf("sandbox %s: the command has ended", e.Name)
	}
	if err := unix.PidfdSendSignal(pfd, sig, nil, 0); err != nil {
		return fmt.Errorf("sandbox %s: sending %v: %w", e.Name, sig, err)
	}
	return nil
}

// payloadHostPid finds the host pid of init's child whose pid inside the
// sandbox is inner. Both must be in a pid namespace below ours, init as its
// PID 1: a record altered by someone cannot point kill at another process.
func payloadHostPid(initPid, inner int) (int, error) {
	if ids, _ := procStatus(initPid); len(ids.nspid) < 2 || ids.nspid[len(ids.nspid)-1] != 1 {
		return 0, errors.New("its init is gone")
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		st, err := procStatus(pid)
		if err == nil && st.ppid == initPid && len(st.nspid) >= 2 && st.nspid[len(st.nspid)-1] == inner {
			return pid, nil
		}
	}
	return 0, errors.New("the command has ended")
}

type status struct {
	ppid  int
	nspid []int
}

// procStatus reads a process's parent and its pids in each pid namespace.
func procStatus(pid int) (status, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return status{}, err
	}
	var st status
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			st.ppid, _ = strconv.Atoi(strings.TrimSpace(v))
		} else if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
			for _, f := range strings.Fields(v) {
				n, _ := strconv.Atoi(f)
				st.nspid = append(st.nspid, n)
			}
		}
	}
	return st, nil
}

// Stop asks the sandbox's command to end (SIGTERM), then kills the whole
// sandbox (SIGKILL to its init) after grace; it returns once it ended. A
// sandbox still starting is given grace to finish starting and then
// stopped the same way; one still starting after that is killed whole
// (its supervisor: init and everything inside go with it). A sandbox that
// had ended already is stopped: note says so (as docker and podman, a
// script's `stop` then succeeds, as when it ends during the stop).
func Stop(name string, grace time.Duration) (note string, err error) {
	e, err := state.Lookup(name)
	if err != nil {
		return "", &journal.UsageError{Msg: err.Error()}
	}
	if !e.Live {
		return fmt.Sprintf("sandbox %s had already ended%s", name, exitNote(e.Info)), nil
	}
	endOnQuit() // it may wait out the grace period
	return "", stop(e, grace)
}

// endOnQuit makes Ctrl-\ (SIGQUIT) end a command that waits (stop, logs
// -f) as it ends other programs, 128+3, instead of with the Go runtime's
// dump of every goroutine (150 lines). Only where it waits: catching a
// signal costs a round trip to the runtime's signal thread.
func endOnQuit() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGQUIT)
	go func() {
		<-c
		os.Exit(128 + int(syscall.SIGQUIT))
	}()
}

func stop(e state.Entry, grace time.Duration) error {
	name := e.Name
	var err error
	start := time.Now()
	for e.Status != state.Running || !state.SameProcess(e.InitPid, e.InitStart) {
		if !e.Running() {
			return nil // it ended meanwhile
		}
		if time.Since(start) >= grace {
			return killSupervisor(e)
		}
		time.Sleep(20 * time.Millisecond)
		if e, err = state.Lookup(name); err != nil || !e.Live {
			return nil
		}
	}
	grace -= time.Since(start)
	if err := signalPayload(e, unix.SIGTERM); err != nil {
		// The command ended meanwhile, and the sandbox is ending with
		// it: a stop that meets an end is no error (before, one in
		// forty such stops exited 125, "the command has ended").
		if waitEnd(e, grace) {
			return nil
		}
		return err
	}
	if waitEnd(e, grace) {
		return nil
	}
	if pfd, err := unix.PidfdOpen(e.InitPid, 0); err == nil {
		if state.SameProcess(e.InitPid, e.InitStart) {
			unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0)
		}
		unix.Close(pfd)
	}
	if !waitEnd(e, 10*time.Second) {
		return fmt.Errorf("sandbox %s did not end within 10 s of SIGKILL (its supervisor is pid %d)", name, e.Pid)
	}
	return nil
}

// killSupervisor ends a sandbox that never finished starting: SIGKILL to
// the `sandbox` process that runs it (checked by its start time, through
// a pidfd), whose death takes init, the helpers and the pid namespace.
func killSupervisor(e state.Entry) error {
	if e.Pid <= 0 || e.PidStart == 0 {
		return fmt.Errorf("sandbox %s is still starting and has not recorded its supervisor yet; try again", e.Name)
	}
	if pfd, err := unix.PidfdOpen(e.Pid, 0); err == nil {
		if state.SameProcess(e.Pid, e.PidStart) {
			unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0)
		}
		unix.Close(pfd)
	}
	if !waitEnd(e, 10*time.Second) {
		return fmt.Errorf("sandbox %s did not end within 10 s of SIGKILL to its supervisor (pid %d)", e.Name, e.Pid)
	}
	state.Lookup(e.Name) // removes the killed run's record
	return nil
}

// waitEnd waits up to d for the sandbox's supervisor to let go of it.
func waitEnd(e state.Entry, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !e.Running() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs copies a detached sandbox's log to w; with follow, until it ends.
func Logs(name string, follow bool, w io.Writer) error {
	e, err := state.Lookup(name)
	if err != nil {
		return &journal.UsageError{Msg: err.Error()}
	}
	if !e.Detached {
		return journal.Usagef("sandbox %s runs in the foreground: its output goes where its `sandbox run` writes (only --detach keeps a log)", name)
	}
	if follow {
		endOnQuit()
	}
	err = copyLog(e.Dir, w, follow, e.Running)
	if errors.Is(err, ErrLogNotRegular) {
		return journal.Usagef("the log of sandbox %s is not a regular file (changed by hand?); sandbox rm %s removes it", name, name)
	}
	if err != nil {
		return fmt.Errorf("the log of %s: %w", name, err)
	}
	return nil
}

// Remove deletes an ended sandbox's record and log.
func Remove(name string) error {
	if err := state.Remove(name); err != nil {
		return &journal.UsageError{Msg: err.Error()}
	}
	return nil
}

// Listed is one sandbox as `sandbox ps` shows it.
type Listed struct {
	state.Info
	// Resource use of its cgroup, when it has one (-1: unknown).
	MemoryBytes int64   `json:"memory_bytes"`
	CPUSeconds  float64 `json:"cpu_seconds"`
}

// List returns the caller's running sandboxes (all: also ended detached
// ones), removing the records of killed runs on the way.
func List(all bool) ([]Listed, error) {
	parent.SweepEphemeral() // best effort: the next run sweeps again
	ents, err := state.List()
	if err != nil {
		return nil, err
	}
	var out []Listed
	for _, e := range ents {
		if !e.Live && !all {
			continue
		}
		l := Listed{Info: e.Info, MemoryBytes: -1, CPUSeconds: -1}
		// The record names the cgroup; only one in the cgroup file
		// system is read (its user may have edited the record).
		if e.Live && strings.HasPrefix(filepath.Clean(e.Cgroup), "/sys/fs/cgroup/") {
			if b, err := cgroupdelegate.ReadInterface(e.Cgroup, "memory.current"); err == nil {
				l.MemoryBytes, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			}
			if usec, err := cgroupdelegate.Key(e.Cgroup, "cpu.stat", "usage_usec"); err == nil {
				l.CPUSeconds = float64(usec) / 1e6
			}
		}
		out = append(out, l)
	}
	return out, nil
}
