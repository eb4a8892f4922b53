package cgroups

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxDeviceRules bounds linux.resources.devices.
const maxDeviceRules = 1024

// checkDevices checks the syntax of linux.resources.devices.
func checkDevices(rules []specs.LinuxDeviceCgroup) error {
	if len(rules) > maxDeviceRules {
		return fmt.Errorf("linux.resources.devices: %d rules, more than %d", len(rules), maxDeviceRules)
	}
	for i, d := range rules {
		f := fmt.Sprintf("linux.resources.devices[%d]", i)
		switch d.Type {
		case "", "a", "b", "c":
		default:
			return fmt.Errorf("%s.type: %q is not a, b or c", f, d.Type)
		}
		if strings.Trim(d.Access, "rwm") != "" {
			return fmt.Errorf("%s.access: %q is not made of r, w and m", f, d.Access)
		}
		for _, n := range []struct {
			name string
			v    *int64
		}{{"major", d.Major}, {"minor", d.Minor}} {
			if n.v != nil && (*n.v < -1 || *n.v > 1<<32-1) {
				return fmt.Errorf("%s.%s: %d is not a device number (or -1, any)", f, n.name, *n.v)
			}
		}
	}
	return nil
}

// devicesEnforced decides linux.resources.devices for the container whose
// init is pid. Cgroup v2 filters device access with a BPF program; this
// runtime loads none. Instead:
//   - a container in a user namespace of its own (every rootless one)
//     cannot create device nodes (mknod needs CAP_MKNOD in the initial
//     user namespace, devtmpfs cannot be mounted there), so it reaches
//     only the nodes the config's own mounts and linux.devices give it:
//     the rules add nothing and are accepted;
//   - a container in the host's user namespace (real root, no userns)
//     could mknod any device: rules that would restrict it cannot be
//     enforced and are refused, naming the field, never silently dropped.
func devicesEnforced(pid int, rules []specs.LinuxDeviceCgroup) error {
	if len(rules) == 0 {
		return nil
	}
	own, err := userNSOf(pid)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: %w", err)
	}
	if own {
		return nil
	}
	return fmt.Errorf("linux.resources.devices: a container in the host's user namespace needs a cgroup v2 device program to enforce device rules, which sandbox-oci does not load; give the container a user namespace (linux.namespaces: user, with uid/gid mappings)")
}

// userNSOf says whether pid is in a user namespace other than the initial
// one: only the initial one maps every id onto itself (uid_map
// "0 0 4294967295"; the file is readable by anyone).
func userNSOf(pid int) (bool, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/uid_map")
	if err != nil {
		return false, fmt.Errorf("reading the user namespace of the container's init: %w", err)
	}
	return strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295", nil
}
