package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// nsPlan is how the init gets its namespaces.
type nsPlan struct {
	clone     uintptr           // new ones made by clone
	newCgroup bool              // made by the init itself, once in its cgroup
	newTime   bool              // made by the init itself (clone cannot), entered at its execve
	joins     map[string]string // type → path, setns()ed by the forking thread
	has       map[specs.LinuxNamespaceType]bool
}

// planNamespaces checks linux.namespaces; errors name the field.
// unprivileged: the runtime is not uid 0 (it needs a user namespace).
func planNamespaces(s *specs.Spec, unprivileged bool) (*nsPlan, error) {
	p := &nsPlan{joins: map[string]string{}, has: map[specs.LinuxNamespaceType]bool{}}
	if s.Linux == nil {
		return nil, fmt.Errorf("linux: missing (sandbox-oci runs Linux containers)")
	}
	for i, ns := range s.Linux.Namespaces {
		flag, ok := nsFlags[ns.Type]
		if !ok {
			return nil, fmt.Errorf("linux.namespaces[%d].type: unknown namespace type %q", i, ns.Type)
		}
		if p.has[ns.Type] {
			return nil, fmt.Errorf("linux.namespaces[%d].type: %q given twice", i, ns.Type)
		}
		p.has[ns.Type] = true
		if ns.Path != "" {
			if ns.Type == specs.UserNamespace || ns.Type == specs.MountNamespace {
				return nil, fmt.Errorf("linux.namespaces[%d].path: joining an existing user/mount namespace is not supported", i)
			}
			if !filepath.IsAbs(ns.Path) {
				return nil, fmt.Errorf("linux.namespaces[%d].path: %q is not absolute", i, ns.Path)
			}
			p.joins[string(ns.Type)] = ns.Path
			continue
		}
		switch ns.Type {
		case specs.CgroupNamespace:
			p.newCgroup = true
		case specs.TimeNamespace:
			p.newTime = true
		default:
			p.clone |= flag
		}
	}
	if !p.has[specs.MountNamespace] {
		return nil, fmt.Errorf("linux.namespaces: a mount namespace is required")
	}
	if unprivileged && !p.has[specs.UserNamespace] {
		return nil, fmt.Errorf("linux.namespaces: rootless containers require a user namespace (the runtime is not uid 0)")
	}
	if p.has[specs.UserNamespace] {
		if len(s.Linux.UIDMappings) == 0 || len(s.Linux.GIDMappings) == 0 {
			return nil, fmt.Errorf("linux.uidMappings/gidMappings: a user namespace needs both")
		}
		if !mapsZero(s.Linux.UIDMappings) {
			return nil, fmt.Errorf("linux.uidMappings: the container's uid 0 is not mapped")
		}
		if !mapsZero(s.Linux.GIDMappings) {
			return nil, fmt.Errorf("linux.gidMappings: the container's gid 0 is not mapped")
		}
	} else if len(s.Linux.UIDMappings) != 0 || len(s.Linux.GIDMappings) != 0 {
		return nil, fmt.Errorf("linux.uidMappings: given without a user namespace")
	}
	if len(s.Linux.TimeOffsets) != 0 && !p.newTime {
		return nil, fmt.Errorf("linux.timeOffsets: need a new time namespace")
	}
	for k := range s.Linux.TimeOffsets {
		if k != "monotonic" && k != "boottime" {
			return nil, fmt.Errorf("linux.timeOffsets.%s: unknown clock (monotonic or boottime)", k)
		}
	}
	if s.Hostname != "" && !p.has[specs.UTSNamespace] {
		return nil, fmt.Errorf("hostname: needs a UTS namespace of the container's own")
	}
	if s.Domainname != "" && !p.has[specs.UTSNamespace] {
		return nil, fmt.Errorf("domainname: needs a UTS namespace of the container's own")
	}
	return p, nil
}

func mapsZero(m []specs.LinuxIDMapping) bool {
	for _, e := range m {
		if e.ContainerID == 0 && e.Size > 0 {
			return true
		}
	}
	return false
}

// checkSysctl says which linux.sysctl keys this container may set: only
// namespaced ones, and only with their namespace.
func checkSysctl(s *specs.Spec, p *nsPlan) error {
	keys := make([]string, 0, len(s.Linux.Sysctl))
	for k := range s.Linux.Sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "linux.sysctl." + k
		if k == "" || strings.ContainsAny(k, "\x00") || strings.Contains(k, "..") || strings.Contains(k, "//") ||
			strings.Trim(k, "./") != k {
			return fmt.Errorf("%s: not a sysctl name", field)
		}
		n := strings.ReplaceAll(k, "/", ".")
		switch {
		case strings.HasPrefix(n, "net."):
			if !p.has[specs.NetworkNamespace] {
				return fmt.Errorf("%s: needs a network namespace of the container's own", field)
			}
		case ipcSysctl(n):
			if !p.has[specs.IPCNamespace] {
				return fmt.Errorf("%s: needs an IPC namespace of the container's own", field)
			}
		case n == "kernel.hostname" || n == "kernel.domainname":
			if !p.has[specs.UTSNamespace] {
				return fmt.Errorf("%s: needs a UTS namespace of the container's own", field)
			}
		default:
			return fmt.Errorf("%s: not a namespaced sysctl (it would change the host)", field)
		}
	}
	return nil
}

func ipcSysctl(n string) bool {
	switch n {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
		"kernel.shmmni", "kernel.shm_rmid_forced", "kernel.msg_next_id", "kernel.sem_next_id", "kernel.shm_next_id":
		return true
	}
	return strings.HasPrefix(n, "fs.mqueue.")
}

// startOn runs start on an OS thread of its own that first joins the
// namespaces of plan.joins: the child forked from it inherits them. The thread stays locked and parked
// for the life of the process, so it is never reused nor ended (its end
// would deliver the child's parent-death signal).
func startOn(p *nsPlan, start func() error) error {
	if len(p.joins) == 0 {
		return start()
	}
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		res <- func() error {
			// Order: the user namespace is never joined; cgroup and the
			// rest in a fixed order.
			for _, t := range []string{"cgroup", "ipc", "uts", "network", "pid", "time"} {
				path, ok := p.joins[t]
				if !ok {
					continue
				}
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("linux.namespaces (%s).path: %w", t, err)
				}
				err = unix.Setns(int(f.Fd()), int(nsFlags[specs.LinuxNamespaceType(t)]))
				f.Close()
				if err != nil {
					return fmt.Errorf("linux.namespaces (%s).path %s: joining: %w", t, path, err)
				}
			}
			return start()
		}()
		select {} // park the thread: see above
	}()
	return <-res
}
