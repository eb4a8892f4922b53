//go:build ociroot

package ociroot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/cgroups"
)

// devicesProbe runs a shell in the host's user namespace as root, moved by
// Apply(resources) into a cgroup of its own before it probes: it opens
// /dev/null for writing and /dev/kmsg (1:11, not a default device) for
// reading, and says which it could.
func devicesProbe(t *testing.T, r *specs.LinuxResources) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `read go
		if true >/dev/null 2>&1; then echo null:yes; else echo null:no; fi
		if true </dev/kmsg 2>/dev/null; then echo kmsg:yes; else echo kmsg:no; fi`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if r != nil {
		m, err := cgroups.New(fmt.Sprintf("devtest-%d-%d", os.Getpid(), time.Now().UnixNano()), "", r, cgroups.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := m.Destroy(); err != nil {
				t.Errorf("Destroy: %v", err)
			}
		})
		if err := m.Apply(cmd.Process.Pid, r); err != nil {
			cmd.Process.Kill()
			t.Fatalf("Apply: %v", err)
		}
	}
	stdin.Write([]byte("go\n"))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the probe: %v (output %q)", err, out.String())
	}
	return strings.Join(strings.Fields(out.String()), " ")
}

// TestOCICgroupDeviceRules: as root, linux.resources.devices is enforced by
// the cgroup device program: the runc spec's "deny all" leaves the default
// devices (null) and refuses the rest (kmsg); an allow rule opens kmsg;
// without the program (no cgroup) the same probe opens both.
func TestOCICgroupDeviceRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("e2e/ociroot runs as root")
	}
	denyAll := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	kmsg := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(11)), Access: "r"}
	for _, c := range []struct {
		name string
		r    *specs.LinuxResources
		want string
	}{
		{"no cgroup", nil, "null:yes kmsg:yes"},
		{"deny all", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll}}, "null:yes kmsg:no"},
		{"no rules (deny by default, as runc)", &specs.LinuxResources{}, "null:yes kmsg:no"},
		{"kmsg allowed", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll, kmsg}}, "null:yes kmsg:yes"},
		{"allow all", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}, "null:yes kmsg:yes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := devicesProbe(t, c.r); got != c.want {
				t.Errorf("probe says %q, want %q", got, c.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
