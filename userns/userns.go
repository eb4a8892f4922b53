// Package userns starts a process in new namespaces, its user namespace
// unmapped until the caller writes the id maps, and keeps full capabilities
// in that namespace across the exec (ambient capabilities), so the child
// needs no second re-exec to become root inside.
package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Namespaces are the clone flags of a sandbox; Net is added unless the
// host's network is shared.
const (
	Namespaces = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
		syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC
	Net = syscall.CLONE_NEWNET
)

// Options describe the child.
type Options struct {
	Path       string
	Args       []string
	Env        []string
	Cloneflags uintptr
	LastCap    int // highest capability of this kernel: all of 0..LastCap are kept
	Stdin      *os.File
	Stdout     *os.File
	Stderr     *os.File
	ExtraFiles []*os.File
	// Cgroup is a cgroup v2 directory the child is born in (clone3 with
	// CLONE_INTO_CGROUP), so that nothing it ever starts runs outside;
	// where the kernel refuses that, the child is moved there at once,
	// before it is sent anything. nil: the caller's cgroup.
	Cgroup *os.File
	// Stage, when set, has init created by init's stage (see Stage),
	// inside a holder's user namespace or beside this process; the maps
	// it was given are then written by the time Start returns.
	Stage *Stage
}

// Stage is what init's stage (cmd/sandbox-stage, a C program) needs: its
// executable (a file this process has open, e.g. a sealed memfd), init's
// (Options.Path names the same file) open for the stage's child to
// execute, the holder's namespace, checked by the caller
// (holder.Verify), init's maps as /proc/PID/uid_map and gid_map take
// them, and the holder's maps, which the stage checks again once it has
// joined. Without a holder (NS nil) the stage creates init from this
// process's own namespace, with its credentials, and writes maps this
// process could write itself (one id, its own; any, as root); given none
// (UIDMap and GIDMap empty), it leaves them to the caller (newuidmap and
// newgidmap), and the caller's Start returns before they are written.
type Stage struct {
	Exe, Init                  *os.File
	NS                         *os.File
	UIDMap, GIDMap             string
	HolderUIDMap, HolderGIDMap string
	// DenySetgroups: without a holder, and without CAP_SETGID here, the
	// stage denies setgroups(2) in init's namespace before it writes the
	// gid map, as the kernel requires of such a writer (idmap.Apply does
	// the same).
	DenySetgroups bool
	// Tap is a persistent tap for the stage to make in init's network
	// namespace once the maps are written (slirp4netns' tap, so that it
	// can start before init runs), or "".
	Tap string
}

// The stage's environment (cmd/sandbox-stage/stage.c reads the same names;
// its child removes them all before it executes init).
const (
	StageEnv        = "SANDBOX_STAGE" // "NSFD REPORTFD INITFD CLONEFLAGS LASTCAP"
	stageUIDMap     = "SANDBOX_STAGE_UIDMAP"
	stageGIDMap     = "SANDBOX_STAGE_GIDMAP"
	stageHolderUIDs = "SANDBOX_STAGE_HOLDER_UIDMAP"
	stageHolderGIDs = "SANDBOX_STAGE_HOLDER_GIDMAP"
	stageTap        = "SANDBOX_STAGE_TAP"
	stageSetgroups  = "SANDBOX_STAGE_SETGROUPS"
)

// WritesMaps says whether the stage s (nil: none) writes init's maps; one
// given none leaves them to the caller.
func (s *Stage) WritesMaps() bool { return s != nil && (s.UIDMap != "" || s.GIDMap != "") }

// StageArg0 is argv[0] of the stage; init's argv follows it.
const StageArg0 = "sandbox-stage"

// Child is a started process.
type Child struct {
	Pid int
	// CgroupVia says how the child entered Options.Cgroup: "clone3" or
	// "cgroup.procs" ("" without one).
	CgroupVia string
	done      chan result
}

type result struct {
	status syscall.WaitStatus
	err    error
}

// Start starts the child from a goroutine locked to its OS thread for the
// child's whole life: Pdeathsig fires when the creating *thread* exits, and
// the Go runtime may retire an unlocked thread at any time.
func Start(o Options) (*Child, error) {
	if o.Cgroup == nil {
		return start(o, false)
	}
	c, err := start(o, true)
	if err == nil {
		c.CgroupVia = "clone3"
		return c, nil
	}
	if !retryOutsideCgroup(err) {
		return nil, err
	}
	// Old kernel, or a cgroup clone3 refuses: start outside, move in (a
	// failure to create the namespaces then recurs, with its own error).
	if c, err = start(o, false); err != nil {
		return nil, err
	}
	if err := JoinCgroup(o.Cgroup, c.Pid); err != nil {
		syscall.Kill(c.Pid, syscall.SIGKILL)
		c.Wait()
		return nil, err
	}
	c.CgroupVia = "cgroup.procs"
	return c, nil
}

// retryOutsideCgroup says whether clone3 may have failed for CLONE_INTO_CGROUP:
// no clone3 (ENOSYS), a pre-5.7 kernel (E2BIG), a cgroup that is not a leaf
// or not a domain (EBUSY, EOPNOTSUPP), or no permission over it (EACCES,
// EPERM, also what a refused user namespace gives).
func retryOutsideCgroup(err error) bool {
	for _, e := range []error{syscall.ENOSYS, syscall.E2BIG, syscall.EBUSY, syscall.EOPNOTSUPP, syscall.EACCES, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// JoinCgroup moves pid into the cgroup directory dir (a child started
// before its cgroup was made: here, or parent.StartEarly).
func JoinCgroup(dir *os.File, pid int) error {
	fd, err := unix.Openat(int(dir.Fd()), "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		_, err = unix.Write(fd, []byte(strconv.Itoa(pid)))
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("moving the sandbox (pid %d) into its cgroup %s: %w", pid, dir.Name(), err)
	}
	return nil
}

func start(o Options, intoCgroup bool) (*Child, error) {
	if o.Stage != nil {
		return startStaged(o, intoCgroup)
	}
	caps := make([]uintptr, 0, o.LastCap+1)
	for c := 0; c <= o.LastCap; c++ {
		caps = append(caps, uintptr(c))
	}
	cmd := &exec.Cmd{
		Path:       o.Path,
		Args:       o.Args,
		Env:        o.Env,
		Stdin:      o.Stdin,
		Stdout:     o.Stdout,
		Stderr:     o.Stderr,
		ExtraFiles: o.ExtraFiles,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: o.Cloneflags,
			// A new session: the sandbox has no controlling terminal, so
			// TIOCSTI into the caller's terminal is refused.
			Setsid:      true,
			Pdeathsig:   syscall.SIGKILL,
			AmbientCaps: caps,
		},
	}
	if intoCgroup {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(o.Cgroup.Fd())
	}
	started := make(chan error, 1)
	c := &Child{done: make(chan result, 1)}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, after the
		// child has been waited for.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.Pid = cmd.Process.Pid
		started <- nil
		err := cmd.Wait()
		if _, ok := err.(*exec.ExitError); ok {
			err = nil
		}
		var ws syscall.WaitStatus
		if cmd.ProcessState != nil {
			ws = cmd.ProcessState.Sys().(syscall.WaitStatus)
		}
		c.done <- result{ws, err}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s in new namespaces: %w", o.Path, err)
	}
	return c, nil
}

// Wait waits for the child and returns its wait status.
func (c *Child) Wait() (syscall.WaitStatus, error) {
	r := <-c.done
	if r.err != nil {
		return 0, r.err
	}
	return r.status, nil
}

// stageTimeout bounds how long the stage may take to report.
const stageTimeout = 10 * time.Second

// startStaged starts the stage (o.Stage.Exe) outside any new namespace
// (but in the cgroup): it joins o.Stage.NS if set, creates init's process
// in the namespaces of o.Cloneflags as our own child (CLONE_PARENT), which
// executes init (o.Stage.Init, with o.Args and o.Env), writes init's maps,
// reports init's pid on a pipe once init's exec succeeded and exits. Init
// is then waited for like a child started directly, from the same locked
// thread: init's Pdeathsig, which the stage sets, fires when that thread
// exits.
func startStaged(o Options, intoCgroup bool) (*Child, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("a pipe for the stage of %s: %w", o.Path, err)
	}
	defer r.Close()
	files := append([]*os.File{}, o.ExtraFiles...)
	nsFD := "-" // no holder
	if o.Stage.NS != nil {
		nsFD = strconv.Itoa(3 + len(files))
		files = append(files, o.Stage.NS)
	}
	repFD := 3 + len(files)
	files = append(files, w, o.Stage.Init)
	// The stage is executed by its path in /proc/self/fd: its fd must be
	// one the child's fd shuffle leaves alone (it moves fds to just above
	// the highest one it is given).
	top := 2
	for _, f := range append([]*os.File{o.Stdin, o.Stdout, o.Stderr}, files...) {
		if f != nil {
			top = max(top, int(f.Fd()))
		}
	}
	exe, err := unix.FcntlInt(o.Stage.Exe.Fd(), unix.F_DUPFD_CLOEXEC, top+len(files)+6)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("moving the stage's fd above the child's: %w", err)
	}
	defer unix.Close(exe) // once the stage has started: the child has its own
	env := append(append([]string{}, o.Env...),
		fmt.Sprintf("%s=%s %d %d %d %d", StageEnv, nsFD, repFD, repFD+1, o.Cloneflags, o.LastCap),
		stageUIDMap+"="+o.Stage.UIDMap, stageGIDMap+"="+o.Stage.GIDMap)
	if o.Stage.NS != nil {
		env = append(env, stageHolderUIDs+"="+o.Stage.HolderUIDMap, stageHolderGIDs+"="+o.Stage.HolderGIDMap)
	}
	if o.Stage.NS == nil && o.Stage.DenySetgroups {
		env = append(env, stageSetgroups+"=deny")
	}
	if o.Stage.Tap != "" {
		env = append(env, stageTap+"="+o.Stage.Tap)
	}
	// syscall.ForkExec, not os/exec: a process's first os.StartProcess
	// (and os.FindProcess) probes pidfd support with a clone and a wait of
	// its own, ~1 ms of every run here (docs/architecture.md), for an
	// os.Process this needs nothing of: the stage and init are waited for
	// by pid, from this thread.
	all := append([]*os.File{o.Stdin, o.Stdout, o.Stderr}, files...)
	fds := make([]uintptr, len(all))
	for i, f := range all {
		if f == nil { // as os/exec: an absent stdio is /dev/null
			if f, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				w.Close()
				return nil, fmt.Errorf("starting %s by its stage: %w", o.Path, err)
			}
			defer f.Close()
			all[i] = f
		}
		fds[i] = all[i].Fd()
	}
	sys := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	// No clone flags and no ambient capabilities: the stage makes the
	// namespaces, and init gets its capabilities there.
	if intoCgroup {
		sys.UseCgroupFD, sys.CgroupFD = true, int(o.Cgroup.Fd())
	}
	path, argv := fmt.Sprintf("/proc/self/fd/%d", exe), append([]string{StageArg0}, o.Args...)
	started := make(chan error, 1)
	c := &Child{done: make(chan result, 1)}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, after init
		// has been waited for.
		stage, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: fds, Sys: sys})
		runtime.KeepAlive(all) // their fds were passed by number
		w.Close()
		if err != nil {
			started <- err
			return
		}
		pid, rerr := readStage(r)
		if rerr != nil {
			// A stage that reported has exited already; one that did not
			// (stuck) must not linger.
			syscall.Kill(stage, syscall.SIGKILL)
		}
		wait4(stage) // the stage exits once it has reported
		if rerr != nil {
			if pid > 0 {
				// Killed by the stage: ours to reap.
				wait4(pid)
			}
			started <- rerr
			return
		}
		c.Pid = pid
		started <- nil
		ws, err := wait4(pid)
		c.done <- result{ws, err}
	}()
	if err := <-started; err != nil {
		where := "by its stage"
		if o.Stage.NS != nil {
			where = "inside the holder's"
		}
		return nil, fmt.Errorf("starting %s in new namespaces %s: %w", o.Path, where, err)
	}
	return c, nil
}

// wait4 waits for the child pid to end, through interruptions.
func wait4(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			if err != nil {
				return 0, fmt.Errorf("waiting for pid %d: %w", pid, err)
			}
			return ws, nil
		}
	}
}

// readStage reads the stage's report, "ok PID" or "fail PID what: errno N"
// (PID 0 when nothing was started), bounded in size and time.
func readStage(r *os.File) (int, error) {
	r.SetReadDeadline(time.Now().Add(stageTimeout))
	buf := make([]byte, 1024)
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil || strings.Contains(string(buf[:n]), "\n") {
			break
		}
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 {
		if n == 0 {
			return 0, errors.New("its stage did not report")
		}
		return 0, fmt.Errorf("its stage reported %q", line)
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil || pid < 0 {
		return 0, fmt.Errorf("its stage reported %q", line)
	}
	switch {
	case f[0] == "ok" && pid > 0:
		return pid, nil
	case f[0] == "fail" && len(f) == 3:
		return pid, stageError(f[2])
	}
	return 0, fmt.Errorf("its stage reported %q", line)
}

// stageError is the stage's "what: errno N" as what: the errno's text (the
// stage has no C library to say it).
func stageError(why string) error {
	what, n, ok := strings.Cut(why, ": errno ")
	if e, err := strconv.Atoi(n); ok && err == nil && e > 0 && e < 4096 {
		return fmt.Errorf("%s: %w", what, syscall.Errno(e))
	}
	return errors.New(why)
}
