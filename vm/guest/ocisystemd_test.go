//go:build linux && vmguest && vmsystemd

package guest

import (
	"fmt"
	"os"
	"os/exec"
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
	// Given to systemd too: a daemon-reload keeps them.
	if p := unitProps(t, unit, "MemoryMax", "TasksMax"); p["MemoryMax"] != "67108864" || p["TasksMax"] != "10" {
		t.Errorf("the scope's properties %v, want MemoryMax=67108864 TasksMax=10", p)
	}
	if r := command(t, "systemctl", "--user", "daemon-reload"); r.code != 0 || r.err != nil {
		t.Errorf("daemon-reload: %s", r)
	}
	// update: as a property and in the file.
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(12)}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	for f, want := range map[string]string{"pids.max": "12", "memory.max": "67108864"} {
		if got := cgFile(t, m.Path, f); got != want {
			t.Errorf("after daemon-reload and update: %s = %q, want %q", f, got, want)
		}
	}
	if p := unitProps(t, unit, "TasksMax"); p["TasksMax"] != "12" {
		t.Errorf("TasksMax after update: %v", p)
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

func init() { helpers["oci-scope"] = ociScopeHelper }

// ociScopeHelper does what sandbox-oci --systemd-cgroup does for a sleep
// of its own, printing PATH: and ENDED: lines; run in a user namespace
// where it is uid 0, as rootless podman runs its runtime.
func ociScopeHelper() int {
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		fmt.Println("ERROR:", err)
		return 1
	}
	defer sleep.Process.Kill()
	id := os.Getenv("OCI_ID")
	r := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(7)}}
	m, err := cgroups.New(id, "user.slice:sbxoci:"+id, r, cgroups.Options{Systemd: true, Rootless: true})
	if err == nil {
		err = m.Apply(sleep.Process.Pid, r)
	}
	if err != nil {
		fmt.Println("ERROR:", err)
		return 1
	}
	b, _ := os.ReadFile(filepath.Join(m.Path, "pids.max"))
	fmt.Printf("PATH: %s\nPIDSMAX: %s\n", m.Path, strings.TrimSpace(string(b)))
	if err := m.Destroy(); err != nil {
		fmt.Println("ERROR:", err)
		return 1
	}
	err = sleep.Wait()
	fmt.Println("ENDED:", err)
	return 0
}

// TestSystemdOCIScopeInUserNS: the same from uid 0 of a user namespace
// (unshare -r: rootless podman's shape, $XDG_RUNTIME_DIR naming the user's
// bus): the user manager gives the scope although the caller says uid 0.
func TestSystemdOCIScopeInUserNS(t *testing.T) {
	id := fmt.Sprintf("u%d", os.Getpid())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := command(t, "env", helperEnv+"=oci-scope", "OCI_ID="+id, "unshare", "--user", "--map-root-user", self)
	t.Logf("%s", r)
	want := "PATH: " + filepath.Join(userManager, "user.slice", "sbxoci-"+id+".scope")
	if r.code != 0 || !strings.Contains(r.stdout, want+"\n") || !strings.Contains(r.stdout, "PIDSMAX: 7") || !strings.Contains(r.stdout, "ENDED: signal: killed") {
		t.Errorf("want %q, pids.max 7 and the sleep killed by Destroy", want)
	}
}
