package holder

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"sandbox/internal/proto"

	"golang.org/x/sys/unix"
)

// Serve is the holder's main: it waits for its go-ahead (its maps are
// written), then serves until it has been idle long enough. It returns the
// process's exit status.
func Serve() int {
	// Not a terminal's or a session's: hang-ups and interrupts are not for it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGPIPE)
	unix.CloseRange(goFD+1, ^uint(0), 0)
	var b [1]byte
	if n, _ := unix.Read(goFD, b[:]); n != 1 {
		return 1 // the starter died before writing the maps
	}
	unix.Close(goFD)
	var ns unix.Stat_t
	if err := unix.Fstat(nsFD, &ns); err != nil {
		return 1
	}
	idle := Idle
	if d, err := time.ParseDuration(os.Getenv(IdleEnv)); err == nil && d > 0 {
		idle = d
	}
	ln, err := net.FileListener(os.NewFile(listenFD, "holder.sock"))
	if err != nil {
		return 1
	}
	s := &server{ns: ns, uid: uint32(os.Getuid()), idle: idle, quit: make(chan struct{})}
	s.release() // start the idle clock
	go func() {
		<-s.quit
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return 0 // closed once idle
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		s.hold()
		go s.serve(uc)
	}
}

// server counts what keeps the holder alive: open connections and live
// children.
type server struct {
	ns   unix.Stat_t // the clients' user namespace
	uid  uint32
	idle time.Duration

	mu    sync.Mutex
	busy  int
	timer *time.Timer
	quit  chan struct{}
	done  bool
}

func (s *server) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

func (s *server) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy > 0 {
		s.busy--
	}
	if s.busy == 0 && !s.done {
		s.timer = time.AfterFunc(s.idle, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.busy == 0 && !s.done {
				s.done = true
				close(s.quit)
			}
		})
	}
}

// serve answers one client: one Spawn, then the child's end.
func (s *server) serve(uc *net.UnixConn) {
	defer s.release()
	f, err := uc.File()
	uc.Close()
	if err != nil {
		return
	}
	c := proto.FromFD(int(f.Fd()))
	defer c.Close()
	env, fds, err := c.Recv()
	if err != nil {
		return
	}
	defer proto.CloseFDs(fds)
	var req Request
	if env.Kind != kindSpawn || env.Decode(&req) != nil {
		c.Send(kindError, Failure{Msg: fmt.Sprintf("the sandbox holder expected %q, got %q", kindSpawn, env.Kind)})
		return
	}
	if err := s.check(int(f.Fd()), fds, req); err != nil {
		c.Send(kindError, Failure{Msg: err.Error()})
		return
	}
	files := fds[1 : 1+req.Files]
	cgroup := -1
	if req.Cgroup {
		cgroup = fds[1+req.Files]
	}
	pid, pidfd, err := spawn(req, files, cgroup)
	if err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		c.Send(kindError, Failure{Msg: err.Error(), Errno: int(errno)})
		return
	}
	// The connection stays open, and so the holder alive, until the
	// child is reaped.
	proto.CloseFDs(fds)
	fds = nil
	c.Send(kindSpawned, Spawned{Pid: pid}, pidfd)
	unix.Close(pidfd)
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	c.Send(kindExited, Exited{Status: uint32(ws)})
}

// check lets only a client of the holder's uid, in the user namespace the
// holder was started from, have anything started: a process inside a
// sandbox (in a namespace nested below) that reached the socket gets
// nothing.
func (s *server) check(conn int, fds []int, req Request) error {
	cred, err := unix.GetsockoptUcred(conn, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Errorf("the sandbox holder cannot identify its client: %w", err)
	}
	if cred.Uid != s.uid {
		return fmt.Errorf("the sandbox holder serves uid %d only", s.uid)
	}
	var peer unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/user", cred.Pid), &peer) != nil || peer.Dev != s.ns.Dev || peer.Ino != s.ns.Ino {
		return errors.New("the sandbox holder refuses clients outside the user namespace that started it (from inside a sandbox)")
	}
	var sent unix.Stat_t
	if len(fds) == 0 || unix.Fstat(fds[0], &sent) != nil || sent.Dev != s.ns.Dev || sent.Ino != s.ns.Ino {
		return errors.New("the sandbox holder refuses clients outside the user namespace that started it")
	}
	want := 1 + req.Files
	if req.Cgroup {
		want++
	}
	if req.Files < 3 || req.Files > MaxFiles || len(fds) != want || len(req.Args) == 0 {
		return fmt.Errorf("the sandbox holder got a malformed request (%d fds)", len(fds))
	}
	return nil
}

// spawn starts the holder's own executable as req asks, its user
// namespace's maps written by the holder (root of the parent namespace)
// before it runs.
func spawn(req Request, files []int, cgroup int) (pid, pidfd int, err error) {
	caps := make([]uintptr, 0, req.LastCap+1)
	for c := 0; c <= req.LastCap; c++ {
		caps = append(caps, uintptr(c))
	}
	sys := &syscall.SysProcAttr{
		Cloneflags:                 req.Cloneflags,
		UidMappings:                req.UIDs,
		GidMappings:                req.GIDs,
		GidMappingsEnableSetgroups: true,
		Setsid:                     true,
		AmbientCaps:                caps,
		PidFD:                      &pidfd,
	}
	if cgroup >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, cgroup
	}
	fds := make([]uintptr, len(files))
	for i, fd := range files {
		fds[i] = uintptr(fd)
	}
	pidfd = -1
	pid, err = syscall.ForkExec("/proc/self/exe", req.Args, &syscall.ProcAttr{Env: req.Env, Files: fds, Sys: sys})
	if err == nil && pidfd < 0 {
		// pidfds came with 5.3; a kernel without them still gets the
		// child, whose end the connection tells.
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		return 0, -1, errors.New("no pidfd for the started process")
	}
	return pid, pidfd, err
}
