package cgroupdelegate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUserUnit(t *testing.T) {
	const um = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service"
	for _, c := range []struct {
		dir, unitDir, unit string
		inTree             bool
	}{
		{um + "/app.slice/vte-spawn-1.scope", um + "/app.slice/vte-spawn-1.scope", "vte-spawn-1.scope", true},
		{um + "/app.slice/run-u7.scope/sandbox-leaf", um + "/app.slice/run-u7.scope", "run-u7.scope", true},
		{um + "/app.slice/a.slice/b.service/x", um + "/app.slice/a.slice/b.service", "b.service", true},
		{um + "/init.scope", um + "/init.scope", "init.scope", true},
		{um, "", "", true},
		{um + "/app.slice", "", "", true},
		{"/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope", "", "", false},
		{"/sys/fs/cgroup/sandbox-test.slice/sbxtest", "", "", false},
	} {
		d, u, in := UserUnit(c.dir)
		if d != c.unitDir || u != c.unit || in != c.inTree {
			t.Errorf("UserUnit(%s) = %q %q %v, want %q %q %v", c.dir, d, u, in, c.unitDir, c.unit, c.inTree)
		}
	}
}

// fakeUnitCgroup is a writable cgroup directory at p below a temporary root.
func fakeUnitCgroup(t *testing.T, p string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cgroup.procs", "cgroup.subtree_control"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestJudgeDelegation: ownership is delegation only outside a user
// manager's tree; inside, systemd's word decides, and no word is a no.
func TestJudgeDelegation(t *testing.T) {
	const scope = "user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope"
	var asked []string
	answer := func(d bool, err error) func(string) (bool, error) {
		return func(unit string) (bool, error) { asked = append(asked, unit); return d, err }
	}
	never := func(unit string) (bool, error) { t.Errorf("asked about %s", unit); return false, nil }

	if d := JudgeDelegation(fakeUnitCgroup(t, "sandbox-test/sbxtest"), 1000, never); !d.Delegated || d.Unit != "" {
		t.Errorf("an owned cgroup outside a user manager: %+v, want delegated", d)
	}
	if d := JudgeDelegation(filepath.Join(t.TempDir(), "missing"), 1000, never); d.Delegated || !strings.Contains(d.Why, "not writable by uid 1000") {
		t.Errorf("a cgroup that is not ours: %+v", d)
	}
	dir := fakeUnitCgroup(t, scope)
	d := JudgeDelegation(dir, 1000, answer(false, nil))
	if d.Delegated || d.Unit != "vte-spawn-1.scope" || !strings.Contains(d.Why, "does not delegate") || len(asked) != 1 {
		t.Errorf("an owned scope with Delegate=no: %+v (asked %v), want not delegated", d, asked)
	}
	leaf := filepath.Join(dir, "sub")
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cgroup.procs", "cgroup.subtree_control"} {
		if err := os.WriteFile(filepath.Join(leaf, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if d := JudgeDelegation(leaf, 1000, answer(true, nil)); !d.Delegated || d.Unit != "vte-spawn-1.scope" {
		t.Errorf("below a scope with Delegate=yes: %+v", d)
	}
	if d := JudgeDelegation(dir, 1000, answer(true, errors.New("no bus"))); d.Delegated || !strings.Contains(d.Why, "unknown") || !strings.Contains(d.Why, "no bus") {
		t.Errorf("no answer: %+v, want not delegated, saying why", d)
	}
	// The xattr systemd sets answers without the bus.
	if err := unix.Setxattr(dir, "user.delegate", []byte("1"), 0); err != nil {
		require(t, false, "user xattrs on "+dir+" ("+err.Error()+")")
	}
	if d := JudgeDelegation(dir, 1000, never); !d.Delegated {
		t.Errorf("user.delegate=1: %+v, want delegated", d)
	}
	if err := unix.Setxattr(dir, "user.delegate", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	if d := JudgeDelegation(dir, 1000, never); d.Delegated {
		t.Errorf("user.delegate=0: %+v, want not delegated", d)
	}
}

func TestUnitDelegated(t *testing.T) {
	addr := privateBus(t)
	serveFakeSystemd(t, addr, "done")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d, err := UnitDelegated(ctx, addr, "sandbox-1-2.scope"); err != nil || !d {
		t.Errorf("a Delegate=yes scope: %v, %v", d, err)
	}
	if d, err := UnitDelegated(ctx, addr, "vte-spawn-1.scope"); err != nil || d {
		t.Errorf("a Delegate=no scope: %v, %v", d, err)
	}
	if _, err := UnitDelegated(ctx, addr, "app.slice"); err == nil {
		t.Error("a slice: no error")
	}
	if _, err := UnitDelegated(ctx, privateBus(t), "x.scope"); err == nil || !strings.Contains(err.Error(), "asking the systemd user manager") {
		t.Errorf("no systemd on the bus: %v", err)
	}
}
