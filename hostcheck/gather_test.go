package hostcheck

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/idmap"
	"sandbox/internal/testenv"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

const subuidText = `# comment
alice:100000:65536
1000:300000:1000
bob:150000:65536

bob:400000:10
carol:x:1
2000:500000:65536
`

func TestGatherSubidsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	writeFile(t, file, subuidText, 0o644)
	s := gatherSubids(idmap.UID, file, "no-such-getsubids", "alice", 1000)
	if s.FileErr != nil || s.Getsubids {
		t.Fatalf("FileErr %v, Getsubids %v", s.FileErr, s.Getsubids)
	}
	// By name and by uid, in file order.
	if want := []idmap.Range{rng(file, 2, 100000, 65536), rng(file, 3, 300000, 1000)}; !reflect.DeepEqual(s.Own, want) {
		t.Errorf("Own = %v, want %v", s.Own, want)
	}
	// Every other user's well-formed entries; carol's malformed one is left out.
	want := []OwnedRange{{Owner: "bob", Range: rng(file, 4, 150000, 65536)}, {Owner: "bob", Range: rng(file, 6, 400000, 10)}, {Owner: "2000", Range: rng(file, 8, 500000, 65536)}}
	if !reflect.DeepEqual(s.Others, want) {
		t.Errorf("Others = %v, want %v", s.Others, want)
	}
	if r := judgeSubids(idmap.UID, s, "alice", 1000, 1000, false); r.Status != Warn || !strings.Contains(r.Message, "overlaps bob's 150000:65536") {
		t.Errorf("judged %+v", r)
	}

	s = gatherSubids(idmap.UID, file, "no-such-getsubids", "dave", 3000)
	if s.FileErr != nil || len(s.Own) != 0 || len(s.Others) != 5 {
		t.Errorf("dave: %+v", s)
	}
	s = gatherSubids(idmap.UID, file, "no-such-getsubids", "carol", 3001)
	if s.FileErr == nil || !strings.Contains(s.FileErr.Error(), "line 7") {
		t.Errorf("carol's malformed entry: %v", s.FileErr)
	}
	s = gatherSubids(idmap.UID, filepath.Join(t.TempDir(), "none"), "no-such-getsubids", "alice", 1000)
	if s.FileErr != nil || s.Own != nil || s.Others != nil {
		t.Errorf("missing file: %+v", s)
	}
}

func TestGatherSubidsUnreadable(t *testing.T) {
	testenv.RequireOrSkip(t, os.Getuid() != 0, "a non-root user (root reads a mode 0000 file)")
	file := filepath.Join(t.TempDir(), "subgid")
	writeFile(t, file, subuidText, 0)
	s := gatherSubids(idmap.GID, file, "no-such-getsubids", "alice", 1000)
	if !errors.Is(s.FileErr, os.ErrPermission) {
		t.Errorf("FileErr = %v", s.FileErr)
	}
}

// A getsubids of our own answers as shadow's does: uids for USER, gids
// for -g USER, exit status 1 for a user without ranges.
func TestGatherSubidsGetsubids(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "getsubids")
	writeFile(t, fake, `#!/bin/sh
case "$*" in
"alice") echo "0: alice 700000 65536" ;;
"-g alice") echo "0: alice 800000 65536"; echo "1: alice 900000 10" ;;
*) echo "Error fetching ranges" >&2; exit 1 ;;
esac
`, 0o755)
	file := filepath.Join(dir, "subuid")
	writeFile(t, file, subuidText, 0o644)
	u := gatherSubids(idmap.UID, file, fake, "alice", 1000)
	if !u.Getsubids || u.NSSErr != nil || !reflect.DeepEqual(u.NSS, []idmap.Range{rng("getsubids", 1, 700000, 65536)}) {
		t.Errorf("uids: %+v", u)
	}
	g := gatherSubids(idmap.GID, filepath.Join(dir, "subgid"), fake, "alice", 1000)
	if !reflect.DeepEqual(g.NSS, []idmap.Range{rng("getsubids", 1, 800000, 65536), rng("getsubids", 2, 900000, 10)}) {
		t.Errorf("gids: %+v", g)
	}
	if r := judgeSubids(idmap.GID, g, "alice", 1000, 1000, false); r.Status != OK || !strings.Contains(r.Message, "from getsubids") {
		t.Errorf("judged %+v", r)
	}
	// The file and the provider disagree.
	if r := judgeSubids(idmap.UID, u, "alice", 1000, 1000, false); r.Status != Warn || !strings.Contains(r.Message, "gives 700000:65536") {
		t.Errorf("judged %+v", r)
	}
	n := gatherSubids(idmap.UID, filepath.Join(dir, "none"), fake, "bob", 1001)
	if !n.Getsubids || n.NSS != nil || n.NSSErr != nil {
		t.Errorf("bob: %+v", n)
	}
}

func TestGatherHelper(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "newuidmap")
	writeFile(t, plain, "#!/bin/sh\n", 0o755)
	h := gatherHelper(plain)
	var he *idmap.HelperError
	if h.Path != plain || h.Setuid || h.FileCaps || !errors.As(h.Err, &he) {
		t.Errorf("plain file: %+v", h)
	}
	if r := judgeHelper(h, false); r.Status != Fail || r.Blocks || !strings.Contains(r.Fix, "reinstall") {
		t.Errorf("judged %+v", r)
	}
	if h := gatherHelper("no-such-newuidmap"); h.Path != "" || h.Err != nil {
		t.Errorf("missing: %+v", h)
	}
	real, err := exec.LookPath("newuidmap")
	testenv.RequireOrSkip(t, err == nil, "newuidmap (package uidmap)")
	var st unix.Stat_t
	testenv.RequireOrSkip(t, unix.Stat(real, &st) == nil && st.Mode&unix.S_ISUID != 0 && st.Uid == 0,
		"a setuid-root newuidmap (scripts/setup-host.sh checks it)")
	if h := gatherHelper("newuidmap"); h.Path != real || !h.Setuid || h.Err != nil {
		t.Errorf("the real newuidmap: %+v", h)
	}
}

func TestDevice(t *testing.T) {
	if d := device("/dev/null"); !d.Exists || d.Err != nil || d.Mode != 0o666 {
		t.Errorf("/dev/null: %+v", d)
	}
	if d := device("/dev/no-such-device"); d.Exists {
		t.Errorf("missing node: %+v", d)
	}
	testenv.RequireOrSkip(t, os.Getuid() != 0, "a non-root user (root opens a mode 0600 node of root's)")
	// A node the caller may not open, as /dev/net/tun at 0600 is.
	locked := filepath.Join(t.TempDir(), "locked")
	writeFile(t, locked, "", 0o600)
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	d := device(locked)
	if !d.Exists || d.Mode != 0 || !errors.Is(d.Err, syscall.EACCES) || d.UID != uint32(os.Getuid()) {
		t.Errorf("unopenable: %+v", d)
	}
	if r := judgeDevice("tun", d, "tun", "x"); r.Status != Warn || !strings.Contains(r.Message, "mode 0000") || !strings.Contains(r.Fix, "chmod 0666") {
		t.Errorf("judged %+v", r)
	}
}

func TestGatherHost(t *testing.T) {
	f := Gather("someone", uint32(os.Getuid()), uint32(os.Getgid()))
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if f.Kernel != unix.ByteSliceToString(u.Release[:]) || f.MaxUserNS == "" || !f.Seccomp {
		t.Errorf("kernel %q, max_user_namespaces %q, seccomp %v", f.Kernel, f.MaxUserNS, f.Seccomp)
	}
	if f.Subuid.File != "/etc/subuid" || f.Subgid.File != "/etc/subgid" || f.Newuidmap.Name != "newuidmap" || f.Newgidmap.Name != "newgidmap" {
		t.Errorf("subids %+v %+v, helpers %+v %+v", f.Subuid, f.Subgid, f.Newuidmap, f.Newgidmap)
	}
	if f.Tun.Path != "/dev/net/tun" || f.Fuse.Path != "/dev/fuse" || f.RootFSType == "" {
		t.Errorf("devices %+v %+v, / is %q", f.Tun, f.Fuse, f.RootFSType)
	}
	if f.Cgroup.UserBus == "" && f.Cgroup.UserBusErr == nil {
		t.Error("no user bus and no reason")
	}
}

// sessionBus runs a session bus for the test: dbus-run-session keeps it up
// while its child, which prints the address, waits on stdin.
func sessionBus(t *testing.T) string {
	t.Helper()
	runSession, err := exec.LookPath("dbus-run-session")
	testenv.RequireOrSkip(t, err == nil, "dbus-run-session (Debian package dbus-daemon; scripts/setup-host.sh installs it)")
	cmd := exec.Command(runSession, "--", "sh", "-c", `echo "$DBUS_SESSION_BUS_ADDRESS"; exec cat >/dev/null`)
	hold, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-run-session: %v", err)
	}
	t.Cleanup(func() { hold.Close(); cmd.Wait() }) // EOF ends cat, then the bus
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-run-session printed no address: %v", err)
	}
	return strings.TrimSpace(addr)
}

// managerProps answers org.freedesktop.DBus.Properties.Get as systemd's manager.
type managerProps struct{}

func (managerProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != "org.freedesktop.systemd1.Manager" || name != "Version" {
		return dbus.Variant{}, dbus.MakeFailedError(os.ErrNotExist)
	}
	return dbus.MakeVariant("252.30-1"), nil
}

func TestSystemdVersion(t *testing.T) {
	if _, err := systemdManagerVersion("unix:path=" + filepath.Join(t.TempDir(), "bus")); err == nil {
		t.Error("no bus: no error")
	}
	addr := sessionBus(t)
	if _, err := systemdManagerVersion(addr); err == nil || !strings.Contains(err.Error(), "no systemd manager") {
		t.Errorf("a bus without systemd: %v", err)
	}
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Export(managerProps{}, "/org/freedesktop/systemd1", "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning the systemd name: %v %v", reply, err)
	}
	if v, err := systemdManagerVersion(addr); err != nil || v != "252.30-1" {
		t.Errorf("systemd on the bus: %q %v", v, err)
	}
}

// A site with many users: reading every other user's entry stays linear.
func TestOtherEntriesLarge(t *testing.T) {
	var b strings.Builder
	const n = 50000
	for i := range n {
		fmt.Fprintf(&b, "user%d:%d:65536\n", i, 100000+i*65536%4000000000)
	}
	start := time.Now()
	others := otherEntries(b.String(), "/etc/subuid", "user7", 1000)
	if len(others) != n-1 || others[7].Owner != "user8" || others[7].Line != 9 {
		t.Fatalf("%d entries, the 8th %+v", len(others), others[7])
	}
	free := idmap.Range{Start: freeRange(others), Count: 65536}
	for _, o := range others {
		if overlap(free, o.Range) {
			t.Fatalf("the free range %v overlaps %v", free, o)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d entries took %v", n, d)
	}
}

// systemdManagerVersion: the version systemdManager reads.
func systemdManagerVersion(addr string) (string, error) {
	v, _, err := systemdManager(addr)
	return v, err
}
