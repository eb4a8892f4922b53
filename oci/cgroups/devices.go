package cgroups

import (
	"fmt"
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

// Rootless, linux.resources.devices is accepted without a device program:
// sandbox-oci cannot load one (BPF needs CAP_SYS_ADMIN or CAP_BPF in the
// initial user namespace), and need not: a rootless container is in a user
// namespace of its own or of its engine's, where mknod of a device is
// refused (CAP_MKNOD counts only in the initial user namespace) and
// devtmpfs cannot be mounted, so it reaches only the nodes its config's
// mounts and linux.devices give it, under the host's file permissions. As
// root every rule is enforced by a program (devicefilter.go).
