package parent

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// halfDeadHelper, run in a re-executed test binary, leaves the process
// half-dead the way SCMP_ACT_KILL does to init: "leader" ends the thread
// group leader with exit(2) (not exit_group) while the runtime's other
// threads live on; "thread" ends another thread. "sleep" stays healthy.
const halfDeadEnv = "SANDBOX_TEST_HALF_DEAD"

func init() {
	switch os.Getenv(halfDeadEnv) {
	case "":
		return
	case "leader":
		runtime.LockOSThread() // package init runs on the leader
		os.Stdout.WriteString("ready\n")
		time.Sleep(200 * time.Millisecond) // let the runtime start its threads
		unix.RawSyscall(unix.SYS_EXIT, 0, 0, 0)
	case "thread":
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			time.Sleep(300 * time.Millisecond)
			close(done)
		}()
		os.Stdout.WriteString("ready\n")
		<-done
	default:
		os.Stdout.WriteString("ready\n")
	}
	time.Sleep(time.Minute)
	os.Exit(0)
}

func startHalfDead(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), halfDeadEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		t.Fatalf("helper: %v", err)
	}
	return cmd
}

// watchUntil runs the watch's checks, bounded, until it ends the process.
func watchUntil(t *testing.T, w *initWatch, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for w.dead == nil && time.Now().Before(deadline) {
		w.check()
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInitWatchHalfDeadLeader(t *testing.T) {
	cmd := startHalfDead(t, "leader")
	w := &initWatch{pid: cmd.Process.Pid, threads: true}
	defer w.reader.close()
	w.check() // the baseline
	watchUntil(t, w, 10*time.Second)
	if w.dead == nil || !strings.Contains(w.dead.Error(), "lost its main thread") {
		t.Fatalf("a zombie leader with live threads: want it ended as half-dead, got %v", w.dead)
	}
	waitEnded(t, cmd)
}

func TestInitWatchLostThread(t *testing.T) {
	cmd := startHalfDead(t, "thread")
	w := &initWatch{pid: cmd.Process.Pid, seccomp: true, threads: true}
	defer w.reader.close()
	w.check()
	watchUntil(t, w, 10*time.Second)
	if w.dead == nil || !strings.Contains(w.dead.Error(), "thread of the sandbox's init") || !strings.Contains(w.dead.Error(), "seccomp") {
		t.Fatalf("a thread gone from a live process: want it ended, naming seccomp, got %v", w.dead)
	}
	waitEnded(t, cmd)
}

func TestInitWatchHealthy(t *testing.T) {
	cmd := startHalfDead(t, "sleep")
	w := &initWatch{pid: cmd.Process.Pid, threads: true}
	defer w.reader.close()
	for i := 0; i < 10; i++ {
		w.check()
		time.Sleep(50 * time.Millisecond)
	}
	if w.dead != nil {
		t.Fatalf("a healthy process was ended: %v", w.dead)
	}
	// Under a user's profile, init installed it long ago and has not
	// started the payload: ended.
	w.profile, w.confined = true, time.Now().Add(-initStartBound-time.Second)
	w.check()
	if w.dead == nil || !strings.Contains(w.dead.Error(), "did not start the command") {
		t.Fatalf("no start after installing a profile: want it ended, got %v", w.dead)
	}
	waitEnded(t, cmd)
	cmd = startHalfDead(t, "sleep")
	w = &initWatch{pid: cmd.Process.Pid}
	// Its last report was long ago: ended after the grace.
	w.done = time.Now().Add(-initGrace - time.Second)
	w.check()
	if w.dead == nil || !strings.Contains(w.dead.Error(), "did not exit") {
		t.Fatalf("no exit after the last report: want it ended, got %v", w.dead)
	}
	waitEnded(t, cmd)
}

func waitEnded(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("want the process SIGKILLed, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not end within 10 s of the watch's SIGKILL")
	}
}

// The watch runs four times a second for a sandbox's whole life: once its
// reader is open it allocates nothing (its garbage grew the supervisor's
// heap to the runtime's first collection, 2 → 5 MB of RssAnon within
// minutes), and without a filter that may kill a thread it reads nothing.
func TestInitWatchAllocatesNothing(t *testing.T) {
	cmd := startHalfDead(t, "sleep")
	for _, threads := range []bool{true, false} {
		w := &initWatch{pid: cmd.Process.Pid, threads: threads}
		w.check() // opens the reader, sizes the thread lists
		if allocs := testing.AllocsPerRun(50, w.check); allocs != 0 {
			t.Errorf("threads %v: %v allocations a check, want 0", threads, allocs)
		}
		if w.dead != nil {
			t.Fatalf("threads %v: a healthy process was ended: %v", threads, w.dead)
		}
		if threads && (len(w.prev) < 2 || w.reader.stat == 0) {
			t.Errorf("threads watched: want the helper's runtime threads read, got %v", w.prev)
		}
		if !threads && (w.prev != nil || w.reader.stat != 0) {
			t.Errorf("threads not watched: want /proc left unread, got threads %v, reader fd %d", w.prev, w.reader.stat)
		}
		w.reader.close()
	}
}

func TestAppendTIDs(t *testing.T) {
	var b []byte
	for _, name := range []string{".", "..", "42", "7", "1234567"} {
		rec := make([]byte, 8+8+2+1+len(name)+1)
		rec = append(rec[:0], make([]byte, 19)...)
		rec = append(rec, name...)
		rec = append(rec, 0)
		for len(rec)%8 != 0 {
			rec = append(rec, 0)
		}
		binary.NativeEndian.PutUint16(rec[16:18], uint16(len(rec)))
		b = append(b, rec...)
	}
	got := appendTIDs(nil, b)
	if fmt.Sprint(got) != "[42 7 1234567]" {
		t.Errorf("appendTIDs: got %v, want [42 7 1234567]", got)
	}
	// A record longer than what is left ends the parse.
	binary.NativeEndian.PutUint16(b[16:18], uint16(len(b)+8))
	if got := appendTIDs(nil, b); len(got) != 0 {
		t.Errorf("a truncated buffer: got %v, want nothing", got)
	}
}

// TestInitKilledHint: init's end before it reported is blamed on seccomp
// only with the user's own profile (sandbox's default lets init run); a Go
// runtime's fatal error (status 2: no thread, no memory) points at the
// limits. Before, every run under the default filter that ran out of
// threads was told to fix its seccomp profile.
func TestInitKilledHint(t *testing.T) {
	for _, tc := range []struct {
		sig     unix.Signal
		status  int
		profile bool
		want    string
	}{
		{0, 2, false, "ulimit -u"},
		{0, 1, false, ""},
		{unix.SIGSYS, 0, false, ""},
		{0, 2, true, "seccomp profile"},
		{unix.SIGSYS, 0, true, "seccomp profile killed"},
	} {
		got := initKilledHint(tc.sig, tc.status, tc.profile)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("signal %d, status %d, profile %v: %q, want %q", tc.sig, tc.status, tc.profile, got, tc.want)
		}
		if !tc.profile && strings.Contains(got, "seccomp") {
			t.Errorf("signal %d, status %d, no profile: %q blames seccomp", tc.sig, tc.status, got)
		}
	}
}
