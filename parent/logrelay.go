package parent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/state"
)

// LogMax is the size at which a detached sandbox's log is rotated
// (state.LogFile becomes state.OldLogFile): the sandbox keeps at most twice
// this of its output, in a state directory that is often a tmpfs in memory
// ($XDG_RUNTIME_DIR). Before, a command writing fast filled it (4 GB in
// 8 s).
const LogMax = 16 << 20

// logDrain bounds the wait for the relay to copy what is left once the
// sandbox has ended (a process outside it that kept our output open, a
// network helper, must not hold the supervisor).
const logDrain = 2 * time.Second

// logRelay copies a detached sandbox's output into its log and rotates
// it: fds 1 and 2 of the background supervisor, which init and the
// command inherit, are a pipe it reads, where they were the log itself.
type logRelay struct {
	dir  string
	fds  []int // where the command's output goes: 1 and 2
	r    *os.File
	mu   sync.Mutex
	cur  *os.File // the log being written; fds 1 and 2 after stop
	size int64
	max  int64
	done chan struct{}
}

// startLogRelay puts a pipe on fds 1 and 2 (the log, as detach opened it)
// and starts copying from it into dir's log.
func startLogRelay(dir string, max int64) (*logRelay, error) {
	return relayFDs(dir, max, []int{1, 2})
}

// relayFDs is startLogRelay for fds (the first is the log).
func relayFDs(dir string, max int64, fds []int) (*logRelay, error) {
	logFD, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("taking the log from stdout: %w", err)
	}
	cur := os.NewFile(uintptr(logFD), filepath.Join(dir, state.LogFile))
	fi, err := cur.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		cur.Close()
		return nil, fmt.Errorf("the log of this detached sandbox is not a regular file (%v)", err)
	}
	// Both ends blocking: the command writes its output to a plain pipe
	// (os.Pipe's would be non-blocking, and EAGAIN on stdout breaks
	// programs); the reader is a goroutine of its own.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		cur.Close()
		return nil, fmt.Errorf("a pipe for the log: %w", err)
	}
	for _, fd := range fds {
		if err = unix.Dup3(p[1], fd, 0); err != nil {
			break
		}
	}
	unix.Close(p[1])
	if err != nil {
		unix.Close(p[0])
		for _, fd := range fds {
			unix.Dup3(logFD, fd, 0)
		}
		cur.Close()
		return nil, fmt.Errorf("putting the log's pipe on stdout: %w", err)
	}
	l := &logRelay{dir: dir, fds: fds, r: os.NewFile(uintptr(p[0]), "log pipe"), cur: cur, size: fi.Size(), max: max, done: make(chan struct{})}
	go l.copy()
	return l, nil
}

func (l *logRelay) copy() {
	defer close(l.done)
	defer l.r.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := l.r.Read(buf)
		if n > 0 {
			l.write(buf[:n])
		}
		if err != nil {
			return // EOF: no writer is left
		}
	}
}

// write appends b to the log and rotates it once it is max or more. A
// failed write (a full file system) loses that output, not the sandbox.
func (l *logRelay) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, _ := l.cur.Write(b)
	l.size += int64(n)
	if l.size < l.max {
		return
	}
	path := filepath.Join(l.dir, state.LogFile)
	if err := os.Rename(path, filepath.Join(l.dir, state.OldLogFile)); err != nil {
		return // kept growing rather than lost; tried again at the next write
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return // the old file, now OldLogFile, is written on
	}
	l.cur.Close()
	l.cur, l.size = f, 0
}

// stop puts the log back on fds 1 and 2 (what this process writes from now
// on goes there directly, and its own hold on the pipe ends) and waits,
// bounded, for the relay to copy what is left.
func (l *logRelay) stop() error {
	l.mu.Lock()
	var err error
	for _, fd := range l.fds {
		if e := unix.Dup3(int(l.cur.Fd()), fd, 0); e != nil {
			err = errors.Join(err, e)
		}
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-time.After(logDrain):
		// A writer outside the sandbox still holds the pipe: what it
		// writes from now on is not waited for (this process ends).
	}
	return err
}
