package parent

import (
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
// sandbox has ended (a process outside it that kept the pipe open must not
// hold the supervisor).
const logDrain = 2 * time.Second

// logRelay copies a detached sandbox's output into its log and rotates
// it. The command's stdout and stderr (init's, Spec.Output) are the write
// end of a pipe only the sandbox holds; this supervisor's own fds 1 and 2
// are the current log file, moved at each rotation, so that its lines (a
// crash's trace among them) reach the log without the relay, and nothing
// the command does to its pipe (O_NONBLOCK, keeping it full) touches them.
type logRelay struct {
	dir     string
	fds     []int    // this process's log fds: 1 and 2
	w       *os.File // the pipe's write end, for init (Spec.Output)
	r       *os.File
	mu      sync.Mutex
	cur     *os.File // the log being written
	size    int64
	max     int64
	retryAt int64 // after a rotation that failed, the size to try again at
	done    chan struct{}
}

// startLogRelay starts the relay into dir's log, which fds 1 and 2 are
// (detach opened it); the caller gives w to init.
func startLogRelay(dir string, max int64) (*logRelay, error) {
	return relayFDs(dir, max, []int{1, 2})
}

// relayFDs is startLogRelay for this process's log fds (the first is read
// for the log).
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
	l := &logRelay{dir: dir, fds: fds, r: os.NewFile(uintptr(p[0]), "log pipe"), w: os.NewFile(uintptr(p[1]), "log pipe"),
		cur: cur, size: fi.Size(), max: max, done: make(chan struct{})}
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
			return // EOF: the sandbox's last process has gone
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
	if l.size >= l.max && l.size >= l.retryAt {
		if err := l.rotate(); err != nil {
			l.retryAt = l.size + l.max/4 // not at every write
		}
	}
}

// rotate makes the log OldLogFile and starts a new one, so that LogFile
// always exists for a reader: the new file is made aside, the current one
// linked as the old one, and the new one renamed over it. This process's
// fds 1 and 2 move to the new one (dup3 replaces them atomically, so a
// line written meanwhile lands in one file or the other).
func (l *logRelay) rotate() error {
	path := filepath.Join(l.dir, state.LogFile)
	temp, oldTemp := filepath.Join(l.dir, state.LogTemp), filepath.Join(l.dir, state.OldLogTemp)
	os.Remove(temp)
	os.Remove(oldTemp)
	f, err := os.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	err = os.Link(path, oldTemp)
	if err == nil {
		err = os.Rename(oldTemp, filepath.Join(l.dir, state.OldLogFile))
	}
	if err == nil {
		err = os.Rename(temp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(temp)
		os.Remove(oldTemp)
		return err
	}
	l.cur.Close()
	l.cur, l.size, l.retryAt = f, 0, 0
	for _, fd := range l.fds {
		// Cannot fail for two open fds but on EINTR/EBUSY, and then
		// the supervisor's lines only land in the older log.
		unix.Dup3(int(f.Fd()), fd, 0)
	}
	return nil
}

// stop waits, bounded, for the relay to copy what is left: the last of
// the command's output, rotated like the rest, before the supervisor's own
// last lines.
func (l *logRelay) stop() {
	l.w.Close() // Run closed it once init had it; not if init never started
	select {
	case <-l.done:
	case <-time.After(logDrain):
		// A process outside the sandbox still holds the pipe: what it
		// writes from now on is relayed until this process exits.
	}
}
