package hostcheck

import (
	"fmt"
	"strings"

	"sandbox/idmap"
	"sandbox/internal/proc"
	"sandbox/rootfs"
)

// NestedFacts describe the user namespace check runs in: the initial one,
// or a container's or another sandbox's, which limits what run can do.
type NestedFacts struct {
	UIDs, GIDs []idmap.Range // the ids this namespace maps
	Nested     bool          // not the initial user namespace
	Err        error         // reading the maps
	Privileged bool          // CAP_SETUID and CAP_SETGID: run writes the maps itself
	ProcMasked []string      // mounts on /proc's entries (the outer runtime's masks)
	Filtered   bool          // a seccomp filter is inherited from outside
}

// gatherNested reads the current user namespace's maps, /proc's mounts
// and the inherited seccomp mode.
func gatherNested() NestedFacts {
	n := NestedFacts{Privileged: idmap.Privileged()}
	var nu, ng bool
	n.UIDs, nu, n.Err = readMap("/proc/self/uid_map")
	if n.Err == nil {
		n.GIDs, ng, n.Err = readMap("/proc/self/gid_map")
	}
	n.Nested = nu || ng
	if text, err := readSmall("/proc/self/mountinfo", 4<<20); err == nil {
		n.ProcMasked = rootfs.ProcMasks(text)
	}
	n.Filtered = proc.SeccompFiltered()
	return n
}

func readMap(file string) ([]idmap.Range, bool, error) {
	text, err := readSmall(file, 64<<10)
	if err != nil {
		return nil, false, err
	}
	return idmap.Mapped(text, file)
}

func readSmall(file string, max int64) (string, error) {
	b, err := proc.ReadFile(file, max)
	return string(b), err
}

// judgeNested says whether check runs nested and what that costs run.
func judgeNested(n NestedFacts) Result {
	const id = "nested"
	switch {
	case n.Err != nil:
		return warn(id, "cannot tell whether this runs in a container or another sandbox: "+n.Err.Error(), "")
	case !n.Nested:
		return ok(id, "not nested: the initial user namespace, every id can be mapped")
	}
	msg := fmt.Sprintf("nested: this user namespace (a container or another sandbox) maps %d uids and %d gids", total(n.UIDs), total(n.GIDs))
	var costs []string
	if n.Privileged {
		costs = append(costs, "run maps only those ids (root writes the maps itself)")
	} else {
		costs = append(costs, "you are not root here, so run maps only your own uid and gid")
	}
	if n.Filtered {
		costs = append(costs, "the outer seccomp filter stays in force under the sandbox's (a default hostname it refuses stays the outer one)")
	}
	costs = append(costs, "overlays on the outer overlay may need fuse-overlayfs")
	msg += "; " + strings.Join(costs, "; ")
	if len(n.ProcMasked) > 0 {
		eg := strings.Join(n.ProcMasked[:min(len(n.ProcMasked), 3)], ", ")
		return fail(id, fmt.Sprintf("%s; and %d of /proc's entries are masked (%s): the kernel then refuses the sandbox a /proc of its own, so run stops with 125",
			msg, len(n.ProcMasked), eg),
			"run the outer container with /proc unmasked: podman/docker --security-opt unmask=ALL (or unmask=/proc/*), Kubernetes securityContext.procMount: Unmasked, sandbox --unmask-proc with --allow-nested-userns")
	}
	return warn(id, msg, "")
}
