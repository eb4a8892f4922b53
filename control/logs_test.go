package control

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/state"
)

// TestCopyLogAcrossRotation: logs shows what was rotated out, then the
// log; following, it goes on into the new log the relay makes.
func TestCopyLogAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	logPath, oldPath := filepath.Join(dir, state.LogFile), filepath.Join(dir, state.OldLogFile)
	os.WriteFile(oldPath, []byte("a\n"), 0o600)
	os.WriteFile(logPath, []byte("b\n"), 0o600)
	var out bytes.Buffer
	if err := copyLog(dir, &out, false, func() bool { return false }); err != nil || out.String() != "a\nb\n" {
		t.Fatalf("copyLog: %q, %v", out.String(), err)
	}

	// Following: the log is rotated as the relay does it (LogFile always
	// exists), once at a time, then twice between two of its reads.
	var live atomic.Bool
	live.Store(true)
	var got bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- copyLog(dir, &got, true, live.Load) }()
	appendTo := func(p, s string) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	rotate := func(next string) {
		temp := filepath.Join(dir, state.LogTemp)
		appendTo(temp, next)
		if err := os.Link(logPath, filepath.Join(dir, state.OldLogTemp)); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, state.OldLogTemp), oldPath); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(temp, logPath); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(150 * time.Millisecond)
	appendTo(logPath, "c\n")
	time.Sleep(150 * time.Millisecond)
	rotate("d\n")
	time.Sleep(250 * time.Millisecond)
	rotate("e\n") // twice within one of its 100 ms waits
	rotate("f\n")
	time.Sleep(250 * time.Millisecond)
	appendTo(logPath, "g\n")
	live.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("copyLog -f did not end after the sandbox did")
	}
	if want := "a\nb\nc\nd\ne\nf\ng\n"; got.String() != want {
		t.Errorf("followed %q, want %q", got.String(), want)
	}

	// Not following, the log and its old one being the same file (rotated
	// between the two opens) are one file, shown once.
	os.Remove(oldPath)
	os.Link(logPath, oldPath)
	out.Reset()
	if err := copyLog(dir, &out, false, func() bool { return false }); err != nil || out.String() != "f\ng\n" {
		t.Errorf("the log and the old log one file: %q, %v", out.String(), err)
	}

	os.Remove(logPath)
	if err := unix.Mkfifo(logPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := copyLog(dir, &out, false, func() bool { return false }); !errors.Is(err, ErrLogNotRegular) {
		t.Errorf("a FIFO for a log: %v", err)
	}
}
