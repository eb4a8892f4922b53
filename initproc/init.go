package initproc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"sandbox/confine"
	"sandbox/internal/kernel"
	"sandbox/internal/proto"
	"sandbox/internal/sigdrop"
	"sandbox/netns"
	"sandbox/netns/link"
	"sandbox/rootfs"
	"sandbox/seccomp/bpf"

	"sandbox/internal/wire"
	"sandbox/journal"

	"golang.org/x/sys/unix"
)

// Init is sandbox-init: PID 1 of the sandbox, root in its user namespace.
// It builds the root, starts the payload, reaps every process and forwards
// signals; it returns the process exit status.
func Init() int {
	start := time.Now()
	lg := journal.NewLogger(os.Stderr, journal.LogText, "init", false, start)
	lg.Step("sandbox-init running")
	var rec wire.InitReport // init's share of the report, beyond lg's
	// One OS thread for all of init: capability sets, the bounding set and
	// no_new_privs are per thread, and the payload is forked from this one.
	runtime.LockOSThread()
	// The payload and every process `sandbox exec` starts are forked from
	// this thread and get its signal mask: the caller's, inherited through
	// sandbox (a CI runner's or a wrapper's blocked signals). A payload
	// would then never see SIGUSR1, SIGCONT or SIGWINCH, nor what
	// `sandbox kill` sends; it starts with none blocked, as after a login.
	var none unix.Sigset_t
	unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil)
	// One P: init has no parallel work, and each P keeps caches of its own
	// (spans per size class) that would stay allocated. The parent sets
	// GOMAXPROCS=1 in init's environment, so that this costs nothing (no
	// stop of the world) and no thread is started for a second P.
	runtime.GOMAXPROCS(1)
	var st unix.Stat_t
	if err := unix.Fstat(wire.InitFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		lg.Error("sandbox-init: not started by `sandbox run` (no control socket on fd 3)")
		return wire.StatusError
	}
	// Nothing the caller left open beyond stdio may reach the payload, but
	// the fds it asked to preserve (--preserve-fds), which follow ours.
	unix.CloseRange(uint(wire.InitFD+1+preservedFDs()), ^uint(0), 0)
	unix.CloseOnExec(wire.InitFD) // exec.Cmd cleared the flag to pass it to us
	for i := 0; i < preservedFDs(); i++ {
		// Only the payload gets them (moved to 3+i), never a helper such
		// as fuse-overlayfs.
		unix.CloseOnExec(wire.InitFD + 1 + i)
	}
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte(wire.InitArg0 + "\x00")[0])), 0, 0, 0)
	conn := proto.FromFD(wire.InitFD)
	fail := func(step string, status int, err error) int {
		conn.Send(proto.KindError, wire.ChildError{Step: step, Msg: err.Error(), Status: status, Init: journal.InitWith(rec, lg)})
		return status
	}
	// Any process inside may signal PID 1; the caller's signals come from
	// the parent as messages (readSignals). The signals whose default in
	// the Go runtime ends init (HUP, INT, TERM: an exit; QUIT, ABRT: a
	// crash with a trace) get a handler that drops them: caught, not
	// ignored (an ignored one would stay ignored in the payload), and
	// without os/signal, whose every signal costs a round trip to the
	// runtime's signal thread and the first that thread's start (~1 ms of
	// every start here). Where sigdrop has no handler, os/signal catches
	// them into a channel no one reads. SIGCHLD is not caught: a goroutine
	// waits for children to end (watchChildren, below). Of the others, the
	// runtime drops USR1, USR2, ALRM, VTALRM, PWR, XCPU and WINCH when not
	// asked for them, and TSTP, TTIN, TTOU and CONT keep their default
	// action, which the kernel never applies to PID 1 of a pid namespace.
	if err := sigdrop.All(sysSignals(dropped)...); err != nil {
		signal.Notify(make(chan os.Signal, 1), dropped...)
	}
	// The signals of a fault, sent rather than caused (the payload may
	// signal PID 1: kill -SEGV 1): Go's runtime took them for init's own
	// fault and died with a stack trace. A fault of init's own still
	// crashes it.
	signal.Ignore(faultSignals...)
	// The same sent with a siginfo of the sender's (sigqueue(3), SI_QUEUE):
	// the runtime cannot tell those from a fault, so a gate in front of its
	// handler drops every one the kernel did not raise.
	if err := sigdrop.Faults(sysSignals(faultSignals)...); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		lg.Warn(fmt.Sprintf("sandbox-init: a fault signal sent to PID 1 with sigqueue still ends the sandbox: %v", err))
	}

	children := watchChildren()  // its thread before the spares, as os/signal's was
	spares := makeSpareThreads() // while the id maps are written
	fromParent := wire.NewSequence(&wire.FromParent)
	env, fds, err := fromParent.Expect(conn, proto.KindConfig) // blocks until the parent wrote the id maps
	if err != nil {
		return fail("reading the configuration", wire.StatusError, err)
	}
	// The exec socket, served once the payload runs, and the user namespace
	// its clients must be in: only its identity is kept, never the fd,
	// which a payload allowed to look into init (CAP_SYS_PTRACE) could take
	// as proof of being outside (for the exec socket).
	var execLn *os.File
	var execNS unix.Stat_t
	if len(fds) == 2 && unix.Fstat(fds[1], &execNS) == nil {
		execLn = os.NewFile(uintptr(fds[0]), "exec.sock")
		unix.Close(fds[1])
	} else {
		proto.CloseFDs(fds)
	}
	// The parent has put init in its cgroup by now: make it the root of a
	// cgroup namespace, so the sandbox sees "/" and not the host's tree.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fail("creating a cgroup namespace", wire.StatusError, err)
	}
	var cfg wire.ChildConfig
	if err := env.Decode(&cfg); err != nil {
		return fail("reading the configuration", wire.StatusError, err)
	}
	lg.Configure(cfg.LogFormat, cfg.Verbose, cfg.Start)
	logf := lg.Step
	logf("configuration received (id maps written)")
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		if !errors.Is(err, unix.EPERM) || cfg.HostnameAsked {
			return fail("setting the hostname", wire.StatusError, hostnameErr(err))
		}
		// Nested in a container whose seccomp filter allows sethostname
		// only with CAP_SYS_ADMIN (podman's, docker's): the new UTS
		// namespace keeps that container's name.
		logf("hostname not set (%v): keeping the outer one", err)
	}
	if cfg.LoopUp {
		if err := link.LoopbackUp(); err != nil {
			return fail("bringing up lo", wire.StatusError, err)
		}
	}
	if cfg.Net != nil {
		if step, err := setupNet(conn, cfg.Net); err != nil {
			return fail(step, wire.StatusError, err)
		}
		logf("network interface set up (%s)", cfg.Net.Mode)
	}
	unix.Umask(0o022)
	how, err := rootfs.Execute(cfg.Plan, rootfs.Logf(logf), func(area, taken, msg string) {
		lg.Warn(msg)
		lg.Fallback(area, taken, msg)
	})
	rec.Overlays = rootfs.Overlays
	if err != nil {
		return fail("building the root filesystem", wire.StatusError, diagnoseMount(err))
	}
	logf("entered the new root (%s)", how)
	if rec.Enter = how; how != "pivot_root" {
		lg.Fallback("root", how, "pivot_root was refused (the root is an initramfs or a chroot)")
	}
	unix.Umask(cfg.Umask)
	logf("root ready")

	if cfg.Net != nil { // the driver came up while the root was built
		if err := awaitNet(conn, fromParent); err != nil {
			return fail("starting the network", wire.StatusError, err)
		}
		logf("network ready")
	}
	if fi, err := os.Stat(cfg.Plan.Chdir); err != nil || !fi.IsDir() {
		if err == nil {
			err = unix.ENOTDIR
		}
		return fail("changing to the working directory", wire.StatusError,
			fmt.Errorf("%s: %w", cfg.Plan.Chdir, journal.UnwrapSyscall(err)))
	}
	path, status, err := lookPath(cfg.Args[0], cfg.Env, cfg.Plan.Chdir)
	if err != nil {
		return fail("", status, err)
	}
	stdio := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	// A process group of its own (a session with a pty): what the payload
	// signals as its group (`kill 0`) is its own, and Ctrl-Z stops it
	// (supervise) without init's helpers.
	sys := &syscall.SysProcAttr{Setpgid: true}
	if cfg.TTY {
		master, slave, err := openPTY(cfg.Rows, cfg.Cols)
		if err != nil {
			return fail("allocating a terminal", wire.StatusError, err)
		}
		err = conn.Send(proto.KindPTY, nil, int(master.Fd()))
		master.Close()
		if err != nil {
			return wire.StatusError
		}
		defer slave.Close()
		stdio = []*os.File{slave, slave, slave}
		sys.Setpgid, sys.Setsid, sys.Setctty, sys.Ctty = false, true, true, 0
	}
	if cfg.Seccomp != nil && cfg.SeccompWatch {
		// The parent looks at our threads before the filter may kill one.
		if err := conn.Send(proto.KindConfining, nil); err != nil {
			return wire.StatusError
		}
		if _, _, err := fromParent.Expect(conn, proto.KindWatched); err != nil {
			return fail("waiting for the parent before installing the seccomp filter", wire.StatusError, err)
		}
		logf("the parent looked at init's threads before the filter (it may kill one)")
	}
	if step, err := confineSelf(&cfg, lg); err != nil {
		return fail(step, wire.StatusError, err)
	}
	logf("confined (capabilities, no_new_privs, keyring, landlock, seccomp)")
	for i := 0; i < cfg.PreserveFDs; i++ {
		stdio = append(stdio, os.NewFile(uintptr(wire.InitFD+1+i), fmt.Sprintf("fd%d", 3+i)))
	}
	<-spares
	pid, err := forkExec(path, cfg.Args, cfg.Plan.Chdir, cfg.Env, stdio, sys)
	if err != nil {
		status, err := execFailed(cfg.Args[0], path, err)
		return fail("", status, err)
	}
	if cfg.TTY {
		stdio[0].Close()
	}
	rec.Started = journal.MonoNow()
	logf("payload %q started as pid %d", cfg.Args[0], pid)
	started := wire.ChildStarted{PID: pid}
	if cfg.Report {
		started.Init = journal.InitWith(rec, lg)
	}
	conn.SendBinary(proto.KindStarted, started)

	var execs chan execEvent
	if execLn != nil && cfg.Exec {
		execs = make(chan execEvent, 16)
		go serveExec(execLn, execNS, unix.Getuid(), execs)
	}
	fromCaller := make(chan syscall.Signal, 16)
	go readSignals(conn, fromParent, fromCaller)
	children.begin()
	return supervise(conn, pid, children, fromCaller, execs, &cfg)
}

// forkExec starts a process the way os.StartProcess does, minus its
// one-time pidfd probe: that probe's clone child loops on exit_group, so
// under a --seccomp profile failing exit_group init would hang in it. No
// os.Process either: reaping is init's alone (wait4 in supervise).
func forkExec(path string, args []string, dir string, env []string, files []*os.File, sys *syscall.SysProcAttr) (int, error) {
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Dir: dir, Env: env, Files: fds, Sys: sys})
	runtime.KeepAlive(files)
	return pid, err
}

// dropped are the signals whose default in the Go runtime ends a program
// that did not ask for them: init drops them (see Init).
var dropped = []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGABRT}

// preservedFDs reads how many fds the parent passed after the control
// socket; init learns it before the configuration arrives, from the
// environment the parent set (it holds nothing else).
func preservedFDs() int {
	n, err := strconv.Atoi(os.Getenv(wire.PreserveEnv))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// confineSelf applies the payload's confinement to init itself, just
// before the payload starts (the payload inherits it); init needs no
// privilege after this point. The order matters: the keyring needs keyctl
// (denied by seccomp later), Landlock and seccomp need no_new_privs or
// privileges.
func confineSelf(cfg *wire.ChildConfig, lg *journal.Logger) (string, error) {
	if err := confine.NewSessionKeyring(); err != nil {
		return "creating a session keyring", err
	}
	if err := confine.BoundCaps(cfg.Caps, cfg.LastCap); err != nil {
		return "bounding capabilities", err
	}
	if err := confine.DropInherited(); err != nil {
		return "dropping capabilities", err
	}
	// On this thread alone where a filter follows: its TSYNC gives it to
	// the others. Without a filter, and with Landlock (whose rules are
	// applied to every thread before the filter), on every thread.
	if err := confine.NoNewPrivs(cfg.Seccomp != nil && cfg.Landlock == nil); err != nil {
		return "setting no_new_privs", err
	}
	if cfg.Landlock != nil {
		abi, err := confine.Landlock(*cfg.Landlock)
		if err != nil {
			return "applying landlock", err
		}
		if abi == 0 {
			lg.Warn("--landlock: this kernel has no Landlock (needs Linux 5.13 with CONFIG_SECURITY_LANDLOCK and lsm=landlock); not applied")
			lg.Fallback("landlock", "not applied", "this kernel has no Landlock")
		} else {
			lg.Step("landlock ABI %d applied", abi)
		}
	}
	// Last: from here on init itself runs under the filter too.
	if err := bpf.Install(cfg.Seccomp); err != nil {
		return "installing the seccomp filter", err
	}
	return "", nil
}

// lookPath finds the command the way execvp would, with the payload's PATH.
func lookPath(name string, env []string, dir string) (string, int, error) {
	if name == "" {
		// As a shell says: joined to each PATH directory, "" would name
		// the directory itself ("is a directory").
		return "", wire.StatusNotFound, errors.New(`"": command not found (the command's name is empty)`)
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := checkExec(name, p); err != nil {
			return "", execStatus(err), err
		}
		return p, 0, nil
	}
	pathEnv := wire.DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	var denied error
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		err := checkExec(name, p)
		if err == nil {
			return p, 0, nil
		}
		if denied == nil && !errors.Is(err, unix.ENOENT) {
			denied = err
		}
	}
	if denied != nil {
		return "", wire.StatusNotExec, denied
	}
	return "", wire.StatusNotFound, fmt.Errorf("%s: command not found", name)
}

func checkExec(name, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", name, unix.ENOENT) // reads "NAME: no such file or directory"
		}
		return fmt.Errorf("%s: %w", name, journal.UnwrapSyscall(err))
	}
	if fi.IsDir() {
		return fmt.Errorf("%s: %w", name, unix.EISDIR)
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return fmt.Errorf("%s: not executable: %w", name, err)
	}
	return nil
}

// execFailed is the status and message of an execve of path (name, as
// given) that failed. ENOENT for a file lookPath found means what it
// needs is missing: a script's interpreter (126 and "bad interpreter", as
// bash says), or an ELF program's loader.
func execFailed(name, path string, err error) (int, error) {
	err = journal.UnwrapSyscall(err)
	if !errors.Is(err, unix.ENOENT) {
		return execStatus(err), fmt.Errorf("%s: %w", name, err)
	}
	var head [256]byte
	n := 0
	// Non-blocking: a FIFO put there since would hold init forever.
	if f, oerr := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0); oerr == nil {
		n, _ = io.ReadFull(f, head[:])
		f.Close()
	}
	switch b := head[:n]; {
	case bytes.HasPrefix(b, []byte("#!")):
		line, _, _ := bytes.Cut(b[2:], []byte("\n"))
		interp, _, _ := strings.Cut(strings.TrimSpace(string(line)), " ")
		return wire.StatusNotExec, fmt.Errorf("%s: bad interpreter %q: %w", name, interp, unix.ENOENT)
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return wire.StatusNotFound, fmt.Errorf("%s: its program interpreter (the dynamic loader it was linked for) is missing: %w", name, unix.ENOENT)
	}
	return wire.StatusNotFound, fmt.Errorf("%s: %w", name, err)
}

// execStatus maps an exec failure to 126 or 127 as shells do.
func execStatus(err error) int {
	if errors.Is(err, unix.ENOENT) {
		return wire.StatusNotFound
	}
	return wire.StatusNotExec
}

// openPTY allocates a pty in the sandbox's own devpts.
func openPTY(rows, cols uint16) (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	if rows > 0 && cols > 0 {
		unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}
	return m, s, nil
}

// setupNet is init's part of the network: the link-local block, and for
// drivers that do not configure the interface themselves, the tap (made
// here and handed to the parent for builtin) and its address and route.
func setupNet(conn *proto.Conn, n *netns.Child) (string, error) {
	if n.BlockLinkLocal {
		if err := link.Prohibit(netns.LinkLocal); err != nil {
			return "blocking link-local addresses", err
		}
	}
	configure := func() (string, error) {
		if !n.Configure {
			return "", nil
		}
		if err := link.Configure(netns.TapName, netns.SandboxIP, netns.PrefixLen, netns.GatewayIP, netns.MTU); err != nil {
			return "configuring the network interface", err
		}
		return "", nil
	}
	if !n.CreateTap || n.TapMade {
		return configure()
	}
	tap, err := link.CreateTap(netns.TapName, n.PersistTap)
	if err != nil {
		return "creating the network interface", err
	}
	// Configured while init still holds the tap: once handed over, a
	// helper that fails (a -p port in use) would close the last fd of a
	// non-persistent tap, and the run would report "no such device"
	// instead of the helper's own error.
	if step, err := configure(); err != nil {
		tap.Close()
		return step, err
	}
	if n.TapByName {
		// Detached before the helper attaches by name: a tap takes one
		// attachment (else EBUSY). Only the news is sent.
		tap.Close()
		err = conn.Send(proto.KindTap, nil)
	} else {
		err = conn.Send(proto.KindTap, nil, int(tap.Fd()))
		tap.Close()
	}
	if err != nil {
		return "handing over the network interface", err
	}
	return "", nil
}

// awaitNet waits for the parent's word that the network driver is up.
func awaitNet(conn *proto.Conn, fromParent *wire.Sequence) error {
	env, _, err := fromParent.Expect(conn, proto.KindNet)
	if err != nil {
		return fmt.Errorf("waiting for the network: %w", err)
	}
	var r wire.NetReady
	if err := env.Decode(&r); err != nil {
		return fmt.Errorf("reading the network's state: %w", err)
	}
	if r.Err != "" {
		return errors.New(r.Err)
	}
	return nil
}

// diagnoseMount adds advice to mount failures.
func diagnoseMount(err error) error {
	var se *rootfs.StepError
	if errors.As(err, &se) && se.Step.Op == rootfs.OpOverlay && errors.Is(err, unix.EPERM) && !kernel.AtLeast(5, 11) {
		return fmt.Errorf("%w (Linux before 5.11 lets no user namespace mount overlayfs: --overlay=auto, the default, "+
			"or --overlay=fuse uses fuse-overlayfs)", err)
	}
	if errors.As(err, &se) && se.Step.Op == rootfs.OpOverlay && errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w (the kernel refused overlayfs here: a lower directory with mounts below it, "+
			"an overlay nested too deep, or a kernel older than 5.11; --overlay=fuse may work)", err)
	}
	return err
}

// hostnameErr explains a refused --hostname: in a new UTS namespace of
// our own only a seccomp filter inherited from outside says EPERM.
func hostnameErr(err error) error {
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	return fmt.Errorf("%w (the container or sandbox this runs in denies sethostname, as podman's and docker's seccomp profiles do without CAP_SYS_ADMIN: leave out --hostname, or run that container with --security-opt seccomp=unconfined)", err)
}

// sysSignals is sigs as the syscall package's numbers.
func sysSignals(sigs []os.Signal) []syscall.Signal {
	out := make([]syscall.Signal, 0, len(sigs))
	for _, s := range sigs {
		if n, ok := s.(syscall.Signal); ok {
			out = append(out, n)
		}
	}
	return out
}
