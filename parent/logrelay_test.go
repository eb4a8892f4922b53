package parent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"sandbox/state"
)

// TestLogRelayRotates: what the command writes reaches the log in order,
// the log is rotated at the bound (the state directory keeps at most twice
// it, the newest output last, and LogFile is there all along), the
// command's end of the pipe is blocking, and this process's own fds stay
// on the log and end on the current one. Before, the log was the command's
// stdout itself and grew without bound.
func TestLogRelayRotates(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, state.LogFile)
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	log.WriteString("start\n")
	// Two fds standing in for 1 and 2, both the log, as detach sets them.
	var own [2]int
	for i := range own {
		if own[i], err = unix.FcntlInt(log.Fd(), unix.F_DUPFD_CLOEXEC, 100); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(own[i])
	}
	log.Close()
	const max = 4096
	l, err := relayFDs(dir, max, own[:])
	if err != nil {
		t.Fatal(err)
	}
	if fl, err := unix.FcntlInt(l.w.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("the command's end of the pipe is non-blocking (%#x, %v)", fl, err)
	}
	var all bytes.Buffer
	all.WriteString("start\n")
	for i := range 1000 {
		line := fmt.Sprintf("line %04d\n", i)
		if _, err := l.w.WriteString(line); err != nil {
			t.Fatal(err)
		}
		all.WriteString(line)
		if i%50 == 0 {
			if _, err := os.Lstat(logPath); err != nil {
				t.Fatalf("during the rotations: %v", err)
			}
		}
	}
	l.stop()
	// After stop, both fds write to the current log.
	unix.Write(own[1], []byte("after\n"))
	all.WriteString("after\n")
	cur, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(dir, state.OldLogFile))
	if err != nil {
		t.Fatalf("nothing rotated out of a %d byte log at %d: %v", all.Len(), max, err)
	}
	// A write of the relay may take a file up to max plus one read.
	if len(old) > max+64<<10 || len(cur) > max+64<<10 || len(old) < max {
		t.Errorf("sizes: %s %d, %s %d; bound %d", state.OldLogFile, len(old), state.LogFile, len(cur), max)
	}
	kept := append(old, cur...)
	if !bytes.HasSuffix(all.Bytes(), kept) {
		t.Errorf("%s then %s (%d bytes) is not the end of what was written (%d bytes)", state.OldLogFile, state.LogFile, len(kept), all.Len())
	}
	for _, n := range []string{state.LogTemp, state.OldLogTemp} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s left behind", n)
		}
	}
}
