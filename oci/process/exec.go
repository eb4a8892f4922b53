package process

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"sandbox/confine"
	"sandbox/internal/userfile"
	"sandbox/seccomp"
)

// ExecError is a failure to execute process.args[0] itself (not found,
// not executable): Code is the shell's status for it, 127 or 126.
type ExecError struct {
	Code int
	Err  error
}

func (e *ExecError) Error() string { return e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }

// ExitCode is the status a command reports for this failure.
func (e *ExecError) ExitCode() int { return e.Code }

// defaultPath is where args[0] is looked up when the process's env has no
// PATH (runc's and the shells' default).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Exec applies the plan to the calling process and executes it; it
// returns only on failure.
//
// Everything is done on one locked OS thread, which then calls execve:
// capability sets, keepcaps, no_new_privs and the credentials are per
// thread, and the new program gets those of the thread that executes it.
func (p *Plan) Exec() error {
	runtime.LockOSThread() // never unlocked: the thread's state is changed for good
	pr := p.Process
	if pr == nil {
		return errors.New("process: missing")
	}
	for _, r := range p.Rlimits {
		// syscall.Setrlimit (not x/sys): it also stops the Go runtime from
		// restoring its own RLIMIT_NOFILE at execve.
		if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("process.rlimits: setting %s to %d/%d: %w", rlimitName(r.Resource), r.Soft, r.Hard, err)
		}
	}
	if pr.OOMScoreAdj != nil {
		if err := setOOMScoreAdj(*pr.OOMScoreAdj); err != nil {
			return err
		}
	}
	if p.IOPrio != nil {
		const ioprioWhoProcess = 1
		if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(*p.IOPrio)); e != 0 {
			return fmt.Errorf("process.ioPriority: ioprio_set: %w", e)
		}
	}
	if p.Sched != nil {
		a := *p.Sched
		a.Size = uint32(unsafe.Sizeof(a))
		if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETATTR, 0, uintptr(unsafe.Pointer(&a)), 0); e != 0 {
			return fmt.Errorf("process.scheduler: sched_setattr: %w", e)
		}
	}
	if p.Personality != nil {
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(*p.Personality), 0, 0); e != 0 {
			return fmt.Errorf("linux.personality: %w", e)
		}
	}
	if p.AppArmor != "" {
		if err := appArmorOnExec(p.AppArmor); err != nil {
			return err
		}
	}
	last, err := confine.LastCap()
	if err != nil {
		return err
	}
	if err := confine.BoundCaps(p.Caps.Bounding, last); err != nil {
		return fmt.Errorf("process.capabilities.bounding: %w", err)
	}
	// Without no_new_privs a filter needs CAP_SYS_ADMIN, which the process
	// may lose with its user: then it is loaded now, as runc does;
	// otherwise as late as possible, just before execve.
	if p.Seccomp != nil && !pr.NoNewPrivileges {
		if err := seccomp.InstallPrivileged(p.Seccomp); err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
	}
	if err := setUser(pr.User.UID, pr.User.GID, pr.User.AdditionalGids); err != nil {
		return err
	}
	if err := setCaps(p.Caps, last); err != nil {
		return err
	}
	if pr.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}
	if err := unix.Chdir(pr.Cwd); err != nil {
		return fmt.Errorf("process.cwd: %s: %w", pr.Cwd, err)
	}
	if pr.User.Umask != nil {
		unix.Umask(int(*pr.User.Umask))
	} else {
		unix.Umask(0o022)
	}
	if pr.Terminal && pr.ConsoleSize != nil {
		ws := &unix.Winsize{Row: uint16(pr.ConsoleSize.Height), Col: uint16(pr.ConsoleSize.Width)}
		if err := unix.IoctlSetWinsize(0, unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	env := pr.Env
	if !hasEnv(env, "HOME") {
		// As runc: the user's home from the container's /etc/passwd.
		env = append(env[:len(env):len(env)], "HOME="+home(pr.User.UID))
	}
	prog, err := lookPath(pr.Args[0], env)
	if err != nil {
		return err
	}
	if p.Seccomp != nil && pr.NoNewPrivileges {
		if err := seccomp.Install(p.Seccomp); err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
	}
	err = syscall.Exec(prog, pr.Args, env)
	return execError(pr.Args[0], err)
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

// home is uid's home directory in the current root's /etc/passwd, "/"
// when it has none.
func home(uid uint32) string {
	data, err := userfile.Read("/etc/passwd", userfile.MaxConfig)
	if err != nil {
		return "/"
	}
	want := strconv.FormatUint(uint64(uid), 10)
	for _, l := range strings.Split(string(data), "\n") {
		// name:password:uid:gid:gecos:home:shell
		f := strings.Split(l, ":")
		if len(f) == 7 && f[2] == want && path.IsAbs(f[5]) {
			return f[5]
		}
	}
	return "/"
}

func rlimitName(n int) string {
	for k, v := range rlimits {
		if v == n {
			return k
		}
	}
	return "RLIMIT_" + strconv.Itoa(n)
}

// setOOMScoreAdj writes oom_score_adj unless it already has that value
// (exec's C stage sets it before it turns the process non-dumpable, after
// which /proc/self files are no longer ours to write in a user namespace).
func setOOMScoreAdj(v int) error {
	const f = "/proc/self/oom_score_adj"
	if cur, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(cur)) == strconv.Itoa(v) {
		return nil
	}
	if err := os.WriteFile(f, []byte(strconv.Itoa(v)), 0); err != nil {
		return fmt.Errorf("process.oomScoreAdj: %w", err)
	}
	return nil
}

// appArmorOnExec asks AppArmor to confine the next program with profile.
func appArmorOnExec(profile string) error {
	data := []byte("exec " + profile)
	err := os.WriteFile("/proc/thread-self/attr/apparmor/exec", data, 0)
	if errors.Is(err, os.ErrNotExist) {
		err = os.WriteFile("/proc/thread-self/attr/exec", data, 0)
	}
	if err != nil {
		return fmt.Errorf("process.apparmorProfile: %q: %w", profile, err)
	}
	return nil
}

// setUser sets the groups, gid and uid of the calling thread, keeping its
// permitted capabilities (setCaps then sets every set).
func setUser(uid, gid uint32, groups []uint32) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", err)
	}
	gs := make([]uint32, len(groups))
	copy(gs, groups)
	var ptr unsafe.Pointer
	if len(gs) > 0 {
		ptr = unsafe.Pointer(&gs[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gs)), uintptr(ptr), 0); e != 0 {
		// A user namespace whose setgroups is "deny" refuses even the
		// empty list; that is fine when none were asked: the process then
		// has no groups it may drop.
		if !(e == unix.EPERM && len(gs) == 0 && setgroupsDenied()) {
			return fmt.Errorf("process.user.additionalGids: setgroups(%v): %w", groups, e)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("process.user.gid: setting gid %d: %w", gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("process.user.uid: setting uid %d: %w", uid, e)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", err)
	}
	return nil
}

func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// setCaps sets the effective, permitted and inheritable sets, then raises
// the ambient ones (after the uid change, so that a non-root process keeps
// what it was given across execve).
func setCaps(c CapSets, last int) error {
	mask := func(set []int) (lo, hi uint32) {
		for _, n := range set {
			if n > last {
				continue // named, but unknown to this kernel
			}
			if n < 32 {
				lo |= 1 << uint(n)
			} else {
				hi |= 1 << uint(n-32)
			}
		}
		return
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0].Effective, data[1].Effective = mask(c.Effective)
	data[0].Permitted, data[1].Permitted = mask(c.Permitted)
	data[0].Inheritable, data[1].Inheritable = mask(c.Inheritable)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("process.capabilities: capset: %w%s", err, unavailableCaps(c, last))
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("process.capabilities.ambient: %w", err)
	}
	inh, perm := map[int]bool{}, map[int]bool{}
	for _, n := range c.Inheritable {
		inh[n] = true
	}
	for _, n := range c.Permitted {
		perm[n] = true
	}
	for _, n := range c.Ambient {
		// The kernel keeps an ambient capability only while it is
		// permitted and inheritable; one asked without them is skipped,
		// as runc does (`runc spec` asks ambient ones with no inheritable
		// set; root gets its capabilities at execve all the same).
		if n > last || !inh[n] || !perm[n] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0); err != nil {
			return fmt.Errorf("process.capabilities.ambient: raising %s: %w", confine.CapName(n), err)
		}
	}
	return nil
}

// unavailableCaps names, for an error, the capabilities asked that this
// process does not hold (the runtime's own bounding set lacks them: a
// runtime that itself runs in a container).
func unavailableCaps(c CapSets, last int) string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return ""
	}
	var missing []string
	seen := map[int]bool{}
	for _, n := range append(append([]int(nil), c.Permitted...), c.Effective...) {
		if n > last || n >= 64 || seen[n] {
			continue
		}
		seen[n] = true
		if data[n/32].Permitted&(1<<uint(n%32)) == 0 {
			missing = append(missing, confine.CapName(n))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return " (not available to the runtime: " + strings.Join(missing, ", ") + ")"
}

// lookPath finds args[0] as execve will: a name with a slash as is, else
// in the process's own PATH (not the runtime's).
func lookPath(arg0 string, env []string) (string, error) {
	if strings.Contains(arg0, "/") {
		if err := executable(arg0); err != nil {
			return "", execError(arg0, err)
		}
		return arg0, nil
	}
	pathEnv := defaultPath
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			pathEnv = v
			break
		}
	}
	var firstErr error
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, arg0)
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", execError(arg0, firstErr)
	}
	return "", &ExecError{Code: 127, Err: fmt.Errorf("process.args[0]: %q: executable file not found in $PATH (%s)", arg0, pathEnv)}
}

// executable is nil when p is a file this process may execute.
func executable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return err
	}
	return nil
}

// execError names args[0] and gives a missing program 127, any other
// failure to execute it 126 (as shells do).
func execError(arg0 string, err error) error {
	code := 126
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		code = 127
	}
	return &ExecError{Code: code, Err: fmt.Errorf("process.args[0]: executing %q: %w", arg0, err)}
}

// Console opens a pty in the current root's /dev/pts, sends its master over
// the unix socket at path (runc's console-socket protocol: SCM_RIGHTS) and
// makes the slave the calling process's stdio and controlling terminal.
func Console(socketPath string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	sock := os.NewFile(uintptr(fd), "console-socket")
	defer sock.Close()
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: socketPath}); err != nil {
		return fmt.Errorf("console socket %s: %w", socketPath, err)
	}
	return ConsoleTo(sock)
}

// ConsoleTo is Console over a socket already connected (a caller about to
// change its root, or in another mount namespace, connects first). It
// does not close sock.
func ConsoleTo(sock *os.File) error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("console: opening /dev/ptmx: %w", err)
	}
	defer master.Close()
	mfd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("console: unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("console: ptsname: %w", err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	// The peer by the master, not by name: no path lookup that the
	// container could redirect.
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if e != 0 {
		return fmt.Errorf("console: opening %s: %w", name, e)
	}
	slave := os.NewFile(r, name)
	defer slave.Close()
	// runc's protocol: one message, the pty's name as data, the master
	// as SCM_RIGHTS.
	if err := unix.Sendmsg(int(sock.Fd()), []byte(name), unix.UnixRights(mfd), nil, 0); err != nil {
		return fmt.Errorf("console: sending the pty master: %w", err)
	}
	// A session of its own, for the terminal to be its controlling one
	// (unless the caller already leads one).
	if sid, _ := unix.Getsid(0); sid != unix.Getpid() {
		if _, err := unix.Setsid(); err != nil {
			return fmt.Errorf("console: setsid: %w", err)
		}
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("console: making %s fd %d: %w", name, fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("console: making %s the controlling terminal: %w", name, err)
	}
	return nil
}
