package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestValidNameAsRegexp: the hand-written check accepts exactly what the
// regexp it replaces accepted, on every string of up to 3 bytes over an
// alphabet with each class, around the length limit, and on non-ASCII.
func TestValidNameAsRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	alpha := []string{"a", "Z", "0", "9", "_", ".", "-", "/", " ", "\n", "\x00", "é", "\xff", "`", "{", "@", "[", ":"}
	cases := []string{""}
	for _, a := range alpha {
		cases = append(cases, a)
		for _, b := range alpha {
			cases = append(cases, a+b)
			for _, c := range alpha {
				cases = append(cases, a+b+c)
			}
		}
	}
	for _, n := range []int{62, 63, 64, 100} {
		cases = append(cases, strings.Repeat("a", n), "a"+strings.Repeat("-", n-1), strings.Repeat("a", n-1)+"\n")
	}
	for _, s := range cases {
		if got, want := validName(s), re.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, the regexp says %v", s, got, want)
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

// TestUnreadableRecordKept: an ended sandbox whose record cannot be read
// (garbled by hand, a FIFO) is kept with its log, as ended with no known
// status, until rm removes it: before, List and Lookup took it for a
// killed run's and removed it, log and all, without a word.
func TestUnreadableRecordKept(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	for what, plant := range map[string]func(rec string) error{
		"garbled": func(rec string) error { return os.WriteFile(rec, []byte("garbage{"), 0o600) },
		"a FIFO":  func(rec string) error { os.Remove(rec); return unix.Mkfifo(rec, 0o600) },
	} {
		h, err := Claim("kept")
		if err != nil {
			t.Fatal(err)
		}
		h.Info.Detached = true
		if err := os.WriteFile(h.Path(LogFile), []byte("output\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := h.Finish(3); err != nil {
			t.Fatal(err)
		}
		if err := plant(filepath.Join(h.Dir, recordFile)); err != nil {
			t.Fatal(err)
		}
		list, err := List()
		if err != nil || len(list) != 1 || list[0].Name != "kept" || list[0].Status != Exited || list[0].ExitStatus != nil || list[0].Live || !list[0].Detached {
			t.Fatalf("%s record: List = %+v, %v; want it listed as ended, status unknown", what, list, err)
		}
		// Its start is unknown: `ps --json` leaves it out rather than
		// show year 1.
		if b, err := json.Marshal(list[0].Info); err != nil || bytes.Contains(b, []byte(`"created"`)) {
			t.Fatalf("%s record: as JSON %s (%v); want no created time", what, b, err)
		}
		e, err := Lookup("kept")
		if err != nil {
			t.Fatalf("%s record: Lookup: %v", what, err)
		}
		if b, err := os.ReadFile(filepath.Join(e.Dir, LogFile)); err != nil || string(b) != "output\n" {
			t.Fatalf("%s record: the log is gone: %q %v", what, b, err)
		}
		if err := Remove("kept"); err != nil {
			t.Fatalf("%s record: Remove: %v", what, err)
		}
		if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
			t.Fatalf("%s record: not removed by Remove", what)
		}
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
	// The fix given is chmod, not removal (it holds every sandbox's
	// records and logs).
	if _, err := BaseDir(); err == nil || !strings.Contains(err.Error(), "chmod 0700 "+base) || strings.Contains(err.Error(), "remove it") {
		t.Errorf("BaseDir with %s at mode 0755: %v, want refused with chmod as the fix", base, err)
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

// A directory whose removal was cut short (a SIGKILLed command): no lock,
// only the exec socket; and a .rm- directory of a killed sweep. The next
// List removes both, and leaves a live sandbox alone.
func TestLocklessLeftoversSwept(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	base, err := BaseDir()
	if err != nil {
		t.Fatal(err)
	}
	live, err := Claim("live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Finish(0)
	ghost := filepath.Join(base, "ghost")
	half := filepath.Join(base, removingPrefix+"old-1-2")
	for _, d := range []string{ghost, half} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, SocketFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Young, it may be a claim in progress: left alone.
	if list, _ := List(); len(list) != 1 {
		t.Fatalf("List = %+v, want the live sandbox", list)
	}
	if _, err := os.Lstat(ghost); err != nil {
		t.Fatalf("a directory a moment old was removed: %v", err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(ghost, old, old)
	list, err := List()
	if err != nil || len(list) != 1 || list[0].Name != "live" {
		t.Fatalf("List = %+v, %v; want only the live sandbox", list, err)
	}
	for _, d := range []string{ghost, half} {
		if _, err := os.Lstat(d); !os.IsNotExist(err) {
			t.Errorf("%s was not removed", d)
		}
	}
	if _, err := os.Lstat(live.Dir); err != nil {
		t.Errorf("the live sandbox's directory went: %v", err)
	}
}

// Claims racing with sweeps: every claim succeeds and holds the lock of
// the directory that bears its name; no sweep removes a claimed one.
func TestClaimRacesSweep(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				List()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 200 {
		h, err := Claim("box")
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		if !sameFile(h.lock, filepath.Join(h.Dir, lockFile)) {
			t.Fatalf("claim %d holds a lock its directory no longer has", i)
		}
		if i%2 == 0 {
			h.Info.Status = Running
			if err := h.Write(); err != nil {
				t.Fatal(err)
			}
			if !sameFile(h.lock, filepath.Join(h.Dir, lockFile)) {
				t.Fatalf("claim %d: its directory was swept while it ran", i)
			}
		}
		if err := h.Finish(0); err != nil {
			t.Fatalf("finish %d: %v", i, err)
		}
	}
}

// The state directory must be the caller's and closed to others wherever
// it is, and so must the directories above it.
func TestBaseDirOwnerAndMode(t *testing.T) {
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	base, err := BaseDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := BaseDir(); err == nil || !strings.Contains(err.Error(), base) {
		t.Errorf("BaseDir accepted %s with mode 0777: %v", base, err)
	}
	os.Chmod(base, 0o700)
	// A runtime directory others can write (not sticky): refused.
	if err := os.Chmod(rt, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err = BaseDir()
	if err == nil || !strings.Contains(err.Error(), rt) || !strings.Contains(err.Error(), "XDG_RUNTIME_DIR") {
		t.Errorf("BaseDir accepted a runtime directory of mode 0777: %v", err)
	}
	// Sticky, as /tmp: others cannot rename our entries.
	if err := unix.Chmod(rt, 0o1777); err != nil {
		t.Fatal(err)
	}
	if _, err := BaseDir(); err != nil {
		t.Errorf("BaseDir refused a sticky runtime directory: %v", err)
	}
	os.Chmod(rt, 0o700)
	// A sandbox's directory opened to others is refused too.
	h, err := Claim("box")
	if err != nil {
		t.Fatal(err)
	}
	h.Info.Status = Running
	h.Write()
	os.Chmod(h.Dir, 0o777)
	if _, err := Lookup("box"); err == nil || !strings.Contains(err.Error(), "not a private directory") {
		t.Errorf("Lookup accepted a sandbox directory of mode 0777: %v", err)
	}
	os.Chmod(h.Dir, 0o700)
	h.Finish(0)
	// A symlink in place of the state directory is refused.
	if err := os.Remove(base); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), base); err != nil {
		t.Fatal(err)
	}
	if _, err := BaseDir(); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("BaseDir accepted a symlink as the state directory: %v", err)
	}
}

// TestRecordNotAFile: a record replaced by a FIFO, a symlink or something
// over 1 MiB is no record (the live sandbox lists as starting), never a
// hang or an unbounded read; a real one is read whole.
func TestRecordNotAFile(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h, err := Claim("odd")
	if err != nil {
		t.Fatal(err)
	}
	defer h.lock.Close()
	h.Info.Command = []string{"sh", "-c", strings.Repeat("x", 4000)}
	h.Info.Status = Running
	if err := h.Write(); err != nil {
		t.Fatal(err)
	}
	if e, err := Lookup("odd"); err != nil || e.Status != Running || len(e.Command) != 3 || e.Command[2] != h.Info.Command[2] {
		t.Fatalf("Lookup of a 4 KB record: %v, %v", e.Info.Status, err)
	}
	rec := filepath.Join(h.Dir, recordFile)
	prefix := `{"name":"odd","status":"running","command":["`
	big := append([]byte(prefix), make([]byte, 2<<20)...)
	for i := len(prefix); i < len(big); i++ {
		big[i] = 'y'
	}
	for what, plant := range map[string]func() error{
		"a FIFO":      func() error { return unix.Mkfifo(rec, 0o600) },
		"a symlink":   func() error { return os.Symlink(filepath.Join(h.Dir, lockFile), rec) },
		"a directory": func() error { return os.Mkdir(rec, 0o700) },
		"over 1 MiB":  func() error { return os.WriteFile(rec, append(big, `"]}`...), 0o600) },
	} {
		os.RemoveAll(rec)
		if err := plant(); err != nil {
			t.Fatal(err)
		}
		done := make(chan Entry, 1)
		go func() {
			e, _ := Lookup("odd")
			done <- e
		}()
		select {
		case e := <-done:
			if !e.Live || e.Status != Starting {
				t.Errorf("record is %s: Lookup = live %v, status %q; want a live sandbox still starting", what, e.Live, e.Status)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record is %s: Lookup hangs", what)
		}
	}
}

// TestForeignDirectoriesKept: the state directory can hold what is not a
// sandbox's (the image store's images/ and layers/ with XDG_DATA_HOME =
// XDG_RUNTIME_DIR, --ephemeral=disk's ephemeral/ with XDG_CACHE_HOME, a
// --upper put there): never listed, claimed or removed. Before, List
// took any such directory a few seconds old for a killed run's and
// removed it with all it held.
func TestForeignDirectoriesKept(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	base, err := BaseDir()
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	plant := func(dir string, files ...string) {
		t.Helper()
		for _, f := range files {
			p := filepath.Join(base, dir, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		os.Chtimes(filepath.Join(base, dir), old, old)
	}
	plant("images", "alpine.json")
	plant("ephemeral", "run-1/upper/file")
	// A dead run's lock and record, and a file no run makes.
	plant("mixed", lockFile, recordFile, "mine.txt")
	if err := os.WriteFile(filepath.Join(base, "mixed", recordFile), []byte(`{"name":"mixed","status":"running"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if list, err := List(); err != nil || len(list) != 0 {
			t.Fatalf("List = %+v, %v; want nothing listed", list, err)
		}
	}
	for _, p := range []string{"images/alpine.json", "ephemeral/run-1/upper/file", "mixed/mine.txt"} {
		if _, err := os.Stat(filepath.Join(base, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, d := range []string{"images", "ephemeral"} {
		if _, err := os.Lstat(filepath.Join(base, d, lockFile)); err == nil {
			t.Errorf("a lock was made in %s", d)
		}
		if _, err := Lookup(d); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%s) = %v, want ErrNotFound", d, err)
		}
	}
	if _, err := Claim("images"); err == nil || !strings.Contains(err.Error(), "not a sandbox's") {
		t.Errorf("Claim(images) = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(base, "images/alpine.json")); err != nil {
		t.Errorf("after the claim: %v", err)
	}
}

// TestLockNotARegularFile: a FIFO in a lock's place hung ps, logs, stop,
// rm and exec (open(2) of a FIFO waits for a writer; exec then ignored
// SIGTERM); a directory was taken for a lock. Now each is refused at once
// with the fix, and ps lists the others.
func TestLockNotARegularFile(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	base, err := BaseDir()
	if err != nil {
		t.Fatal(err)
	}
	good, err := Claim("good")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Finish(0)
	for name, plant := range map[string]func(string) error{
		"fifo": func(p string) error { return unix.Mkfifo(p, 0o600) },
		"dir":  func(p string) error { return os.Mkdir(p, 0o700) },
	} {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := plant(filepath.Join(dir, lockFile)); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if list, err := List(); err != nil || len(list) != 1 || list[0].Name != "good" {
				t.Errorf("%s: List = %+v, %v; want the good one", name, list, err)
			}
			if _, err := Lookup(name); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: Lookup = %v, want refused", name, err)
			}
			if _, err := Claim(name); err == nil || !strings.Contains(err.Error(), "not a regular file") && !strings.Contains(err.Error(), "is a directory") {
				t.Errorf("%s: Claim = %v, want refused", name, err)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s as the lock: hung", name)
		}
	}
}

// TestLockRemovedWhileRunning: a running sandbox whose lock was removed or
// replaced by hand (its supervisor, this test, alive) is listed as running
// and its name is not taken. Before, ps removed its record and log, and a
// new run of that name took them over while it ran.
func TestLockRemovedWhileRunning(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h, err := Claim("busy")
	if err != nil {
		t.Fatal(err)
	}
	defer h.lock.Close()
	h.Info.Pid, h.Info.Status, h.Info.Detached = os.Getpid(), Running, true
	h.Info.PidStart, _ = StartTime(os.Getpid())
	if err := h.Write(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Path(LogFile), []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(h.Dir, lockFile)
	for _, how := range []string{"removed", "replaced"} {
		os.Remove(lock)
		if how == "replaced" {
			os.WriteFile(lock, nil, 0o600)
		}
		old := time.Now().Add(-time.Minute)
		os.Chtimes(h.Dir, old, old)
		os.Chtimes(lock, old, old)
		list, err := List()
		if err != nil || len(list) != 1 || !list[0].Live || list[0].Name != "busy" {
			t.Fatalf("lock %s: List = %+v, %v; want it running", how, list, err)
		}
		if _, err := Claim("busy"); !errors.Is(err, ErrInUse) {
			t.Fatalf("lock %s: Claim = %v, want ErrInUse", how, err)
		}
		if !list[0].Running() {
			t.Fatalf("lock %s: Running() = false with its supervisor alive (stop would take it for ended)", how)
		}
		if b, err := os.ReadFile(h.Path(LogFile)); err != nil || string(b) != "precious\n" {
			t.Fatalf("lock %s: the log is gone: %q %v", how, b, err)
		}
	}
}

// TestKilledDetachedKeepsLog: a detached run whose supervisor was killed
// keeps its log and record (ended, status unknown) until rm. Before, the
// next ps swept both: the output was gone.
func TestKilledDetachedKeepsLog(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h, err := Claim("bg")
	if err != nil {
		t.Fatal(err)
	}
	h.Info.Status, h.Info.Detached = Running, true
	if err := h.Write(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Path(LogFile), []byte("output\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.lock.Close() // as the kernel does when the supervisor is SIGKILLed
	for range 2 {
		list, err := List()
		if err != nil || len(list) != 1 || list[0].Status != Exited || list[0].ExitStatus != nil || list[0].Live {
			t.Fatalf("List = %+v, %v; want it ended, status unknown", list, err)
		}
	}
	if b, err := os.ReadFile(h.Path(LogFile)); err != nil || string(b) != "output\n" {
		t.Fatalf("the log: %q %v", b, err)
	}
	if err := Remove("bg"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Errorf("not removed by Remove: %v", err)
	}
}
