package parent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/internal/proc"
)

// initWatchEvery is how often the parent looks for a half-dead init.
const initWatchEvery = 250 * time.Millisecond

// threadReader reads a process's state and its threads from /proc. Once
// open it allocates nothing: the watch reads them four times a second for
// a sandbox's whole life, and garbage made there grew the supervisor's
// heap to the runtime's first collection at 4 MB.
type threadReader struct {
	stat, task int // fds of /proc/PID/stat and /proc/PID/task; 0 until opened
	buf        [4096]byte
}

// read fills tids (reused) with pid's thread ids, sorted, and returns
// whether its leader is a zombie and the leader's exit code as wait(2)
// encodes it (SIGSYS for a seccomp kill); ok is false once the process is
// gone. The fds stay open: pid is our child, not reaped while we read.
func (r *threadReader) read(pid int, tids []int32) (_ []int32, leaderZombie bool, code int, ok bool) {
	if r.stat == 0 {
		dir := "/proc/" + strconv.Itoa(pid)
		stat, err := unix.Open(dir+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return tids, false, 0, false
		}
		task, err := unix.Open(dir+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(stat)
			return tids, false, 0, false
		}
		r.stat, r.task = stat, task
	}
	n, err := unix.Pread(r.stat, r.buf[:], 0)
	if err != nil || n == 0 {
		return tids, false, 0, false
	}
	state, exit, err := proc.StatStateExit(r.buf[:n])
	if err != nil {
		return tids, false, 0, false
	}
	if _, err := unix.Seek(r.task, 0, 0); err != nil {
		return tids, false, 0, false
	}
	tids = tids[:0]
	for {
		n, err := unix.Getdents(r.task, r.buf[:])
		if err != nil {
			return tids, false, 0, false
		}
		if n <= 0 {
			break
		}
		tids = appendTIDs(tids, r.buf[:n])
	}
	slices.Sort(tids)
	return tids, state == 'Z', exit, len(tids) > 0
}

// close lets go of the fds.
func (r *threadReader) close() {
	if r.stat != 0 {
		unix.Close(r.stat)
		unix.Close(r.task)
		r.stat, r.task = 0, 0
	}
}

// appendTIDs appends the numeric names of the linux_dirent64 records in b.
func appendTIDs(tids []int32, b []byte) []int32 {
	for len(b) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			break
		}
		var id int32
		name := b[19:reclen]
		for _, c := range name {
			if c < '0' || c > '9' {
				break
			}
			id = id*10 + int32(c-'0')
		}
		if len(name) > 0 && name[0] >= '0' && name[0] <= '9' {
			tids = append(tids, id)
		}
		b = b[reclen:]
	}
	return tids
}

// initWatch ends a half-dead init with SIGKILL, which takes every thread
// and the pid namespace with it. A condition must be seen on two checks in
// a row: an init that exits normally passes through such states for a
// moment (its threads end one by one after exit_group).
type initWatch struct {
	pid     int
	seccomp bool // a seccomp filter is installed in init
	profile bool // that filter is a user's --seccomp FILE
	// threads: the filter may kill a single thread (or is a user's), so
	// init's threads are watched; nothing else leaves a process half-dead.
	threads bool
	reader  threadReader
	// confined is when init said it installs the filter; zero before, and
	// again once the payload started.
	confined time.Time
	prev     []int32 // threads at the previous check, sorted
	cur      []int32
	lost     int32 // a thread gone since, while the process lived
	seen     int
	dead     error // why init was ended; nil while it was not
	// done is set once init reported Exit or Error: its work is over, and
	// after initGrace it is ended whatever state it is in (a filter that
	// fails exit_group leaves it unable to exit).
	done time.Time
}

// initGrace is how long init may take to exit after its last report.
const initGrace = 5 * time.Second

// initStartBound is how long init may take, under a user's profile, from
// installing the filter to starting the payload: one fork and one exec
// (a filter failing close leaves it blocked on its own exec pipe).
const initStartBound = 30 * time.Second

// confining notes that init is about to install the filter, and looks at
// its threads once more before init does (it waits for Watched): every
// runtime thread is there by now, while the first look may have come
// before init's runtime started them (its maps written by its own stage,
// init is sent its configuration at once), and a thread the filter kills
// is noticed only if it was seen alive.
func (w *initWatch) confining() {
	w.confined = time.Now()
	w.check()
}

// started notes that the payload started.
func (w *initWatch) started() { w.confined = time.Time{} }

// reported notes that init sent its last message.
func (w *initWatch) reported() {
	if w.done.IsZero() {
		w.done = time.Now()
	}
}

// check is called every initWatchEvery while the parent waits.
func (w *initWatch) check() {
	if w.dead != nil {
		return
	}
	if !w.done.IsZero() && time.Since(w.done) > initGrace {
		unix.Kill(w.pid, unix.SIGKILL)
		w.dead = fmt.Errorf("the sandbox's init did not exit within %v of its last report; ended it%s", initGrace, w.hint())
		return
	}
	if w.profile && !w.confined.IsZero() && w.done.IsZero() && time.Since(w.confined) > initStartBound {
		unix.Kill(w.pid, unix.SIGKILL)
		w.dead = fmt.Errorf("the sandbox's init did not start the command within %v of installing the seccomp profile; ended it "+
			"(the profile likely fails or blocks a system call init makes to start it: allow those)", initStartBound)
		return
	}
	if !w.threads {
		return
	}
	tids, zombie, code, ok := w.reader.read(w.pid, w.cur)
	if !ok {
		return
	}
	for _, t := range w.prev {
		if _, found := slices.BinarySearch(tids, t); !found && w.lost == 0 {
			w.lost = t
		}
	}
	w.prev, w.cur = tids, w.prev
	// A zombie leader with live threads; or a lost thread in a process
	// that is not exiting (its leader not yet a zombie).
	halfDead := zombie && len(tids) > 1
	if !halfDead && (w.lost == 0 || zombie) {
		w.seen, w.lost = 0, 0
		return
	}
	if w.seen++; w.seen < 2 {
		return
	}
	unix.Kill(w.pid, unix.SIGKILL)
	switch {
	case halfDead && unix.Signal(code&0x7f) == unix.SIGSYS && w.seccomp:
		w.dead = errors.New("the seccomp profile killed the sandbox's init: its main thread made a system call the profile " +
			"answers with SCMP_ACT_KILL (kill the thread), which leaves init half-dead; allow the system calls init makes " +
			"after installing the filter, or use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS")
	case halfDead:
		w.dead = fmt.Errorf("the sandbox's init lost its main thread (wait status %#x) while its other threads lived on; ended it%s", code, w.hint())
	default:
		w.dead = fmt.Errorf("a thread of the sandbox's init (%d) was killed while the others lived on; ended it%s", w.lost, w.hint())
	}
}

func (w *initWatch) hint() string {
	if !w.seccomp {
		return ""
	}
	return " (the seccomp profile likely killed or failed a system call init makes after installing the filter: " +
		"SCMP_ACT_KILL kills only the calling thread; allow the calls init needs)"
}

// goFatalStatus is how a Go program ends on a fatal runtime error, its
// trace on stderr: out of threads (ulimit -u, a pids limit), memory
// (ulimit -v) or files (ulimit -n) among them.
const goFatalStatus = 2

// runningInitHint explains init's exit with status while the payload ran.
func runningInitHint(status int) string {
	if status != goFatalStatus {
		return ""
	}
	return " (its Go runtime's error is above: most likely it could not start a thread because the sandbox's processes " +
		"had reached their limit, --pids or RLIMIT_NPROC, which init shares)"
}

// initKilledHint explains a signal that killed init before it reported
// (0: init exited without reporting, with status); profile: the user's own
// seccomp profile (sandbox's default lets init run).
func initKilledHint(sig unix.Signal, status int, profile bool) string {
	if !profile {
		if sig == 0 && status == goFatalStatus {
			return " (its Go runtime's error is above: it could not start a thread, map memory or open a file; " +
				"check your limits: ulimit -u, ulimit -v, ulimit -n, a pids limit)"
		}
		return ""
	}
	switch sig {
	case unix.SIGSYS: // SCMP_ACT_KILL_PROCESS, or SCMP_ACT_TRAP (Go dies of it)
		return ": the seccomp profile killed the sandbox's init (a system call init makes after installing the filter; allow it)"
	case 0, unix.SIGTRAP, unix.SIGSEGV, unix.SIGABRT:
		// An exit without a report, or the Go runtime dying after calls
		// the filter failed (ERRNO), down to exit_group.
		return " (the seccomp profile may fail a system call init needs after installing the filter; allow it)"
	}
	return ""
}
