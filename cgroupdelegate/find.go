// Package cgroupdelegate gives a sandbox its own cgroup in a delegated
// cgroup v2 subtree: find the cgroup2 mount and the caller's cgroup, judge
// whether it is delegated, obtain a delegated scope from the systemd user
// manager when it is not, create sandbox-<id>/ with its limits, and kill
// and remove it (also when a SIGKILLed run left it behind).
//
// The parsers and the planner (flags → interface-file writes) are pure;
// the functions that touch a cgroup tree take its directory, so the tests
// run them over a fake tree in a temporary directory.
package cgroupdelegate

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// Mount is the cgroup2 mount through which the caller's cgroup is reached.
type Mount struct {
	Point string // mount point: /sys/fs/cgroup (pure v2), /sys/fs/cgroup/unified (hybrid)
	Root  string // cgroup path at the mount point: "/" unless a subtree was mounted or bound
	// V1 maps each controller bound to a cgroup v1 hierarchy to its mount
	// point: such a controller cannot be used in cgroup v2 (hybrid hosts).
	V1 map[string]string
}

// ErrNoCgroup2 means no cgroup2 filesystem is mounted (a cgroup v1 only host).
var ErrNoCgroup2 = errors.New("no cgroup2 filesystem is mounted")

// FindMount picks the cgroup2 mount from the caller's mount table and
// notes which controllers cgroup v1 hierarchies hold.
func FindMount(infos []*mountinfo.Info) (Mount, error) {
	m := Mount{V1: map[string]string{}}
	for _, in := range infos {
		switch in.FSType {
		case "cgroup2":
			// The first mount of the whole tree wins; a bind of a subtree
			// only when nothing better is mounted.
			if m.Point == "" || m.Root != "/" && in.Root == "/" {
				m.Point, m.Root = in.Mountpoint, in.Root
			}
		case "cgroup":
			for _, o := range strings.Split(in.VFSOptions, ",") {
				if knownV1(o) {
					if _, ok := m.V1[o]; !ok {
						m.V1[o] = in.Mountpoint
					}
				}
			}
		}
	}
	if m.Point == "" {
		return m, ErrNoCgroup2
	}
	return m, nil
}

// knownV1 says whether a super option of a cgroup v1 mount names a
// controller (the rest are rw, name=systemd, xattr, …).
func knownV1(o string) bool {
	return slices.Contains([]string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer",
		"net_cls", "net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"}, o)
}

// Hybrid says whether cgroup v1 hierarchies with controllers are mounted
// beside cgroup2.
func (m Mount) Hybrid() bool { return len(m.V1) > 0 }

// V1Owner returns the v1 mount point holding a cgroup v2 controller ("io"
// is "blkio" in v1), or "".
func (m Mount) V1Owner(controller string) string {
	if controller == "io" {
		controller = "blkio"
	}
	return m.V1[controller]
}

// Dir is the directory of the cgroup at cgroup path p.
func (m Mount) Dir(p string) (string, error) {
	root := strings.TrimSuffix(m.Root, "/")
	if p != root && !strings.HasPrefix(p, root+"/") {
		return "", fmt.Errorf("your cgroup %s is outside the cgroup2 mount at %s (which shows %s)", p, m.Point, m.Root)
	}
	return path.Join(m.Point, p[len(root):]), nil
}

// ParseProcCgroup returns the cgroup v2 path of a /proc/PID/cgroup text
// (its "0::" line).
func ParseProcCgroup(text string) (string, error) {
	for _, l := range strings.Split(text, "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			if !strings.HasPrefix(p, "/") {
				return "", fmt.Errorf("unexpected cgroup v2 path %q in /proc/self/cgroup", p)
			}
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 entry (0::) in /proc/self/cgroup: the process is only in cgroup v1 hierarchies")
}

// Base is the directory under which the caller's sandboxes go: the
// caller's cgroup (from a /proc/self/cgroup text), or its parent when the
// caller sits in the Leaf an earlier run moved it to.
func (m Mount) Base(procCgroup string) (string, error) {
	p, err := ParseProcCgroup(procCgroup)
	if err != nil {
		return "", err
	}
	dir, err := m.Dir(p)
	if err != nil {
		return "", err
	}
	if path.Base(dir) == Leaf {
		dir = path.Dir(dir)
	}
	return dir, nil
}
