package cgroupdelegate

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// privateBus starts a dbus-daemon of its own on a socket in a temporary
// directory and returns its address; it is stopped at the end of the test.
func privateBus(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	require(t, err == nil, "dbus-daemon (Debian package dbus-daemon; scripts/setup-host.sh installs it)")
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	err = os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	return strings.TrimSpace(addr)
}

// startCall is what the fake systemd was asked.
type startCall struct {
	Name, Mode string
	Props      map[string]any
	Aux        int
}

// fakeSystemd serves the part of org.freedesktop.systemd1.Manager that
// StartScope uses. Its scopes are directories in a fake cgroup tree.
type fakeSystemd struct {
	conn   *dbus.Conn
	tree   string
	result string // of every job: "done", "failed", …
	mu     sync.Mutex
	calls  []startCall
	subs   int
}

const fakeSlice = "/user.slice/user-1000.slice/user@1000.service/app.slice"

func (f *fakeSystemd) Subscribe() *dbus.Error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs++
	return nil
}

func (f *fakeSystemd) StartTransientUnit(name, mode string, props []property, aux []struct {
	Name  string
	Props []property
}) (dbus.ObjectPath, *dbus.Error) {
	c := startCall{Name: name, Mode: mode, Props: map[string]any{}, Aux: len(aux)}
	for _, p := range props {
		c.Props[p.Name] = p.Value.Value()
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(f.tree, fakeSlice, name), 0o755); err != nil {
		return "", dbus.MakeFailedError(err)
	}
	job := dbus.ObjectPath("/org/freedesktop/systemd1/job/7")
	// Like systemd, the signal may overtake the reply.
	f.conn.Emit(systemdPath, jobRemovedName, uint32(7), job, name, f.result)
	return job, nil
}

func (f *fakeSystemd) GetUnit(name string) (dbus.ObjectPath, *dbus.Error) {
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + strings.NewReplacer("-", "_2d", ".", "_2e").Replace(name)), nil
}

// unitProps serves org.freedesktop.DBus.Properties.Get of a scope unit.
type unitProps struct {
	cgroup   string
	delegate bool
}

func (u unitProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	switch {
	case iface == scopeIface && name == "ControlGroup":
		return dbus.MakeVariant(u.cgroup), nil
	case iface == scopeIface && name == "Delegate":
		return dbus.MakeVariant(u.delegate), nil
	}
	return dbus.Variant{}, dbus.MakeFailedError(os.ErrNotExist)
}

func serveFakeSystemd(t *testing.T, addr, result string) *fakeSystemd {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeSystemd{conn: conn, tree: t.TempDir(), result: result}
	if err := conn.ExportMethodTable(map[string]any{
		"Subscribe": f.Subscribe, "StartTransientUnit": f.StartTransientUnit, "GetUnit": f.GetUnit,
	}, systemdPath, managerIface); err != nil {
		t.Fatal(err)
	}
	unit := dbus.ObjectPath("/org/freedesktop/systemd1/unit/sandbox_2d1_2d2_2escope")
	if err := conn.Export(unitProps{fakeSlice + "/sandbox-1-2.scope", true}, unit, "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	// A scope of the user manager without delegation (a terminal's tab).
	vte := dbus.ObjectPath("/org/freedesktop/systemd1/unit/vte_2dspawn_2d1_2escope")
	if err := conn.Export(unitProps{fakeSlice + "/vte-spawn-1.scope", false}, vte, "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(systemdDest, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s on the private bus: %v, %v", systemdDest, reply, err)
	}
	return f
}

func TestStartScope(t *testing.T) {
	addr := privateBus(t)
	f := serveFakeSystemd(t, addr, "done")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cg, err := StartScope(ctx, addr, "sandbox-1-2.scope", 4242, "sandbox run make")
	if err != nil {
		t.Fatal(err)
	}
	if cg != fakeSlice+"/sandbox-1-2.scope" {
		t.Errorf("cgroup %q", cg)
	}
	if _, err := os.Stat(filepath.Join(f.tree, cg)); err != nil {
		t.Errorf("the fake made no scope: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []startCall{{Name: "sandbox-1-2.scope", Mode: "fail", Aux: 0, Props: map[string]any{
		"PIDs": []uint32{4242}, "Delegate": true, "Description": "sandbox run make", "CollectMode": "inactive-or-failed",
	}}}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("systemd was asked\n %+v\nwant %+v", f.calls, want)
	}
	if f.subs != 1 {
		t.Errorf("Subscribe called %d times", f.subs)
	}
}

func TestStartScopeFailures(t *testing.T) {
	addr := privateBus(t)
	serveFakeSystemd(t, addr, "failed")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := StartScope(ctx, addr, "sandbox-1-2.scope", 4242, "x")
	if err == nil || !strings.Contains(err.Error(), `job result "failed"`) {
		t.Errorf("failed job: %v", err)
	}

	// A bus without systemd on it.
	_, err = StartScope(ctx, privateBus(t), "sandbox-1-2.scope", 4242, "x")
	if err == nil || !strings.Contains(err.Error(), "asking systemd") {
		t.Errorf("no systemd: %v", err)
	}
	// No bus at all.
	_, err = StartScope(ctx, "unix:path="+filepath.Join(t.TempDir(), "nobus"), "s.scope", 1, "x")
	if err == nil || !strings.Contains(err.Error(), "connecting to the systemd user bus") {
		t.Errorf("no bus: %v", err)
	}
}

func TestUserBusAddress(t *testing.T) {
	run := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if _, err := UserBusAddress(getenv, 99999); err != ErrNoUserBus {
		t.Errorf("nothing: %v", err)
	}
	env["XDG_RUNTIME_DIR"] = run
	if _, err := UserBusAddress(getenv, 99999); err != ErrNoUserBus {
		t.Errorf("runtime dir without a bus: %v", err)
	}
	os.WriteFile(filepath.Join(run, "bus"), nil, 0o600)
	if a, err := UserBusAddress(getenv, 99999); err != nil || a != "unix:path="+run+"/bus" {
		t.Errorf("runtime dir bus: %q, %v", a, err)
	}
	env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/x"
	if a, _ := UserBusAddress(getenv, 99999); a != "unix:path=/x" {
		t.Errorf("session address not preferred: %q", a)
	}
}
