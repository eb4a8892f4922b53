package holder

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sandbox/idmap"
	"sandbox/internal/proc"

	"golang.org/x/sys/unix"
)

var (
	runUIDs = []idmap.Mapping{{Inside: 0, Outside: 1001, Count: 1}, {Inside: 1, Outside: 200000, Count: 65536}}
	runGIDs = []idmap.Mapping{{Inside: 0, Outside: 1001, Count: 1}, {Inside: 1, Outside: 200000, Count: 65536}}
)

const identityText = "      1001       1001          1\n    200000     200000      65536\n"

func good() facts {
	return facts{owner: 1001, parent: [2]uint64{4, 7}, self: [2]uint64{4, 7}, uidMap: identityText, gidMap: identityText}
}

func TestCheck(t *testing.T) {
	if err := good().check(1001, runUIDs, runGIDs); err != nil {
		t.Fatalf("the identity map of our ranges, ours, child of our namespace: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*facts)
		want string
	}{
		{"wrong owner", func(f *facts) { f.owner = 1002 }, "belongs to uid 1002"},
		{"wrong parent", func(f *facts) { f.parent = [2]uint64{4, 8} }, "not a child of our user namespace"},
		{"not identity", func(f *facts) { f.uidMap = "0 1001 1\n1 200000 65536\n" }, "not the identity map"},
		{"gids not identity", func(f *facts) { f.gidMap = "1001 1001 1\n200000 300000 65536\n" }, "gid_map"},
		{"a range missing", func(f *facts) { f.uidMap = "1001 1001 1\n" }, "not the identity map"},
		{"more than ours", func(f *facts) { f.uidMap = identityText + "300000 300000 10\n" }, "not the identity map"},
		{"garbage", func(f *facts) { f.gidMap = "1001 1001\n" }, "gid_map"},
		{"empty", func(f *facts) { f.uidMap = "" }, "no lines"},
	} {
		f := good()
		c.edit(&f)
		err := f.check(1001, runUIDs, runGIDs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	m := func(in, out, n uint32) idmap.Mapping { return idmap.Mapping{Inside: in, Outside: out, Count: n} }
	got := idmap.Format(Identity([]idmap.Mapping{m(0, 1001, 1), m(1, 1002, 9), m(10, 200000, 5), m(15, 100, 1)}))
	want := "100 100 1\n1001 1001 10\n200000 200000 5\n"
	if got != want {
		t.Fatalf("Identity: %q, want %q", got, want)
	}
}

// TestVerifyNamespace: Verify on real namespace fds refuses one that is
// not a child of ours owned by us (here our own, or the initial one).
func TestVerifyNamespace(t *testing.T) {
	ns, err := os.Open("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := Verify(ns, identityText, identityText, runUIDs, runGIDs); err == nil {
		t.Fatal("our own namespace was taken for a holder's")
	}
}

// get is what a run does with the holder: Fetch, then Check.
func get(dir string, uids, gids []idmap.Mapping) (*NS, error) {
	ns, err := Fetch(dir)
	if err != nil {
		return nil, err
	}
	if err := ns.Check(uids, gids); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// TestGetRefusesOtherSockets: a socket in the directory whose answer is
// not a namespace of ours is refused, never used.
func TestGetRefusesOtherSockets(t *testing.T) {
	dir := t.TempDir()
	if _, err := get(dir, runUIDs, runGIDs); err != ErrNone {
		t.Fatalf("no socket: %v, want ErrNone", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, Socket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := get(dir, runUIDs, runGIDs); err != ErrNone {
		t.Fatalf("a socket nobody listens on: %v, want ErrNone", err)
	}
	unix.Listen(fd, 4)
	ns, _ := os.Open("/proc/self/ns/user")
	defer ns.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2; i++ {
			c, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			if i == 0 {
				unix.Sendmsg(c, []byte("ok\n"+identityText+"\x00"+identityText), unix.UnixRights(int(ns.Fd())), nil, 0)
			} else {
				unix.Sendmsg(c, []byte("refused: no"), nil, nil, 0)
			}
			unix.Close(c)
		}
	}()
	if _, err := get(dir, runUIDs, runGIDs); err == nil || err == ErrNone {
		t.Errorf("a namespace not a child of ours: %v, want refused", err)
	}
	if _, err := get(dir, runUIDs, runGIDs); err == nil || !strings.Contains(err.Error(), "no") {
		t.Errorf("a refusal: %v", err)
	}
	<-done
}

func TestDirPrivate(t *testing.T) {
	base := t.TempDir()
	d, err := Dir(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Dir(base); err == nil {
		t.Fatal("a holder directory open to others was accepted")
	}
}

// TestFailedRecently: a holder that failed holds off new ones for a while.
func TestFailedRecently(t *testing.T) {
	dir := t.TempDir()
	if FailedRecently(dir) {
		t.Fatal("no log, yet failed recently")
	}
	note(dir, os.ErrPermission)
	if !FailedRecently(dir) {
		t.Fatal("a fresh log does not hold off a new holder")
	}
	old := time.Now().Add(-2 * Idle)
	os.Chtimes(filepath.Join(dir, logName), old, old)
	if FailedRecently(dir) {
		t.Fatal("an old log still holds off a new holder")
	}
}

// TestAlone: the holder ends once its cgroup holds nothing but itself.
func TestAlone(t *testing.T) {
	var s server
	p := filepath.Join(t.TempDir(), "cgroup.procs")
	me := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		procs string
		want  bool
	}{{me + "\n", true}, {me + "\n1\n", false}, {"1\n", false}, {"", false}, {me + "0\n", false}} {
		os.WriteFile(p, []byte(c.procs), 0o600)
		if got := alone(p, &s.buf); got != c.want {
			t.Errorf("alone with %q: %v, want %v", c.procs, got, c.want)
		}
	}
	if alone(filepath.Join(t.TempDir(), "none"), &s.buf) {
		t.Error("alone without a cgroup.procs file")
	}
	// Twice a second for the holder's life: only the path's C string.
	os.WriteFile(p, []byte(me+"\n1\n"), 0o600)
	if a := testing.AllocsPerRun(20, func() { alone(p, &s.buf) }); a > 1 {
		t.Errorf("alone: %v allocations, want at most 1", a)
	}
}

// TestStatusField: the client's NoNewPrivs, read without allocating.
func TestStatusField(t *testing.T) {
	var s server
	status, err := proc.ReadFileInto("/proc/self/status", s.buf[:])
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := field(status, "NoNewPrivs:"); !ok || (string(v) != "0" && string(v) != "1") {
		t.Fatalf("NoNewPrivs of /proc/self/status: %q, %v", v, ok)
	}
	if v, ok := field([]byte("Name:\tx\nNoNewPrivs:\t1"), "NoNewPrivs:"); !ok || string(v) != "1" {
		t.Errorf("the last line without a newline: %q, %v", v, ok)
	}
	if _, ok := field([]byte("Name:\tx\n"), "NoNewPrivs:"); ok {
		t.Error("a field that is not there was found")
	}
	if a := testing.AllocsPerRun(20, func() {
		b, _ := proc.ReadFileInto("/proc/self/status", s.buf[:])
		field(b, "NoNewPrivs:")
	}); a > 1 {
		t.Errorf("reading the status: %v allocations, want at most 1", a)
	}
}
