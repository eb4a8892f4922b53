package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/oci/mounts"
	"sandbox/oci/process"
)

// initName is argv[0] of the container's init: sandbox-oci re-executed
// from its sealed memfd by create.
const initName = "sandbox-oci-init"

// initReexec (argv[2]) asks the init to wait for its maps and execute
// itself again (see createContainer).
const initReexec = "reexec"

func init() {
	// The init's namespace changes (cgroup unshare) and its final execve
	// must happen on one thread: everything runs on the main one.
	if filepath.Base(os.Args[0]) == initName {
		runtime.LockOSThread()
	}
}

// initMain is the init personality. Until it reports "created" its errors
// go to create over the sync socket; afterwards (start's side) into the
// exec fifo, which start reads.
func initMain() {
	if len(os.Args) != 2 && (len(os.Args) != 3 || os.Args[2] != initReexec) {
		fmt.Fprintf(os.Stderr, "%s: not to be run by hand (create runs it)\n", initName)
		os.Exit(exitRuntime)
	}
	fd, err := strconv.Atoi(os.Args[1])
	if err != nil || fd < 3 {
		fmt.Fprintf(os.Stderr, "%s: bad sync fd %q\n", initName, os.Args[1])
		os.Exit(exitRuntime)
	}
	sync := os.NewFile(uintptr(fd), "sync")
	if len(os.Args) == 3 {
		// First stage: executed before our maps existed, hence without
		// capabilities. Once create says they are written, execute
		// ourselves (the sealed memfd) again as the mapped root.
		var b [1]byte
		for {
			n, err := unix.Read(fd, b[:])
			if err == unix.EINTR {
				continue
			}
			if err != nil || n != 1 {
				os.Exit(1) // create is gone or failed; it cleans up
			}
			break
		}
		err := unix.Exec("/proc/self/exe", []string{initName, os.Args[1]}, []string{})
		_ = writeMsg(sync, syncMsg{Type: "error", Msg: fmt.Sprintf("init: executing itself again once mapped: %v", err)})
		os.Exit(1)
	}
	fifo, err := initCreate(sync)
	if err != nil {
		_ = writeMsg(sync, syncMsg{Type: "error", Msg: err.Error()})
		os.Exit(1)
	}
	sync.Close()
	if err := initStart(fifo); err != nil {
		// start reads this; the container's process never ran.
		_, _ = fifo.f.Write([]byte("E" + oneLine(err.Error())))
		os.Exit(1)
	}
}

// initFifo is what the init keeps for start.
type initFifo struct {
	fd   int // O_PATH fd of the fifo
	f    *os.File
	cfg  *initConfig
	plan *process.Plan
}

func initCreate(sync *os.File) (*initFifo, error) {
	var cfg initConfig
	// Blocks until create has written the maps and placed us in the cgroup.
	if err := json.NewDecoder(io.LimitReader(sync, 64<<20)).Decode(&cfg); err != nil {
		return nil, fmt.Errorf("init: reading its configuration: %w", err)
	}
	s := cfg.Spec
	if s == nil || s.Linux == nil || (s.Process == nil) != (cfg.Plan == nil) || cfg.State == nil {
		return nil, errors.New("init: incomplete configuration")
	}
	// Only stdio and the preserved fds reach the container's process.
	if err := unix.CloseRange(uint(3+cfg.PreserveFDs), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return nil, fmt.Errorf("init: marking fds close-on-exec: %w", err)
	}
	if cfg.UserNS {
		// Act as the container's root (mapped now), not as the unmapped
		// creator: syscall's Setres* change every thread.
		if err := syscall.Setresgid(0, 0, 0); err != nil {
			return nil, fmt.Errorf("init: becoming the container's root group: %w", err)
		}
		if err := syscall.Setresuid(0, 0, 0); err != nil {
			return nil, fmt.Errorf("init: becoming the container's root: %w", err)
		}
	}
	if cfg.Pdeathsig {
		// A change of ids clears it; run's init dies with run.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return nil, fmt.Errorf("init: parent-death signal: %w", err)
		}
	}
	if cfg.NewCgroup {
		// Now that we are in the container's cgroup, it is the root of
		// the new cgroup namespace.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return nil, fmt.Errorf("linux.namespaces (cgroup): %w", err)
		}
	}
	if cfg.NewTime {
		// The init's thread is the thread group leader (locked since
		// package init), whose namespace for children /proc/self/
		// timens_offsets sets; its execve enters it, as every child does.
		if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
			return nil, fmt.Errorf("linux.namespaces (time): %w", err)
		}
		var b strings.Builder
		for _, k := range []string{"monotonic", "boottime"} {
			if o, ok := s.Linux.TimeOffsets[k]; ok {
				fmt.Fprintf(&b, "%s %d %d\n", k, o.Secs, o.Nanosecs)
			}
		}
		if b.Len() > 0 {
			if err := writeProcFile("/proc/self/timens_offsets", b.String()); err != nil {
				return nil, fmt.Errorf("linux.timeOffsets: %w", err)
			}
		}
	}
	if !cfg.NoNewKeyring {
		// A session keyring of the container's own: the caller's keys
		// must not be reachable inside.
		if _, err := unix.KeyctlJoinSessionKeyring("_ses." + cfg.State.ID); err != nil && !errors.Is(err, unix.ENOSYS) {
			return nil, fmt.Errorf("init: new session keyring (--no-new-keyring skips it): %w", err)
		}
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return nil, fmt.Errorf("domainname: %w", err)
		}
	}
	if err := mounts.Setup(s, cfg.Rootfs); err != nil {
		return nil, err
	}
	// Namespaced sysctls (checked by create), through this mount
	// namespace's /proc, which is still the host's: each file acts on
	// the writer's own namespace.
	for k, v := range s.Linux.Sysctl {
		// "a.b.c", or "a/b/c" where a part holds dots (eth0.100).
		p := "/proc/sys/" + k
		if !strings.Contains(k, "/") {
			p = "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		}
		if err := writeProcFile(p, v); err != nil {
			return nil, fmt.Errorf("linux.sysctl.%s: %w", k, err)
		}
	}
	// create runs prestart and createRuntime hooks now.
	if err := writeMsg(sync, syncMsg{Type: "hooks"}); err != nil {
		return nil, err
	}
	var reply syncMsg
	if err := json.NewDecoder(io.LimitReader(sync, 4096)).Decode(&reply); err != nil || reply.Type != "ok" {
		return nil, errors.New("init: create did not resume it")
	}
	if s.Hooks != nil {
		if err := runHooks("createContainer", s.Hooks.CreateContainer, cfg.State); err != nil {
			return nil, err
		}
	}
	if err := mounts.Pivot(cfg.Rootfs); err != nil {
		return nil, err
	}
	if err := mounts.Finish(s); err != nil {
		return nil, err
	}
	if cfg.ConsoleFD >= 0 {
		if err := process.Console(fmt.Sprintf("/proc/self/fd/%d", cfg.ConsoleFD)); err != nil {
			return nil, fmt.Errorf("--console-socket: %w", err)
		}
		unix.Close(cfg.ConsoleFD)
	}
	if s.Process != nil {
		if err := findExecutable(s.Process); err != nil {
			return nil, err
		}
	}
	if err := writeMsg(sync, syncMsg{Type: "created"}); err != nil {
		return nil, err
	}
	return &initFifo{fd: cfg.FifoFD, cfg: &cfg, plan: cfg.Plan}, nil
}

// initStart waits for start, runs the startContainer hooks and becomes
// the container's process.
func initStart(fi *initFifo) error {
	// Blocks until start opens the fifo for reading.
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fi.fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Exit(1) // nowhere to report: start sees the init gone
	}
	fi.f = os.NewFile(uintptr(fd), "exec.fifo")
	unix.Close(fi.fd)
	s := fi.cfg.Spec
	if s.Hooks != nil && len(s.Hooks.StartContainer) > 0 {
		st := *fi.cfg.State
		st.Status = specs.StateCreated
		if err := runHooks("startContainer", s.Hooks.StartContainer, &st); err != nil {
			return err
		}
	}
	if fi.plan == nil {
		return errors.New("process: not set in config.json: there is nothing to start")
	}
	if _, err := fi.f.Write([]byte("0")); err != nil {
		return err
	}
	// On success the fifo closes with the execve (close-on-exec): start
	// reads "0" then EOF.
	return fi.plan.Exec()
}

func writeProcFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// findExecutable fails create, as runc does, when process.args[0] is not
// in the container (looked up in process.env's PATH, from process.cwd).
func findExecutable(p *specs.Process) error {
	if len(p.Args) == 0 {
		return errors.New("process.args: empty")
	}
	name := p.Args[0]
	isExec := func(path string) bool {
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.Cwd, path)
		}
		st, err := os.Stat(path)
		return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
	}
	if strings.Contains(name, "/") {
		if isExec(name) {
			return nil
		}
		return fmt.Errorf("process.args[0]: %q: no such executable in the container", name)
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range p.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		if isExec(filepath.Join(dir, name)) {
			return nil
		}
	}
	return fmt.Errorf("process.args[0]: %q: executable file not found in $PATH (%s) of the container", name, path)
}
