package holder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"sandbox/internal/proto"

	"golang.org/x/sys/unix"
)

// Socket and Lock are the holder's files in its directory (see Dir).
const (
	Socket = "holder.sock"
	Lock   = "holder.lock"
)

// Dir is the holder's directory below the caller's private state
// directory base (made if missing, 0700).
func Dir(base string) (string, error) {
	d := filepath.Join(base, ".holder")
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating %s: %w", d, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(d, &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Getuid() || st.Mode&0o077 != 0 {
		return "", fmt.Errorf("%s is not a private directory of yours (mode %04o, owner %d)", d, st.Mode&0o7777, st.Uid)
	}
	return d, nil
}

// ErrNotRunning: no holder answers on the socket.
var ErrNotRunning = errors.New("no sandbox holder is running")

// Child is a process the holder started.
type Child struct {
	Pid   int
	conn  *proto.Conn
	pidfd int // from the holder: tells when the child ends if the holder does not
}

// Spawn asks the holder listening in dir to start req with files (stdio
// first) and, when cgroup is not nil, born in that cgroup directory. An
// error that is not ErrNotRunning comes from the holder (with the system
// call's errno wrapped, when one failed).
func Spawn(dir string, req Request, files []*os.File, cgroup *os.File) (*Child, error) {
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("the sandbox holder passes at most %d fds", MaxFiles)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, Socket)}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("connecting to the sandbox holder: %w", err)
	}
	c := proto.FromFD(fd)
	userNS, err := os.Open("/proc/self/ns/user")
	if err != nil {
		c.Close()
		return nil, err
	}
	defer userNS.Close()
	send := []int{int(userNS.Fd())}
	for _, f := range files {
		send = append(send, int(f.Fd()))
	}
	req.Files, req.Cgroup = len(files), cgroup != nil
	if cgroup != nil {
		send = append(send, int(cgroup.Fd()))
	}
	if err := c.Send(kindSpawn, req, send...); err != nil {
		c.Close()
		return nil, fmt.Errorf("asking the sandbox holder: %w", err)
	}
	// Bounded: a holder that took the request answers at once.
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	env, fds, err := c.Recv()
	if err != nil {
		c.Close()
		if errors.Is(err, unix.EAGAIN) {
			return nil, errors.New("the sandbox holder did not answer within 10 s")
		}
		return nil, ErrNotRunning // it went away (idle) as we asked
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{})
	switch env.Kind {
	case kindSpawned:
		var sp Spawned
		if err := env.Decode(&sp); err != nil || sp.Pid <= 0 || len(fds) != 1 {
			proto.CloseFDs(fds)
			c.Close()
			return nil, fmt.Errorf("the sandbox holder's answer: %v (%d fds)", err, len(fds))
		}
		return &Child{Pid: sp.Pid, conn: c, pidfd: fds[0]}, nil
	case kindError:
		proto.CloseFDs(fds)
		c.Close()
		var f Failure
		env.Decode(&f)
		if f.Errno != 0 {
			return nil, fmt.Errorf("the sandbox holder: %s: %w", f.Msg, syscall.Errno(f.Errno))
		}
		return nil, fmt.Errorf("the sandbox holder: %s", f.Msg)
	}
	proto.CloseFDs(fds)
	c.Close()
	return nil, fmt.Errorf("the sandbox holder answered %q", env.Kind)
}

// Wait waits for the child's end and returns its wait status. If the
// holder goes away first (killed), nobody here can reap the child: Wait
// then waits on its pidfd (it ends with its parent `sandbox`, or with its
// payload) and says the status is lost.
func (c *Child) Wait() (syscall.WaitStatus, error) {
	defer c.conn.Close()
	defer unix.Close(c.pidfd)
	env, fds, err := c.conn.Recv()
	proto.CloseFDs(fds)
	if err == nil && env.Kind == kindExited {
		var e Exited
		if err := env.Decode(&e); err == nil {
			return syscall.WaitStatus(e.Status), nil
		}
	}
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(c.pidfd), Events: unix.POLLIN}}, -1)
		if err != unix.EINTR {
			break
		}
	}
	return 0, errors.New("the sandbox holder ended before the sandbox's init: its exit status is lost")
}

// Listen makes the holder's listening socket in dir (replacing a dead
// holder's), for Start.
func Listen(dir string) (*os.File, error) {
	p := filepath.Join(dir, Socket)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding %s: %w", p, err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// Files are the fds Start hands the holder (3, 4, 5 in it).
func Files(ln, userNS, goAhead *os.File) []*os.File { return []*os.File{ln, userNS, goAhead} }
