package cgroupdelegate

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeCgroup makes a directory shaped like a cgroup: the given interface
// files with their contents.
func fakeCgroup(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOwnerName(t *testing.T) {
	o := Owner{PID: 4242, Start: 1092296}
	if o.Name() != "sandbox-4242-1092296" {
		t.Errorf("Name = %q", o.Name())
	}
	if got, ok := ParseName(o.Name()); !ok || got != o {
		t.Errorf("ParseName(%q) = %+v, %v", o.Name(), got, ok)
	}
	for _, bad := range []string{Leaf, "sandbox-042-1", "sandbox-1-", "sandbox-x-1", "sandbox-1-2-3", "sandbox-0-5", "other-1-2", "sandbox-1-2.scope"} {
		if o, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) = %+v, want no owner", bad, o)
		}
	}
}

func TestProcessOwner(t *testing.T) {
	proc := t.TempDir()
	// The command name holds ") " to trip a naive parser.
	stat := "77 (evil) name) S 1 77 77 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5555 1000 10"
	fakeCgroup(t, filepath.Join(proc, "77"), map[string]string{"stat": stat})
	fakeCgroup(t, filepath.Join(proc, "78"), map[string]string{"stat": strings.Replace(strings.Replace(stat, "77", "78", 1), ") S", ") Z", 1)})
	o, err := ProcessOwner(proc, "77")
	if err != nil || o != (Owner{77, 5555}) {
		t.Fatalf("ProcessOwner = %+v, %v", o, err)
	}
	if !o.Alive(proc) || (Owner{77, 5556}).Alive(proc) || (Owner{78, 5555}).Alive(proc) || (Owner{79, 1}).Alive(proc) {
		t.Error("Alive: a reused pid, a zombie or a missing process counted as the owner")
	}
	self, err := ProcessOwner("/proc", "self")
	if err != nil || self.PID != os.Getpid() || !self.Alive("/proc") {
		t.Errorf("self: %+v, %v", self, err)
	}
}

func TestWritable(t *testing.T) {
	dir := fakeCgroup(t, t.TempDir(), map[string]string{"cgroup.procs": "", "cgroup.subtree_control": ""})
	if !Writable(dir) {
		t.Error("own fake cgroup is not writable")
	}
	if os.Getuid() != 0 { // root may write anyway
		os.Chmod(filepath.Join(dir, "cgroup.subtree_control"), 0o444)
		if Writable(dir) {
			t.Error("read-only cgroup.subtree_control counted as delegated")
		}
	}
	if Writable(filepath.Join(dir, "missing")) {
		t.Error("a missing cgroup counted as delegated")
	}
}

func TestApply(t *testing.T) {
	dir := fakeCgroup(t, t.TempDir(), map[string]string{"memory.max": "max", "pids.max": "max"})
	l, err := ParseLimits(Flags{Memory: "64M", Pids: "20"}, fakeDevices{})
	if err != nil {
		t.Fatal(err)
	}
	skipped, err := Apply(dir, l.Plan())
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].File != "memory.swap.max" {
		t.Errorf("skipped %+v, want the implied memory.swap.max", skipped)
	}
	if read(t, filepath.Join(dir, "memory.max")) != "67108864" || read(t, filepath.Join(dir, "pids.max")) != "20" {
		t.Error("limits not written")
	}
	l, _ = ParseLimits(Flags{CPUs: "1"}, fakeDevices{})
	if _, err := Apply(dir, l.Plan()); err == nil || !strings.HasPrefix(err.Error(), "--cpus 1: writing") {
		t.Errorf("missing cpu.max: %v", err)
	}
}

func TestEnableSkipsEnabled(t *testing.T) {
	dir := fakeCgroup(t, t.TempDir(), map[string]string{"cgroup.subtree_control": "memory pids"})
	if err := Enable(dir, []string{"memory", "pids"}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "cgroup.subtree_control")); got != "memory pids" {
		t.Errorf("enabled controllers were written again: %q", got)
	}
	if err := Enable(dir, []string{"memory", "cpu"}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "cgroup.subtree_control")); got != "+cpu" {
		t.Errorf("wrote %q, want +cpu alone", got)
	}
}

func TestKey(t *testing.T) {
	dir := fakeCgroup(t, t.TempDir(), map[string]string{"memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"})
	if n, err := Key(dir, "memory.events", "oom_kill"); err != nil || n != 1 {
		t.Errorf("oom_kill = %d, %v", n, err)
	}
	if _, err := Key(dir, "memory.events", "nope"); err == nil {
		t.Error("missing key: no error")
	}
}

func TestCleanStaleFake(t *testing.T) {
	base := t.TempDir()
	self, err := ProcessOwner("/proc", "self")
	if err != nil {
		t.Fatal(err)
	}
	dead := Owner{PID: self.PID, Start: self.Start + 1} // a reused pid: not ours
	for _, d := range []string{self.Name(), dead.Name(), Leaf, "other", "sandbox-99999999-1"} {
		fakeCgroup(t, filepath.Join(base, d), nil)
	}
	removed, err := CleanStale(base, "/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(base, dead.Name()), filepath.Join(base, "sandbox-99999999-1")}
	slices.Sort(removed)
	if !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	ents, _ := os.ReadDir(base)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if !reflect.DeepEqual(left, []string{"other", self.Name(), Leaf}) {
		t.Errorf("left %q", left)
	}
}

func TestProcs(t *testing.T) {
	dir := fakeCgroup(t, t.TempDir(), map[string]string{"cgroup.procs": "12\n345\n"})
	if got, err := Procs(dir); err != nil || !reflect.DeepEqual(got, []int{12, 345}) {
		t.Errorf("Procs = %v, %v", got, err)
	}
	if _, err := Procs(filepath.Join(dir, "gone")); err == nil {
		t.Error("Procs of a missing cgroup: no error")
	}
}

// TestKeyBounded: an interface file read through a record the user can
// edit (ps reads a running sandbox's cpu.stat and memory.current) is a
// regular file read to 64 KiB at most: before, a FIFO there hung ps and
// a symlink to /dev/zero grew it without bound.
func TestKeyBounded(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "cpu.stat"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "memory.current")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte(strings.Repeat("x 1\n", 20000)+"oom_kill 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := Key(dir, "cpu.stat", "usage_usec"); err == nil {
			t.Error("a FIFO read as cpu.stat")
		}
		if _, err := ReadInterface(dir, "memory.current"); err == nil {
			t.Error("a symlink to /dev/zero read as memory.current")
		}
		if _, err := Key(dir, "memory.events", "oom_kill"); err == nil {
			t.Error("an 80 KB memory.events read whole")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hung")
	}
}
