package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/idmap"
	"sandbox/internal/memexec"
	"sandbox/oci/cgroups"
	"sandbox/oci/config"
	"sandbox/oci/mounts"
	"sandbox/oci/process"
	"sandbox/oci/state"
)

// createFlags are create's flags, which run shares.
type createFlags struct {
	Bundle        string `short:"b" default:"." help:"The bundle: the directory of config.json." placeholder:"DIR"`
	PidFile       string `name:"pid-file" help:"Write the container process's host pid here." placeholder:"FILE"`
	ConsoleSocket string `name:"console-socket" help:"Unix socket that receives the pty master (process.terminal)." placeholder:"PATH"`
	PreserveFds   int    `name:"preserve-fds" help:"Pass fds 3..3+N-1 on to the container's process." placeholder:"N"`
	NoPivot       bool   `name:"no-pivot" help:"Accepted for runc compatibility; the root is still changed with pivot_root."`
	NoNewKeyring  bool   `name:"no-new-keyring" help:"Keep the caller's session keyring (no new one for the container)."`
}

// opts is the flags as createContainer takes them, for container id.
func (f *createFlags) opts(id string) createOpts {
	return createOpts{
		bundle: f.Bundle, pidFile: f.PidFile, consoleSocket: f.ConsoleSocket, preserveFds: f.PreserveFds,
		noPivot: f.NoPivot, noNewKeyring: f.NoNewKeyring, id: id,
	}
}

type createCmd struct {
	createFlags `embed:""`
	ID          string `arg:"" help:"Container id."`
}

func (c *createCmd) Run(g *globals) error {
	_, err := createContainer(g, c.opts(c.ID))
	return err
}

type createOpts struct {
	bundle, pidFile, consoleSocket string
	preserveFds                    int
	noPivot, noNewKeyring          bool
	id                             string
	// foreground: `run` without -d; the init dies with the runtime.
	foreground bool
}

// created is a container whose init waits for start.
type created struct {
	c      *state.Container
	spec   *specs.Spec
	cmd    *exec.Cmd // the init, our child
	master *os.File  // the pty master, when run (in the foreground) holds the terminal itself
}

// initConfig is what create hands the init once its maps are written and
// it is in its cgroup (one JSON document over the sync socket).
type initConfig struct {
	Spec         *specs.Spec   `json:"spec"`
	Plan         *process.Plan `json:"plan"`
	Rootfs       string        `json:"rootfs"`
	State        *specs.State  `json:"state"` // for the hooks run inside
	FifoFD       int           `json:"fifo_fd"`
	ConsoleFD    int           `json:"console_fd"` // -1: no terminal
	PreserveFDs  int           `json:"preserve_fds"`
	NoNewKeyring bool          `json:"no_new_keyring"`
	UserNS       bool          `json:"userns"`     // become the container's root once mapped
	NewCgroup    bool          `json:"new_cgroup"` // unshare the cgroup namespace once in the cgroup
	NewTime      bool          `json:"new_time"`   // unshare a time namespace (linux.timeOffsets)
	Pdeathsig    bool          `json:"pdeathsig"`  // die with the runtime (run without -d)
}

// syncMsg is one message between create and the init.
type syncMsg struct {
	Type string `json:"type"` // init: hooks, created, error; create: ok
	Msg  string `json:"msg,omitempty"`
}

// syncWait bounds each step of the init as create waits for it (mounts,
// hooks with their own timeouts).
const syncWait = 2 * time.Minute

func createContainer(g *globals, o createOpts) (cr *created, err error) {
	root, err := g.stateRoot()
	if err != nil {
		return nil, err
	}
	if err := state.CheckID(o.id); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.bundle)
	if err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	spec, err := config.Load(bundle)
	if err != nil {
		return nil, err
	}
	isRootless := rootless()
	// A user namespace is required when we are not uid 0 (runc's rule);
	// uid 0 in someone's user namespace (rootless podman) may use theirs,
	// and is rootless for the cgroups only.
	nsp, err := planNamespaces(spec, os.Geteuid() != 0)
	if err != nil {
		return nil, err
	}
	if err := checkSysctl(spec, nsp); err != nil {
		return nil, err
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, errors.New("root.path: missing")
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if err := mounts.Check(spec, rootfs); err != nil {
		return nil, err
	}
	// process is optional until start (runtime-spec): without it the
	// container is made, and start is the error.
	var plan *process.Plan
	terminal := false
	if spec.Process != nil {
		if plan, err = process.Prepare(spec.Process, spec); err != nil {
			return nil, err
		}
		terminal = spec.Process.Terminal
	}
	var own *ownConsole
	if terminal && o.consoleSocket == "" {
		if !o.foreground {
			return nil, errors.New("process.terminal: needs --console-socket (the pty master goes there)")
		}
		// run in the foreground is the terminal's other end itself.
		if own, err = newOwnConsole(); err != nil {
			return nil, err
		}
		defer own.close()
		o.consoleSocket = own.path
	}
	if !terminal && o.consoleSocket != "" {
		return nil, errors.New("--console-socket: given but process.terminal is false")
	}
	if o.preserveFds < 0 || o.preserveFds > 1024 {
		return nil, fmt.Errorf("--preserve-fds %d: want 0..1024", o.preserveFds)
	}
	if o.noPivot {
		logDebugf("--no-pivot: ignored, the root is changed with pivot_root")
	}
	cg, err := cgroups.New(o.id, spec.Linux.CgroupsPath, spec.Linux.Resources,
		cgroups.Options{Systemd: g.SystemdCgroup, Rootless: isRootless})
	if err != nil {
		return nil, err
	}
	if cg.Skipped != "" {
		logInfof("container %s: no cgroup of its own, linux.resources not applied: %s", o.id, cg.Skipped)
	}

	c, err := state.Create(root, o.id)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	cgApplied := false
	defer func() {
		if err == nil {
			return
		}
		if cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Kill()
			waitBounded(cmd, 5*time.Second)
		}
		if cgApplied {
			if derr := cg.Destroy(); derr != nil {
				logWarn("container %s: removing its cgroup: %v", o.id, derr)
			}
		}
		_ = c.Remove()
	}()
	c.Bundle, c.Annotations, c.Rootless, c.Cgroup = bundle, spec.Annotations, isRootless, cg
	specData, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := state.WriteAtomic(filepath.Join(c.Dir, state.ConfigFile), specData, 0o600); err != nil {
		return nil, err
	}

	// The fifo the init blocks on until start. Its owner is the
	// container's root, so that the init, mapped, may open it for writing.
	fifo := filepath.Join(c.Dir, state.FifoFile)
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return nil, fmt.Errorf("exec fifo: %w", err)
	}
	if nsp.has[specs.UserNamespace] && os.Geteuid() == 0 {
		uid, gid := hostID(spec.Linux.UIDMappings, 0), hostID(spec.Linux.GIDMappings, 0)
		if err := os.Chown(fifo, int(uid), int(gid)); err != nil {
			return nil, fmt.Errorf("exec fifo: %w", err)
		}
	}
	// The init gets the fifo and the console socket as O_PATH fds: it
	// cannot walk our state directory (0700) once mapped, nor reach host
	// paths once pivoted.
	fifoPath, err := openPath(fifo)
	if err != nil {
		return nil, fmt.Errorf("exec fifo: %w", err)
	}
	defer fifoPath.Close()
	var consolePath *os.File
	var relayed <-chan error
	if o.consoleSocket != "" {
		var relay *os.File
		if relay, relayed, err = consoleRelay(o.consoleSocket, c.Dir, nsp.has[specs.UserNamespace] && os.Geteuid() == 0, spec); err != nil {
			return nil, err
		}
		consolePath = relay
		defer consolePath.Close()
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	parentEnd, childEnd := os.NewFile(uintptr(pair[0]), "sync"), os.NewFile(uintptr(pair[1]), "sync-init")
	defer childEnd.Close()
	conn, err := net.FileConn(parentEnd)
	parentEnd.Close()
	if err != nil {
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	defer conn.Close()

	// fds of the child: 0-2 ours, 3..3+N-1 preserved, then the init's own.
	var files []*os.File
	for i := 0; i < o.preserveFds; i++ {
		fd := 3 + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("--preserve-fds %d: fd %d is not open", o.preserveFds, fd)
		}
		files = append(files, os.NewFile(uintptr(fd), "preserved-"+strconv.Itoa(fd)))
	}
	base := 3 + o.preserveFds
	cfg := &initConfig{
		Spec: spec, Plan: plan, Rootfs: rootfs,
		FifoFD: base + 1, ConsoleFD: -1, PreserveFDs: o.preserveFds,
		NoNewKeyring: o.noNewKeyring, UserNS: nsp.has[specs.UserNamespace],
		NewCgroup: nsp.newCgroup, NewTime: nsp.newTime, Pdeathsig: o.foreground,
	}
	files = append(files, childEnd, fifoPath)
	if consolePath != nil {
		cfg.ConsoleFD = base + 2
		files = append(files, consolePath)
	}
	// The init runs from a sealed memfd copy of this executable, so that
	// nothing inside can reach a host binary of ours through
	// /proc/PID/exe (and write it: CVE-2019-5736).
	self, err := memexec.Self(initName)
	if err != nil {
		return nil, fmt.Errorf("init binary: %w", err)
	}
	defer self.Close()
	selfPath, err := self.PathAbove(2*(3+len(files)) + 10)
	if err != nil {
		return nil, fmt.Errorf("init binary: %w", err)
	}
	cmd = &exec.Cmd{
		Path:       selfPath,
		Args:       []string{initName, strconv.Itoa(base)},
		Env:        []string{},
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: nsp.clone,
		},
	}
	if o.foreground {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	// The init must execute as the container's root, mapped, or the
	// kernel gives it no capabilities in its namespace. With CAP_SETUID
	// (root, or uid 0 in a rootless engine's namespace), Go's fork writes
	// the maps itself before the exec and becomes uid 0 inside. Without,
	// newuidmap writes them once the init runs, and the init executes
	// itself again, now mapped (the caller's uid must be root inside).
	userns := nsp.has[specs.UserNamespace]
	direct := idmap.Privileged()
	if userns && direct {
		cmd.SysProcAttr.UidMappings = sysMaps(spec.Linux.UIDMappings)
		cmd.SysProcAttr.GidMappings = sysMaps(spec.Linux.GIDMappings)
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	} else if userns {
		if !mapsTo(spec.Linux.UIDMappings, uint32(os.Geteuid()), 0) {
			return nil, fmt.Errorf("linux.uidMappings: a rootless runtime needs your uid %d mapped to the container's uid 0", os.Geteuid())
		}
		cmd.Args = append(cmd.Args, initReexec)
	}
	if err := startOn(nsp, cmd.Start); err != nil {
		cmd = nil
		return nil, fmt.Errorf("starting the container's init: %w", err)
	}
	childEnd.Close()
	pid := cmd.Process.Pid
	c.Pid = pid
	if c.PidStart, err = state.StartTime(pid); err != nil {
		return nil, fmt.Errorf("container's init: %w", err)
	}
	if err := c.Save(); err != nil {
		return nil, err
	}

	if userns && !direct {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := idmap.Apply(ctx, pid, idMaps(spec.Linux.UIDMappings), idMaps(spec.Linux.GIDMappings), true)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("linux.uidMappings/gidMappings: %w", err)
		}
		// The init's first stage waits for this byte, then executes itself.
		if _, err := conn.Write([]byte{'M'}); err != nil {
			return nil, initError(cmd, fmt.Errorf("releasing the init: %w", err))
		}
	}
	cgApplied = true
	if err := cg.Apply(pid, spec.Linux.Resources); err != nil {
		return nil, err
	}

	cfg.State = hookState(o.id, bundle, pid, specs.StateCreating, spec.Annotations)
	if err := writeMsg(conn, cfg); err != nil {
		return nil, initError(cmd, fmt.Errorf("sending the init its configuration: %w", err))
	}
	dec := json.NewDecoder(io.LimitReader(conn, 1<<20))
	for {
		_ = conn.SetReadDeadline(time.Now().Add(syncWait))
		var m syncMsg
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, fmt.Errorf("the container's init did not report within %v", syncWait)
			}
			return nil, initError(cmd, errors.New("the container's init ended before it was created"))
		}
		switch m.Type {
		case "hooks":
			// The namespaces and mounts exist; pivot_root is next.
			st := hookState(o.id, bundle, pid, specs.StateCreating, spec.Annotations)
			if spec.Hooks != nil {
				err = runHooks("prestart", spec.Hooks.Prestart, st) //nolint:staticcheck // deprecated, still honoured
				if err == nil {
					err = runHooks("createRuntime", spec.Hooks.CreateRuntime, st)
				}
				if err != nil {
					return nil, err
				}
			}
			if err := writeMsg(conn, syncMsg{Type: "ok"}); err != nil {
				return nil, initError(cmd, fmt.Errorf("resuming the init: %w", err))
			}
		case "error":
			return nil, errors.New(m.Msg)
		case "created":
			if relayed != nil {
				select {
				case err := <-relayed:
					if err != nil {
						return nil, err
					}
				case <-time.After(syncWait):
					return nil, errors.New("--console-socket: the pty master was not passed on")
				}
			}
			if o.pidFile != "" {
				if err := savePidFile(o.pidFile, pid); err != nil {
					return nil, err
				}
			}
			if err := c.Save(); err != nil {
				return nil, err
			}
			if err := c.MarkCreated(); err != nil {
				return nil, err
			}
			cr := &created{c: c, spec: spec, cmd: cmd}
			if own != nil {
				if cr.master, err = own.master(); err != nil {
					return nil, err
				}
			}
			return cr, nil
		default:
			return nil, fmt.Errorf("the container's init sent %q", m.Type)
		}
	}
}

func writeMsg(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// initError adds how the init ended to err.
func initError(cmd *exec.Cmd, err error) error {
	if st := waitBounded(cmd, 2*time.Second); st != "" {
		return fmt.Errorf("%w (%s)", err, st)
	}
	return err
}

// waitBounded reaps the init if it ends within d, saying how it ended.
func waitBounded(cmd *exec.Cmd, d time.Duration) string {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return "init: " + err.Error()
		}
		return "init exited 0"
	case <-time.After(d):
		return ""
	}
}

func openPath(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func savePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	if err := state.WriteAtomic(abs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}

// hostID is the host id of container id in, by the mappings.
func hostID(m []specs.LinuxIDMapping, in uint32) uint32 {
	for _, e := range m {
		if in >= e.ContainerID && in-e.ContainerID < e.Size {
			return e.HostID + (in - e.ContainerID)
		}
	}
	return in
}

func idMaps(m []specs.LinuxIDMapping) []idmap.Mapping {
	out := make([]idmap.Mapping, len(m))
	for i, e := range m {
		out[i] = idmap.Mapping{Inside: e.ContainerID, Outside: e.HostID, Count: e.Size}
	}
	return out
}

func sysMaps(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

// mapsTo tells whether host id h is container id in by m.
func mapsTo(m []specs.LinuxIDMapping, h, in uint32) bool {
	for _, e := range m {
		if h >= e.HostID && h-e.HostID < e.Size {
			return e.ContainerID+(h-e.HostID) == in
		}
	}
	return false
}

// consoleRelay connects to the engine's console socket now, as the
// runtime (the init, mapped or pivoted, may not be able to reach it), and
// gives the init a socket of its own to connect to instead: one in the
// container's directory, owned by the container's root, whose O_PATH fd
// the init connects through. The message the init sends there (the pty's
// name, its master as SCM_RIGHTS) is passed on unchanged.
func consoleRelay(path, dir string, chown bool, spec *specs.Spec) (*os.File, <-chan error, error) {
	real, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("--console-socket: %w", err)
	}
	lpath := filepath.Join(dir, "console.sock")
	// Bound through an fd of the directory: a container's directory (a
	// 64-character id under $XDG_RUNTIME_DIR) is often beyond the 108
	// bytes of a socket address.
	d, err := openPath(dir)
	if err != nil {
		real.Close()
		return nil, nil, fmt.Errorf("--console-socket: relay: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/console.sock", d.Fd()), Net: "unix"})
	d.Close()
	if err != nil {
		real.Close()
		return nil, nil, fmt.Errorf("--console-socket: relay: %w", err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (*os.File, <-chan error, error) {
		real.Close()
		l.Close()
		return nil, nil, fmt.Errorf("--console-socket: relay: %w", err)
	}
	if chown {
		if err := os.Chown(lpath, int(hostID(spec.Linux.UIDMappings, 0)), int(hostID(spec.Linux.GIDMappings, 0))); err != nil {
			return fail(err)
		}
	}
	f, err := openPath(lpath)
	if err != nil {
		return fail(err)
	}
	done := make(chan error, 1)
	go func() {
		defer real.Close()
		defer l.Close()
		defer os.Remove(lpath)
		done <- func() error {
			_ = l.SetDeadline(time.Now().Add(syncWait))
			c, err := l.AcceptUnix()
			if err != nil {
				return fmt.Errorf("--console-socket: relay: %w", err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(syncWait))
			buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return fmt.Errorf("--console-socket: relay: %w", err)
			}
			var fds []int
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for i := range msgs {
					if r, err := unix.ParseUnixRights(&msgs[i]); err == nil {
						fds = append(fds, r...)
					}
				}
			}
			defer func() {
				for _, fd := range fds {
					unix.Close(fd)
				}
			}()
			if len(fds) != 1 {
				return fmt.Errorf("--console-socket: the init sent %d fds, want the pty master", len(fds))
			}
			if _, _, err := real.WriteMsgUnix(buf[:n], unix.UnixRights(fds[0]), nil); err != nil {
				return fmt.Errorf("--console-socket: %w", err)
			}
			return nil
		}()
	}()
	return f, done, nil
}
