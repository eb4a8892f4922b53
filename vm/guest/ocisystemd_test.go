//go:build linux && vmguest && vmsystemd

package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/cgroups"
)

// TestSystemdOCIScope: sandbox-oci's --systemd-cgroup, rootless: the
// container's init goes into a transient user.slice:sbxoci:<id> scope of
// the user manager (StartTransientUnit over the user bus, Delegate=yes,
// from the login session), its limits are written there, it freezes, and
// Destroy kills it and stops the scope.
func TestSystemdOCIScope(t *testing.T) {
	id := fmt.Sprintf("c%d", os.Getpid())
	r := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(10)}, Memory: &specs.LinuxMemory{Limit: i64p(64 << 20)}}
	m, err := cgroups.New(id, "user.slice:sbxoci:"+id, r, cgroups.Options{Systemd: true, Rootless: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	g := startGated(t, "while :; do echo x; sleep 0.05; done")
	pid := g.cmd.Process.Pid
	if err := m.Apply(pid, r); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() { m.Destroy() })
	unit := "sbxoci-" + id + ".scope"
	if m.Unit != unit || m.Path != filepath.Join(userManager, "user.slice", unit) {
		t.Errorf("manager %+v, want the scope %s below %s/user.slice", m, unit, userManager)
	}
	procs := cgFile(t, m.Path, "cgroup.procs")
	if !slices.Contains(strings.Fields(procs), strconv.Itoa(pid)) {
		t.Errorf("%s/cgroup.procs = %q, want %d in it", m.Path, procs, pid)
	}
	for f, want := range map[string]string{"pids.max": "10", "memory.max": "67108864"} {
		if got := cgFile(t, m.Path, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if p := unitProps(t, unit, "ActiveState", "Delegate"); p["ActiveState"] != "active" || p["Delegate"] != "yes" {
		t.Errorf("the scope: %v, want active and delegated", p)
	}
	g.stdin.Write([]byte("go\n"))
	if err := m.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if err := m.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(m.Path); !os.IsNotExist(err) {
		t.Errorf("%s after Destroy: %v", m.Path, err)
	}
	var st string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st = unitProps(t, unit, "ActiveState")["ActiveState"]; st == "inactive" {
			break
		}
	}
	if st != "inactive" {
		t.Errorf("the scope %s is %q after Destroy", unit, st)
	}
}
