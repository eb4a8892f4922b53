package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"sandbox/seccomp"
)

type featuresCmd struct{}

func (c *featuresCmd) Run(g *globals) error {
	data, err := json.MarshalIndent(featuresDoc(), "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", data)
	return err
}

// capNames are the capabilities by number (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// kernelCaps are the capabilities this kernel knows (cap_last_cap).
func kernelCaps() []string {
	last := len(capNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < len(capNames) {
			last = n
		}
	}
	return append([]string(nil), capNames[:last+1]...)
}

func featuresDoc() *features.Features {
	t, f := true, false
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions: []string{
			"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "lazytime",
			"noatime", "nodev", "nodiratime", "noexec", "nolazytime", "norelatime", "nostrictatime", "nosuid",
			"nosymfollow", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave",
			"runbindable", "rw", "shared", "slave", "strictatime", "suid", "symfollow", "sync", "unbindable",
		},
		Linux: &features.Linux{
			Namespaces: []string{
				string(specs.CgroupNamespace), string(specs.IPCNamespace), string(specs.MountNamespace),
				string(specs.NetworkNamespace), string(specs.PIDNamespace), string(specs.TimeNamespace),
				string(specs.UserNamespace), string(specs.UTSNamespace),
			},
			Capabilities: kernelCaps(),
			Cgroup:       &features.Cgroup{V1: &f, V2: &t, Systemd: &t, SystemdUser: &f, Rdma: &f},
			Seccomp: &features.Seccomp{
				Enabled: &t,
				Actions: []string{
					string(seccomp.ActAllow), string(seccomp.ActErrno), string(seccomp.ActKill),
					string(seccomp.ActKillProcess), string(seccomp.ActKillThread), string(seccomp.ActLog),
					string(seccomp.ActTrace), string(seccomp.ActTrap),
				},
				Operators: []string{
					string(seccomp.OpEqual), string(seccomp.OpGreaterEqual), string(seccomp.OpGreater),
					string(seccomp.OpLessEqual), string(seccomp.OpLess), string(seccomp.OpMaskedEqual),
					string(seccomp.OpNotEqual),
				},
				Archs: []string{
					string(seccomp.ArchAARCH64), string(seccomp.ArchARM), string(seccomp.ArchLOONGARCH64),
					string(seccomp.ArchPPC64), string(seccomp.ArchPPC64LE), string(seccomp.ArchRISCV64),
					string(seccomp.ArchS390X), string(seccomp.ArchX32), string(seccomp.ArchX86), string(seccomp.ArchX86_64),
				},
			},
			Apparmor:        &features.Apparmor{Enabled: &f},
			Selinux:         &features.Selinux{Enabled: &f},
			IntelRdt:        &features.IntelRdt{Enabled: &f},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &f}},
		},
		Annotations: map[string]string{
			"org.sandbox.oci.version":  version,
			"org.sandbox.oci.init":     "memfd",
			"org.sandbox.oci.rootless": "user namespace with newuidmap/newgidmap",
		},
	}
}
