package holder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"sandbox/idmap"
	"sandbox/internal/memexec"
	"sandbox/internal/proc"

	"golang.org/x/sys/unix"
)

// Serve is the holder's main. It makes and maps its namespace (unless
// another holder runs or is starting), then answers clients until it has
// had none for its idle time. It returns the process's exit status; what
// went wrong, if anything, is in the directory's holder.log (its stdio is
// /dev/null).
func Serve() int {
	// Not a terminal's or a session's: hang-ups and interrupts are not for it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGPIPE)
	// Named for ps and pgrep (it runs from a memfd, which names it by fd).
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte(Arg0 + "\x00")[0])), 0, 0, 0)
	dir := os.Getenv(dirEnv)
	if dir == "" || private(dir) != nil {
		return 2
	}
	s, err := start(dir)
	if err != nil {
		note(dir, err)
		return 1
	}
	if s == nil {
		return 0 // another holder runs or is starting
	}
	s.run()
	return 0
}

// logName is where a holder that failed says why (its stdio is /dev/null).
const logName = "holder.log"

// note leaves why the holder stopped in its directory, for whoever asks.
func note(dir string, err error) {
	os.WriteFile(filepath.Join(dir, logName), []byte(time.Now().Format(time.RFC3339)+" "+err.Error()+"\n"), 0o600)
}

// FailedRecently says whether a holder in dir failed within the last
// Idle: runs then do not start another one each.
func FailedRecently(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, logName))
	return err == nil && time.Since(st.ModTime()) < Idle
}

// server is a started holder.
type server struct {
	dir    string
	ln     int       // listening socket
	ino    uint64    // its file's inode (removed at exit only if still ours)
	ns     *os.File  // the mapped user namespace
	prog   *os.File  // our own program, read-only (the sealed memfd we run from), or nil
	maps   []byte    // "ok\n" uid_map NUL gid_map NUL program ID NUL limits: the answer
	userNS [2]uint64 // dev, inode of our user namespace: our clients'
	uid    uint32
	idle   time.Duration
	// buf holds a /proc file being read: the holder answers every run of
	// its user and looks at its cgroup twice a second, for hours in a
	// busy CI job, so neither allocates what would only grow its heap.
	buf [16 << 10]byte
	// req and oob hold a client's request (share.go), which every run's
	// connection may carry: reused, as buf is.
	req    [maxRequest]byte
	oob    []byte
	shared map[string]sharedProgram // programs runs gave it (share.go)
}

// start takes the start lock, makes the namespace and puts the socket in
// place. It returns nil, nil when another holder answers or is starting.
func start(dir string) (*server, error) {
	uids, err := ParseMap(os.Getenv(uidsEnv), uidsEnv)
	if err != nil {
		return nil, err
	}
	gids, err := ParseMap(os.Getenv(gidsEnv), gidsEnv)
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, nil // another one is starting
	}
	if c, err := dial(dir); err == nil {
		unix.Close(c)
		return nil, nil // and one answers
	}
	s := &server{dir: dir, uid: uint32(os.Getuid()), idle: Idle, oob: make([]byte, unix.CmsgSpace(4))}
	if d, err := time.ParseDuration(os.Getenv(IdleEnv)); err == nil && d > 0 {
		s.idle = d
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil {
		return nil, err
	}
	s.userNS = [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	// Before the namespace is made: it keeps the limits it was made with
	// (limits.go).
	limits, err := raiseLimits()
	if err != nil {
		return nil, err
	}
	var uidText, gidText string
	if s.ns, uidText, gidText, err = mapNamespace(uids, gids); err != nil {
		return nil, err
	}
	id := os.Getenv(ProgramEnv)
	if s.prog = ownProgram(); s.prog == nil {
		id = ""
	}
	s.maps = []byte("ok\n" + uidText + "\x00" + gidText + "\x00" + id + "\x00" + limits)
	if err := s.listen(); err != nil {
		s.ns.Close()
		if s.prog != nil {
			s.prog.Close()
		}
		return nil, err
	}
	return s, nil
}

// ownProgram is a read-only fd of the program the holder runs, if that is
// a sealed memfd (as a run starts it: sandbox-init's copy): shared with
// clients, it spares each its own copy. Nil otherwise.
func ownProgram() *os.File {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil
	}
	if memexec.Sealed(f) != nil {
		f.Close()
		return nil
	}
	return f
}

// mapNamespace starts a process in a new user namespace, has newuidmap and
// newgidmap map uids and gids in it, and keeps the namespace by an fd once
// that process is gone. It returns the maps as the kernel shows them.
func mapNamespace(uids, gids []idmap.Mapping) (ns *os.File, uidMap, gidMap string, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", "", err
	}
	pin := &exec.Cmd{Path: "/proc/self/exe", Args: []string{PinArg0}, Stdin: r, Dir: "/",
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}}
	err = pin.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, "", "", fmt.Errorf("starting a process in a new user namespace: %w", err)
	}
	defer func() {
		w.Close() // the pin exits at EOF
		pin.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := idmap.Apply(ctx, pin.Process.Pid, uids, gids, true); err != nil {
		return nil, "", "", err
	}
	proc := "/proc/" + strconv.Itoa(pin.Process.Pid)
	if ns, err = os.Open(proc + "/ns/user"); err != nil {
		return nil, "", "", err
	}
	u, err1 := os.ReadFile(proc + "/uid_map")
	g, err2 := os.ReadFile(proc + "/gid_map")
	if err := errors.Join(err1, err2); err != nil {
		ns.Close()
		return nil, "", "", err
	}
	return ns, string(u), string(g), nil
}

// Pin is the process whose namespace the holder maps: it waits for its
// stdin to close, at most a minute.
func Pin() int {
	time.AfterFunc(time.Minute, func() { os.Exit(1) })
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// listen binds the socket under a name of its own and renames it into
// place, so that a client never reaches a holder that is not ready, and a
// dead holder's socket is replaced in one step.
func (s *server) listen() error {
	tmp := filepath.Join(s.dir, fmt.Sprintf("%s.%d", Socket, os.Getpid()))
	os.Remove(tmp)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err = unix.Bind(fd, &unix.SockaddrUnix{Name: tmp}); err == nil {
		if err = unix.Listen(fd, 64); err == nil {
			if err = unix.Stat(tmp, &st); err == nil {
				err = os.Rename(tmp, filepath.Join(s.dir, Socket))
			}
		}
	}
	if err != nil {
		unix.Close(fd)
		os.Remove(tmp)
		return fmt.Errorf("the holder's socket: %w", err)
	}
	s.ln, s.ino = fd, uint64(st.Ino)
	return nil
}

// aloneEvery is how often the holder looks whether it is the last process
// of its cgroup.
const aloneEvery = 500 * time.Millisecond

// run answers clients until none came for s.idle, or until nothing but the
// holder is left in its cgroup (the session, scope or job that started it
// is over, and a scope must be able to end), then removes the socket (if it
// is still this holder's) and returns.
func (s *server) run() {
	procs := ownCgroupProcs()
	deadline := time.Now().Add(s.idle)
	for {
		wait := time.Until(deadline)
		if wait <= 0 || procs != "" && alone(procs, &s.buf) {
			break
		}
		pfd := []unix.PollFd{{Fd: int32(s.ln), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(min(wait, aloneEvery).Milliseconds())+1)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			note(s.dir, err)
			break
		}
		c, _, err := unix.Accept4(s.ln, unix.SOCK_CLOEXEC)
		if err != nil {
			continue
		}
		s.answer(c)
		unix.Close(c)
		deadline = time.Now().Add(s.idle)
	}
	s.exit()
}

// exit removes the socket if no other holder has replaced it meanwhile
// (checked under the start lock, which a starting holder holds until its
// socket is in place).
func (s *server) exit() {
	unix.Close(s.ln)
	lock, err := os.OpenFile(filepath.Join(s.dir, lockName), os.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer lock.Close()
	if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	p := filepath.Join(s.dir, Socket)
	var st unix.Stat_t
	if unix.Lstat(p, &st) == nil && uint64(st.Ino) == s.ino {
		os.Remove(p)
	}
}

// answer gives the namespace to an accepted client c, or says why not,
// then serves the request c may have sent with it (share.go).
func (s *server) answer(c int) {
	unix.SetsockoptTimeval(c, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Sec: 1})
	if err := s.check(c); err != nil {
		unix.Sendmsg(c, []byte("refused: "+err.Error()), nil, nil, 0)
		return
	}
	fds := []int{int(s.ns.Fd())}
	if s.prog != nil {
		fds = append(fds, int(s.prog.Fd()))
	}
	if unix.Sendmsg(c, s.maps, unix.UnixRights(fds...), nil, 0) == nil {
		s.followUp(c)
	}
}

// check lets only a process of the holder's uid, in the holder's user
// namespace (never one inside a sandbox), without no_new_privs (which
// could not have run the setuid helpers either) have the namespace.
func (s *server) check(c int) error {
	cred, err := unix.GetsockoptUcred(c, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Errorf("cannot identify the client: %w", err)
	}
	if cred.Uid != s.uid || cred.Pid <= 0 {
		return fmt.Errorf("the holder serves uid %d only (the client is uid %d)", s.uid, cred.Uid)
	}
	// Where the kernel has it, the client's pidfd proves below that the
	// pid read in /proc is still the client's.
	pidfd, perr := unix.GetsockoptInt(c, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if perr == nil {
		defer unix.Close(pidfd)
	}
	dir := "/proc/" + strconv.Itoa(int(cred.Pid))
	var st unix.Stat_t
	if err := unix.Stat(dir+"/ns/user", &st); err != nil || [2]uint64{uint64(st.Dev), uint64(st.Ino)} != s.userNS {
		return errors.New("the client is not in the holder's user namespace (a process inside a sandbox?)")
	}
	status, err := proc.ReadFileInto(dir+"/status", s.buf[:])
	if err != nil {
		return fmt.Errorf("reading the client's status: %w", err)
	}
	if nnp, ok := field(status, "NoNewPrivs:"); !ok || string(nnp) != "0" {
		return errors.New("the client runs with no_new_privs, which the setuid helpers would not serve either")
	}
	if perr == nil && unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
		return errors.New("the client is gone")
	}
	return nil
}

// ownCgroupProcs is the cgroup.procs file of the holder's cgroup (v2), or
// "" when there is none to watch (the root, or no cgroup2 mount found).
func ownCgroupProcs() string {
	self, err := readSmall("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	var path string
	for _, l := range strings.Split(self, "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			path = p
		}
	}
	if path == "" || path == "/" {
		return ""
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "cgroup2 ") || fields[3] != "/" {
			continue
		}
		p := filepath.Join(fields[4], path, "cgroup.procs")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// alone says whether the holder is the only process in procs.
func alone(procs string, buf *[16 << 10]byte) bool {
	b, err := proc.ReadFileInto(procs, buf[:])
	if err != nil {
		return false
	}
	var own [20]byte
	return string(bytes.TrimSpace(b)) == string(strconv.AppendInt(own[:0], int64(os.Getpid()), 10))
}

// readSmall reads the start of a /proc file, bounded.
func readSmall(p string) (string, error) {
	b, err := proc.ReadFile(p, 16<<10)
	return string(b), err
}

// field is the value of the line "name value" in a /proc status text.
func field(text []byte, name string) ([]byte, bool) {
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte(name)); ok {
			return bytes.TrimSpace(v), true
		}
	}
	return nil, false
}

// dial connects to the holder's socket in dir.
func dial(dir string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, Socket)}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
