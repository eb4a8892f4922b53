// Package confine applies the payload's confinement inside the sandbox:
// the capability bounding set, no_new_privs, a fresh session keyring and
// Landlock. Capability sets are planned (pure) in the parent, applied by
// init just before it starts the payload.
package confine

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// capNames are the kernel's capability names by number (linux/capability.h).
var capNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// DefaultCaps is what root inside keeps by default: the set a container's
// root gets from Docker and podman. Notably absent: sys_admin (mount,
// namespaces), sys_ptrace, net_admin, sys_module.
var DefaultCaps = []string{
	"chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
	"net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap",
}

// CapNumber returns the number of a capability given as CAP_NAME or name
// (any case).
func CapNumber(name string) (int, error) {
	n := strings.ToLower(strings.TrimPrefix(strings.ToUpper(name), "CAP_"))
	for i, c := range capNames {
		if c == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q (known: CAP_CHOWN … CAP_CHECKPOINT_RESTORE, or ALL; see capabilities(7))", name)
}

// CapName is the canonical CAP_NAME of a number.
func CapName(n int) string {
	if n < 0 || n >= len(capNames) {
		return fmt.Sprintf("CAP_%d", n)
	}
	return "CAP_" + strings.ToUpper(capNames[n])
}

// CapSet computes the bounding set from the default set, --cap-add and
// --cap-drop (drops win over adds of the same name; "ALL" names every
// capability). last is the highest capability the kernel knows.
func CapSet(add, drop []string, last int) ([]int, error) {
	set := map[int]bool{}
	for _, c := range DefaultCaps {
		n, _ := CapNumber(c)
		set[n] = true
	}
	all := func(on bool) {
		for i := 0; i <= last && i < len(capNames); i++ {
			set[i] = on
		}
	}
	for _, a := range add {
		if strings.EqualFold(a, "all") {
			all(true)
			continue
		}
		n, err := CapNumber(a)
		if err != nil {
			return nil, fmt.Errorf("--cap-add: %w", err)
		}
		set[n] = true
	}
	for _, d := range drop {
		if strings.EqualFold(d, "all") {
			all(false)
			continue
		}
		n, err := CapNumber(d)
		if err != nil {
			return nil, fmt.Errorf("--cap-drop: %w", err)
		}
		delete(set, n)
	}
	var out []int
	for n, on := range set {
		if on && n <= last {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// LastCap is the highest capability number this kernel knows. It is read
// once per run (by the parent) and handed to whoever needs it.
func LastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading the capability count: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/sys/kernel/cap_last_cap: %w", err)
	}
	return n, nil
}
