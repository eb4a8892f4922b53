package parent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/internal/proc"
)

// initWatchEvery is how often the parent looks for a half-dead init.
const initWatchEvery = 250 * time.Millisecond

// initThreads returns the ids of pid's threads, whether its leader is a
// zombie, and the leader's exit code as wait(2) encodes it (SIGSYS for a
// seccomp kill); ok is false once the process is gone.
func initThreads(pid int) (tids map[string]bool, leaderZombie bool, code int, ok bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, false, 0, false
	}
	fields, err := proc.StatFields(b)
	if err != nil {
		return nil, false, 0, false
	}
	if len(fields) > 52-3 { // exit_code, field 52
		code, _ = strconv.Atoi(string(fields[52-3]))
	}
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		return nil, false, 0, false
	}
	tids = make(map[string]bool, len(tasks))
	for _, t := range tasks {
		tids[t.Name()] = true
	}
	return tids, fields[0][0] == 'Z', code, true
}

// initWatch ends a half-dead init with SIGKILL, which takes every thread
// and the pid namespace with it. A condition must be seen on two checks in
// a row: an init that exits normally passes through such states for a
// moment (its threads end one by one after exit_group).
type initWatch struct {
	pid     int
	seccomp bool // a seccomp filter is installed in init
	profile bool // that filter is a user's --seccomp FILE
	// confined is when init said it installs the filter; zero before, and
	// again once the payload started.
	confined time.Time
	prev     map[string]bool // threads at the previous check
	lost     string          // a thread gone since, while the process lived
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
	tids, zombie, code, ok := initThreads(w.pid)
	if !ok {
		return
	}
	for t := range w.prev {
		if !tids[t] && w.lost == "" {
			w.lost = t
		}
	}
	w.prev = tids
	// A zombie leader with live threads; or a lost thread in a process
	// that is not exiting (its leader not yet a zombie).
	halfDead := zombie && len(tids) > 1
	if !halfDead && (w.lost == "" || zombie) {
		w.seen, w.lost = 0, ""
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
		w.dead = fmt.Errorf("a thread of the sandbox's init (%s) was killed while the others lived on; ended it%s", w.lost, w.hint())
	}
}

func (w *initWatch) hint() string {
	if !w.seccomp {
		return ""
	}
	return " (the seccomp profile likely killed or failed a system call init makes after installing the filter: " +
		"SCMP_ACT_KILL kills only the calling thread; allow the calls init needs)"
}

// initKilledHint explains a signal that killed init before it reported
// (0: init exited without reporting).
func initKilledHint(sig unix.Signal, seccomp bool) string {
	if !seccomp {
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
