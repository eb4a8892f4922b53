package initproc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"sandbox/internal/callersig"
	"sandbox/internal/proto"
	"sandbox/rootfs"

	"sandbox/internal/wire"
	"sandbox/journal"

	"golang.org/x/sys/unix"
)

// execEvent is what a client connection brings to init's main loop, which
// alone forks (from the thread that holds init's confinement).
type execEvent struct {
	conn *proto.Conn
	req  *wire.ExecRequest // a new command, with fds (stdin, stdout, stderr)
	fds  []int
	sig  int  // a signal for the connection's command
	gone bool // the client hung up
}

// serveExec accepts `sandbox exec` clients of the same user (the caller of
// `sandbox run`; another user's peer shows as the overflow uid) and feeds
// their messages to the main loop. Each client must also show, as the
// first fd of its request, that it lives in the user namespace `sandbox
// run` was started from (userNS): the same user inside any sandbox — this
// one or another that can see the state directory — cannot get hold of an
// fd of that namespace, so it cannot exec its way into a sandbox.
func serveExec(ln *os.File, want unix.Stat_t, uid int, events chan<- execEvent) {
	defer ln.Close()
	for {
		fd, _, err := unix.Accept4(int(ln.Fd()), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
			continue
		}
		if err != nil {
			return
		}
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || int(cred.Uid) != uid {
			unix.Close(fd)
			continue
		}
		go execClient(proto.FromFD(fd), want, events)
	}
}

func execClient(c *proto.Conn, userNS unix.Stat_t, events chan<- execEvent) {
	fromClient := wire.NewSequence(&wire.FromExecClient)
	env, fds, err := fromClient.Recv(c)
	var perr *wire.ProtocolError
	if errors.As(err, &perr) {
		c.Send(proto.KindError, wire.ChildError{Msg: err.Error(), Status: wire.StatusError})
	}
	if err != nil {
		c.Close()
		return
	}
	refuse := func(msg string) {
		proto.CloseFDs(fds)
		c.Send(proto.KindError, wire.ChildError{Msg: msg, Status: wire.StatusError})
		c.Close()
	}
	var req wire.ExecRequest
	if env.Kind != proto.KindExec || env.Decode(&req) != nil || len(req.Args) == 0 || len(fds) == 0 {
		refuse("malformed exec request")
		return
	}
	var st unix.Stat_t
	if unix.Fstat(fds[0], &st) != nil || st.Dev != userNS.Dev || st.Ino != userNS.Ino {
		refuse("exec is refused from inside a sandbox (only from the user namespace that started it)")
		return
	}
	unix.Close(fds[0])
	events <- execEvent{conn: c, req: &req, fds: fds[1:]}
	for {
		env, fds, err := fromClient.Expect(c, proto.KindSignal)
		proto.CloseFDs(fds)
		if err != nil { // gone, or out of order: as if the client hung up
			events <- execEvent{conn: c, gone: true}
			return
		}
		var s wire.Signal
		if env.Decode(&s) == nil && s.Signal > 0 && s.Signal < 65 {
			events <- execEvent{conn: c, sig: s.Signal}
		}
	}
}

// readSignals passes on the signals the parent forwards for the payload
// (wire.Signal) until the parent's end closes or breaks the protocol; only
// those it catches and forwards (callersig.Forwarded, callersig.JobControl).
func readSignals(conn *proto.Conn, seq *wire.Sequence, out chan<- syscall.Signal) {
	for {
		env, fds, err := seq.Expect(conn, proto.KindSignal)
		proto.CloseFDs(fds)
		if err != nil {
			return
		}
		var s wire.Signal
		if env.Decode(&s) == nil && forwardable(syscall.Signal(s.Signal)) {
			out <- syscall.Signal(s.Signal)
		}
	}
}

// forwardable says whether sig is one the parent passes on.
func forwardable(sig syscall.Signal) bool {
	return slices.Contains(callersig.Forwarded, os.Signal(sig)) || slices.Contains(callersig.JobControl, os.Signal(sig))
}

// supervise is init's main loop once the payload runs: it forwards the
// signals the parent passes on (fromCaller), reaps every process, starts
// exec'd commands and reports their ends, and returns the payload's exit
// status (returning ends PID 1, and the kernel kills whatever is left).
func supervise(conn *proto.Conn, payload int, children *childWatch, fromCaller <-chan syscall.Signal, execs <-chan execEvent, cfg *wire.ChildConfig) int {
	byPid := map[int]*proto.Conn{}
	byConn := map[*proto.Conn]int{}
	for {
		select {
		case sig := <-fromCaller:
			forward(payload, sig)
		case <-children.ended:
			reaped, rerr := reapAll()
			// Every exec'd command's end is told first: wait4 gives the
			// oldest child first, so a command that ended together with
			// the payload comes after it, and returning at the payload
			// would tell its client it was killed with the sandbox.
			var ended *wire.ChildExit
			for _, ex := range reaped {
				if ex.pid == payload {
					ended = &ex.Exit
					continue
				}
				if c, ok := byPid[ex.pid]; ok {
					c.Send(proto.KindExit, ex.Exit)
					c.Close()
					delete(byPid, ex.pid)
					delete(byConn, c)
				}
			}
			if ended != nil {
				// Before the parent hears of the exit and tears down:
				// fuse-overlayfs daemons die with PID 1.
				rootfs.SyncFuse()
				conn.SendBinary(proto.KindExit, *ended)
				return ended.Status()
			}
			if rerr != nil {
				// A filter failing wait4 (--seccomp): nothing could ever be
				// reaped, so init would wait forever.
				conn.Send(proto.KindError, wire.ChildError{Step: "reaping the payload", Msg: rerr.Error() + " (refused by the seccomp profile?)", Status: wire.StatusError})
				return wire.StatusError
			}
			children.reaped <- struct{}{}
		case ev := <-execs:
			switch {
			case ev.req != nil:
				// As files at once: an *os.File closes its fd when
				// collected, so the fd must never be closed any other way.
				stdio := make([]*os.File, len(ev.fds))
				for i, fd := range ev.fds {
					stdio[i] = os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", i))
				}
				pid, err := startExec(ev.conn, cfg, ev.req, stdio)
				for _, f := range stdio {
					f.Close()
				}
				if err != nil {
					status := wire.StatusError
					var ce *wire.ChildError
					if errors.As(err, &ce) {
						status = ce.Status
					}
					ev.conn.Send(proto.KindError, wire.ChildError{Msg: err.Error(), Status: status})
					ev.conn.Close()
					continue
				}
				byPid[pid], byConn[ev.conn] = ev.conn, pid
				ev.conn.Send(proto.KindStarted, wire.ChildStarted{PID: pid})
			case ev.sig != 0:
				if pid, ok := byConn[ev.conn]; ok {
					forward(pid, syscall.Signal(ev.sig))
				}
			case ev.gone:
				// The client hung up before its command ended: it was
				// killed (it waits for the command otherwise), so the
				// command's process group goes too, as the whole sandbox
				// goes with a killed `sandbox run`; nothing of a caller's
				// timed-out exec runs on unseen. Not reaped yet, the
				// command's pid cannot have been reused as a group's.
				if pid, ok := byConn[ev.conn]; ok {
					unix.Kill(-pid, unix.SIGKILL)
					delete(byPid, pid)
					delete(byConn, ev.conn)
					ev.conn.Close()
				}
			}
		}
	}
}

// forward passes sig on to pid, the payload or an exec'd command. Job
// control (SIGTSTP: Ctrl-Z of `sandbox run` or `sandbox exec` without a
// pty; SIGCONT: fg, bg) stops or continues the whole process group pid
// leads, with SIGSTOP, as SIGTSTP is discarded for a group with no parent
// in its session, which a command started by init is.
func forward(pid int, sig syscall.Signal) {
	switch sig {
	case syscall.SIGTSTP:
		unix.Kill(-pid, syscall.SIGSTOP)
	case syscall.SIGCONT:
		unix.Kill(-pid, sig)
	default:
		unix.Kill(pid, sig)
	}
}

// childWatch tells init's main loop when a child has ended, in place of
// SIGCHLD through os/signal (see Init): a goroutine blocks in
// waitid(WEXITED|WNOWAIT), which leaves the child to reapAll, sends on
// ended, and looks again once the loop has reaped (reaped). The loop
// reaps, so a pid it holds (an exec'd command's, the payload's) is never
// freed for reuse before the loop has seen its end.
type childWatch struct {
	ended  chan struct{}
	reaped chan struct{}
	start  chan struct{}
}

// watchChildren makes the watch's goroutine, locked to a thread of its
// own, and returns once it is: call it before init is confined, so that
// the parent's look at init's threads has seen that thread (a --seccomp
// profile that kills it for its waitid then ends init, where a thread
// made later and killed unseen left init waiting forever). It takes the
// place of os/signal's thread. It looks once begin is called, after the
// payload's start, and ends when init has no child left (ECHILD).
func watchChildren() *childWatch {
	w := &childWatch{ended: make(chan struct{}), reaped: make(chan struct{}, 1), start: make(chan struct{})}
	locked := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the watch
		close(locked)
		<-w.start
		w.run()
	}()
	<-locked
	return w
}

// begin starts the watch; init has a child by now.
func (w *childWatch) begin() { close(w.start) }

func (w *childWatch) run() {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		switch err {
		case nil:
		case unix.EINTR:
			continue
		case unix.ECHILD:
			return // none left: the payload is reaped, the loop has returned
		default:
			// Refused (a --seccomp profile failing waitid): reapAll looks
			// every 10 ms instead, and says if wait4 is refused too.
			time.Sleep(10 * time.Millisecond)
		}
		w.ended <- struct{}{}
		<-w.reaped
	}
}

// exited is one reaped process.
type exited struct {
	pid  int
	Exit wire.ChildExit
}

// reapAll collects every child that has exited (as PID 1, orphans too).
// An error other than ECHILD means wait4 itself is refused.
func reapAll() ([]exited, error) {
	var out []exited
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.ECHILD || (err == nil && pid <= 0) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("wait4: %w", err)
		}
		ex := exited{pid: pid, Exit: wire.ChildExit{Code: ws.ExitStatus()}}
		if ws.Signaled() {
			ex.Exit.Signal = int(ws.Signal())
		}
		out = append(out, ex)
	}
}

// startExec starts req like the payload: same environment (with req's
// settings on top), working directory unless req names one, and init's
// confinement, which a fork inherits.
func startExec(c *proto.Conn, cfg *wire.ChildConfig, req *wire.ExecRequest, fds []*os.File) (int, error) {
	dir := cfg.Plan.Chdir
	if req.Chdir != "" {
		dir = req.Chdir
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = unix.ENOTDIR
		}
		return 0, &wire.ChildError{Msg: fmt.Sprintf("working directory %s: %v", dir, journal.UnwrapSyscall(err)), Status: wire.StatusError}
	}
	env := mergeEnv(cfg.Env, req.Env)
	path, status, err := lookPath(req.Args[0], env, dir)
	if err != nil {
		return 0, &wire.ChildError{Msg: err.Error(), Status: status}
	}
	sys := &syscall.SysProcAttr{}
	var stdio []*os.File
	if req.TTY {
		master, slave, err := openPTY(req.Rows, req.Cols)
		if err != nil {
			return 0, fmt.Errorf("allocating a terminal: %w", err)
		}
		err = c.Send(proto.KindPTY, nil, int(master.Fd()))
		master.Close()
		if err != nil {
			slave.Close()
			return 0, err
		}
		defer slave.Close()
		stdio = []*os.File{slave, slave, slave}
		sys.Setsid, sys.Setctty, sys.Ctty = true, true, 0
	} else {
		if len(fds) != 3 {
			return 0, fmt.Errorf("exec request with %d descriptors, want stdin, stdout, stderr", len(fds))
		}
		stdio = fds
		// Own session: the caller's terminal, if any, stays the payload's
		// business, and the command is not in init's process group.
		sys.Setsid = true
	}
	pid, err := forkExec(path, req.Args, dir, env, stdio, sys) // reaped by reapAll
	if err != nil {
		status, err := execFailed(req.Args[0], path, err)
		return 0, &wire.ChildError{Msg: err.Error(), Status: status}
	}
	return pid, nil
}

// mergeEnv sets each KEY=VALUE of sets over base.
func mergeEnv(base, sets []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range sets {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}
