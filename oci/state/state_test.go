package state

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCheckID(t *testing.T) {
	for _, id := range []string{"a", "abc-1_2.3", "+x", "-y", strings.Repeat("a", 1024)} {
		if err := CheckID(id); err != nil {
			t.Errorf("CheckID(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", ".a", "a/b", "a b", "../x", strings.Repeat("a", 1025)} {
		if err := CheckID(id); err == nil {
			t.Errorf("CheckID(%q): accepted", id)
		}
	}
}

func TestCreateLoadSaveList(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	c, err := Create(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(root); st.Mode().Perm() != 0o700 {
		t.Errorf("root mode %v, want 0700", st.Mode().Perm())
	}
	if _, err := Create(root, "c1"); err == nil || !strings.Contains(err.Error(), `container "c1" already exists`) {
		t.Errorf("second Create: %v", err)
	}
	if _, err := Load(root, "c1"); err == nil {
		t.Error("Load of a record not saved yet worked")
	}
	c.Bundle, c.Pid = "/b", os.Getpid()
	c.PidStart, err = StartTime(c.Pid)
	if err != nil {
		t.Fatal(err)
	}
	c.Annotations = map[string]string{"k": "v"}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	d, err := Load(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Bundle != "/b" || d.Pid != c.Pid || d.Annotations["k"] != "v" || d.Dir != c.Dir {
		t.Errorf("loaded %+v, saved %+v", d, c)
	}
	if _, err := Load(root, "nope"); err == nil || !strings.Contains(err.Error(), `container "nope" does not exist`) {
		t.Errorf("Load unknown: %v", err)
	}
	l, err := List(root)
	if err != nil || len(l) != 1 || l[0].ID != "c1" {
		t.Errorf("List: %v %v", l, err)
	}
	if l, err := List(filepath.Join(root, "missing")); err != nil || len(l) != 0 {
		t.Errorf("List of a missing root: %v %v", l, err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("dir left: %v", err)
	}
}

func TestRootWritableByOthers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(root, "x"); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("Create under a 0777 root: %v", err)
	}
}

// TestStatus walks a record through created, running and stopped with a
// plain sleep standing in for the container's init.
func TestStatus(t *testing.T) {
	root := t.TempDir()
	c, err := Create(root, "s")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(); st != specs.StateCreating {
		t.Errorf("no pid yet: %s", st)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c.Pid = cmd.Process.Pid
	if c.PidStart, err = StartTime(c.Pid); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(); st != specs.StateCreating {
		t.Errorf("pid known, create not done: %s", st)
	}
	if err := c.MarkCreated(); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(c.Dir, FifoFile)
	if err := os.WriteFile(fifo, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(); st != specs.StateCreated {
		t.Errorf("fifo present: %s", st)
	}
	os.Remove(fifo)
	s, err := c.State()
	if err != nil || s.Status != specs.StateRunning || s.Pid != c.Pid || s.Version != specs.Version || s.ID != "s" {
		t.Errorf("running: %+v %v", s, err)
	}
	// A pid whose start time differs is someone else's.
	c.PidStart++
	if st, _ := c.Status(); st != specs.StateStopped {
		t.Errorf("start time differs: %s", st)
	}
	c.PidStart--
	cmd.Process.Kill()
	cmd.Wait()
	s, err = c.State()
	if err != nil || s.Status != specs.StateStopped || s.Pid != 0 {
		t.Errorf("after kill: %+v %v", s, err)
	}
}

func TestLock(t *testing.T) {
	c, err := Create(t.TempDir(), "l")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := c.Lock()
	if err != nil {
		t.Fatal(err)
	}
	old := lockWait
	lockWait = 200 * time.Millisecond
	defer func() { lockWait = old }()
	if _, err := c.Lock(); err == nil || !strings.Contains(err.Error(), "holds its lock") {
		t.Errorf("second lock: %v", err)
	}
	unlock()
	u2, err := c.Lock()
	if err != nil {
		t.Fatal(err)
	}
	u2()
}
