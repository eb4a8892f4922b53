package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sandbox/internal/wire"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExitReport(t *testing.T) {
	code := func(n int) *int { return &n }
	childErr := &wire.ChildFailure{E: wire.ChildError{Step: "", Msg: "x: command not found", Status: wire.StatusNotFound}}
	for _, c := range []struct {
		name   string
		status int
		ex     *wire.ChildExit
		err    error
		ooms   int64
		want   ExitReport
	}{
		{"exit 0", 0, &wire.ChildExit{Code: 0}, nil, 0, ExitReport{Status: 0, Cause: CauseExited, Code: code(0)}},
		{"exit 3", 3, &wire.ChildExit{Code: 3}, nil, 0, ExitReport{Status: 3, Cause: CauseExited, Code: code(3)}},
		{"exit 137 by itself", 137, &wire.ChildExit{Code: 137}, nil, 0, ExitReport{Status: 137, Cause: CauseExited, Code: code(137)}},
		{"SIGTERM", 143, &wire.ChildExit{Signal: 15}, nil, 0, ExitReport{Status: 143, Cause: CauseSignaled, Signal: 15, SignalName: "SIGTERM"}},
		{"SIGKILL, no OOM", 137, &wire.ChildExit{Signal: 9}, nil, 0, ExitReport{Status: 137, Cause: CauseSignaled, Signal: 9, SignalName: "SIGKILL"}},
		{"OOM-killed command", 137, &wire.ChildExit{Signal: 9}, nil, 1, ExitReport{Status: 137, Cause: CauseOOMKilled, Signal: 9, SignalName: "SIGKILL", OOMKills: 1}},
		{"OOM-killed init", 137, nil, errors.New("killed by the OOM killer"), 2, ExitReport{Status: 137, Cause: CauseOOMKilled, Signal: 9, SignalName: "SIGKILL", OOMKills: 2}},
		{"OOM elsewhere, command exits", 0, &wire.ChildExit{Code: 0}, nil, 1, ExitReport{Status: 0, Cause: CauseExited, Code: code(0), OOMKills: 1}},
		{"not found", 127, nil, childErr, 0, ExitReport{Status: 127, Cause: CauseNotFound}},
		{"not executable", 126, nil, &wire.ChildFailure{E: wire.ChildError{Msg: "x: not executable", Status: 126}}, 0, ExitReport{Status: 126, Cause: CauseNotExecutable}},
		{"sandbox error", 125, nil, errors.New("boom"), 0, ExitReport{Status: 125, Cause: CauseSandboxError}},
	} {
		got := exitReport(c.status, c.ex, c.err, c.ooms)
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(c.want)
		if string(g) != string(w) {
			t.Errorf("%s: %s, want %s", c.name, g, w)
		}
	}
}

func TestErrorReport(t *testing.T) {
	if errorReport(nil) != nil {
		t.Error("an error report without an error")
	}
	for _, c := range []struct {
		err  error
		want ErrorReport
	}{
		{&wire.ChildFailure{E: wire.ChildError{Step: "changing to the working directory", Msg: "/x: no such file or directory"}},
			ErrorReport{"changing to the working directory", "/x: no such file or directory"}},
		{&wire.ChildFailure{E: wire.ChildError{Msg: "x: command not found"}}, ErrorReport{"starting the command", "x: command not found"}},
		{AtStep("writing the id maps", errors.New("writing the id maps: newuidmap failed")),
			ErrorReport{"writing the id maps", "writing the id maps: newuidmap failed"}},
		{fmt.Errorf("killed by the OOM killer (memory limit 64M) (%w)", AtStep("running init", errors.New("init killed"))),
			ErrorReport{"running init", "killed by the OOM killer (memory limit 64M) (init killed)"}},
		{errors.New("plain"), ErrorReport{"running the sandbox", "plain"}},
	} {
		if got := errorReport(c.err); *got != c.want {
			t.Errorf("%v: %+v, want %+v", c.err, *got, c.want)
		}
	}
}

func TestOpenReport(t *testing.T) {
	if o, err := OpenReport(""); o != nil || err != nil {
		t.Errorf("no --report: %v %v", o, err)
	}
	dir := t.TempDir()
	_, err := OpenReport(filepath.Join(dir, "missing", "r.json"))
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--report") {
		t.Errorf("unwritable path: %v, want a usage error naming --report", err)
	}
	if _, err := OpenReport(dir); !errors.As(err, &ue) {
		t.Errorf("a directory: %v", err)
	}
	p := filepath.Join(dir, "r.json")
	os.WriteFile(p, []byte(strings.Repeat("old ", 1000)), 0o644)
	o, err := OpenReport(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(PrepareFailed([]string{"true"}, Usagef("--hostname: bad"))); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	var r Report
	if err := json.Unmarshal(b, &r); err != nil || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("not one JSON line (%v): %q", err, b)
	}
	if r.Exit.Status != wire.StatusError || r.Exit.Cause != CauseSandboxError || r.Error == nil || r.Error.Msg != "--hostname: bad" ||
		r.Steps == nil || r.Warnings == nil || r.Fallbacks == nil {
		t.Errorf("refused run's report %s", b)
	}
}

// TestReportKeys: the report's JSON has exactly its documented top-level
// keys; bookkeeping fields the parent fills in stay out of it.
func TestReportKeys(t *testing.T) {
	r := &Report{LimitsMode: "strict", OomKills: 1, InitShare: &wire.InitReport{}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"cgroup", "command", "duration_ms", "error", "exit", "fallbacks", "hostname", "identity", "name",
		"network", "root", "startup_ms", "steps", "version", "warnings"}
	if !slices.Equal(keys, want) {
		t.Errorf("report keys %q, want %q", keys, want)
	}
}

// TestOpenReportFIFO: a FIFO no process reads is refused within a moment
// (before, the run waited in open for ever, with no output); one whose
// reader comes within it gets the report, its writes blocking as usual.
func TestOpenReportFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "r.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := OpenReport(fifo)
		done <- err
	}()
	select {
	case err := <-done:
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no process reads") {
			t.Errorf("a FIFO without a reader: %v, want a usage error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OpenReport of a FIFO without a reader still waits after 10 s")
	}

	// A reader that comes a moment after the run starts (jq . <fifo &).
	opened := make(chan *os.File, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Error(err)
		}
		opened <- r
	}()
	o, err := OpenReport(fifo)
	r := <-opened
	if r == nil {
		t.FailNow()
	}
	defer r.Close()
	if err != nil {
		t.Fatalf("a FIFO with a reader: %v", err)
	}
	// Through SyscallConn: Fd() would make it blocking itself.
	var fl int
	rc, err := o.f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { fl, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	}
	if err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("the report's fd is left non-blocking (flags %#x, %v)", fl, err)
	}
	if err := o.Write(PrepareFailed([]string{"true"}, Usagef("bad"))); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1<<16)
	n, _ := r.Read(b)
	if !json.Valid(b[:n]) {
		t.Errorf("the reader got %q", b[:n])
	}
}
