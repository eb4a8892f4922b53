package state

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"sandbox/internal/testenv"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "dev", "my_box.1-2", "A9"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", "-a", ".a", "a/b", "a b", "..", string(long)} {
		if ValidName(bad) == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}

func TestClaimLifecycle(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h, err := Claim("box")
	if err != nil {
		t.Fatal(err)
	}
	h.Info.Command = []string{"true"}
	if err := h.Write(); err != nil {
		t.Fatal(err)
	}
	if _, err := Claim("box"); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Claim: %v, want ErrInUse", err)
	}
	e, err := Lookup("box")
	if err != nil || !e.Live || !e.Running() || e.Command[0] != "true" {
		t.Fatalf("Lookup = %+v, %v; want the live record", e, err)
	}
	if err := Remove("box"); err == nil {
		t.Fatalf("Remove of a running sandbox succeeded")
	}
	h.Info.Detached = true
	if err := h.Finish(3); err != nil {
		t.Fatal(err)
	}
	e, err = Lookup("box")
	if err != nil || e.Live || e.Running() || e.Status != Exited || *e.ExitStatus != 3 {
		t.Fatalf("after Finish: %+v, %v; want the ended record with status 3", e, err)
	}
	// An ended record gives way to a new run of that name.
	h2, err := Claim("box")
	if err != nil {
		t.Fatalf("Claim over an ended record: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h2.Dir, recordFile)); !os.IsNotExist(err) {
		t.Errorf("the ended run's record survived a new claim")
	}
	if err := h2.Finish(0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h2.Dir); !os.IsNotExist(err) {
		t.Errorf("a foreground run's directory survived Finish")
	}
	if _, err := Lookup("box"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after the end: %v, want ErrNotFound", err)
	}
}

func TestStaleRecordRemoved(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h, err := Claim("gone")
	if err != nil {
		t.Fatal(err)
	}
	h.Info.Status = Running
	if err := h.Write(); err != nil {
		t.Fatal(err)
	}
	h.lock.Close() // as the kernel does when the owner is SIGKILLed
	list, err := List()
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %v, %v; want the stale record dropped", list, err)
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Errorf("stale directory %s not removed", h.Dir)
	}
}

func TestBaseDirFallbackMustBePrivate(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	base, err := BaseDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/tmp/sandbox-" + strconv.Itoa(os.Getuid()); base != want {
		t.Fatalf("BaseDir = %s, want %s", base, want)
	}
	fi, err := os.Lstat(base)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v, want a 0700 directory", base, fi.Mode(), err)
	}
	// Loosened, it is refused (someone could plant records in it).
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(base, 0o700)
	if _, err := BaseDir(); err == nil {
		t.Errorf("BaseDir accepted %s with mode 0755", base)
	}
}

func TestStartTime(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	err := cmd.Start()
	testenv.RequireOrSkip(t, err == nil, fmt.Sprintf("sleep(1): %v", err))
	defer cmd.Process.Kill()
	st, err := StartTime(cmd.Process.Pid)
	if err != nil || st == 0 {
		t.Fatalf("StartTime = %d, %v", st, err)
	}
	if !SameProcess(cmd.Process.Pid, st) || SameProcess(cmd.Process.Pid, st+1) {
		t.Errorf("SameProcess does not tell the start times apart")
	}
}
