package hostcheck

import (
	"fmt"
	"slices"
	"strings"
)

// CgroupFacts are what resource limits (--memory, --cpus, …) need.
type CgroupFacts struct {
	Mount     string            // the cgroup2 mount point, "" if none
	V1        map[string]string // controllers cgroup v1 holds → its mount point
	Base      string            // the caller's cgroup directory (sandboxes go below it)
	Delegated bool              // Base is delegated to the caller (cgroupdelegate.JudgeDelegation)
	Why       string            // how that was judged, or why not
	Foreign   []int             // processes in Base other than this one (run never moves them)
	Root      []string          // controllers cgroup v2 has (the mount root's cgroup.controllers)
	Available []string          // controllers of Base
	// ScopeControllers are what a transient scope of the user manager gets:
	// its own cgroup's controllers (user@UID.service's delegated set).
	ScopeControllers []string
	Manager          string // the user manager's cgroup, when it answered
	Err              error  // why Base is unknown
	// UserBus is the systemd user bus address ("" if none is configured);
	// UserBusErr why it cannot be reached or has no systemd on it;
	// Systemd the user manager's version when it answered.
	UserBus    string
	UserBusErr error
	Systemd    string
}

// busUsable: run can ask the systemd user manager for a delegated scope.
func (c CgroupFacts) busUsable() bool { return c.UserBus != "" && c.UserBusErr == nil }

// limitFlags are run's limit flags of a controller (a switch: a map
// literal is built by code at every start of a program that links it).
func limitFlags(ctrl string) string {
	switch ctrl {
	case "cpu":
		return "--cpus, --cpu-weight"
	case "io":
		return "--io-weight, --io-max"
	case "memory":
		return "--memory, --memory-swap"
	case "pids":
		return "--pids"
	}
	return ""
}

// judgeCgroup says where cgroup v2 is, whether the caller's cgroup is
// delegated, which limit controllers it has and whether the systemd user
// bus answers. Only WARN: run's defaults need no cgroup.
func judgeCgroup(c CgroupFacts, user string) []Result {
	if c.Mount == "" {
		return []Result{
			warn("cgroup.v2", "not mounted (cgroup v1 only): resource limits (--memory, --cpus, --pids, --io-*) cannot be applied",
				"boot with systemd.unified_cgroup_hierarchy=1"),
			judgeUserBus(c, user),
		}
	}
	var out []Result
	var held []string
	for _, ctrl := range []string{"cpu", "io", "memory", "pids"} {
		v1 := ctrl
		if ctrl == "io" {
			v1 = "blkio"
		}
		if c.V1[v1] != "" {
			held = append(held, ctrl)
		}
	}
	if len(held) > 0 {
		out = append(out, warn("cgroup.v2", fmt.Sprintf("at %s, hybrid layout: cgroup v1 holds %s", c.Mount, strings.Join(held, ", ")),
			"boot with systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all for limits on these"))
	} else {
		out = append(out, ok("cgroup.v2", fmt.Sprintf("at %s (controllers: %s)", c.Mount, orNA(strings.Join(c.Root, " ")))))
	}
	delegateFix := "run under `systemd-run --user --scope -p Delegate=yes sandbox run …`; without a user manager: sudo loginctl enable-linger " + user
	switch {
	case c.Err != nil:
		return append(out, warn("cgroup.delegation", "your cgroup is unknown: "+c.Err.Error(), "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 for every process)"),
			judgeUserBus(c, user))
	case c.direct():
		out = append(out, ok("cgroup.delegation", orWhy(c.Why, "your cgroup "+c.Base+" is delegated to you")+": each sandbox gets its own cgroup below it"))
	case c.busUsable():
		out = append(out, ok("cgroup.delegation", c.notDirect()+"; runs with limits ask the systemd user manager for a delegated scope of their own"))
	default:
		out = append(out, warn("cgroup.delegation", c.notDirect()+", and no systemd user manager answers: limits cannot be applied", delegateFix))
	}
	// What run will have: its own cgroup's controllers, or the scope's.
	have, where := c.Available, c.Base
	if !c.direct() {
		have, where = c.ScopeControllers, "your user manager"
		if c.Manager != "" {
			where += " (" + c.Manager + ")"
		}
	}
	var missing, fixes []string
	fix := func(f string) {
		if !slices.Contains(fixes, f) {
			fixes = append(fixes, f)
		}
	}
	for _, ctrl := range []string{"cpu", "io", "memory", "pids"} {
		if slices.Contains(have, ctrl) {
			continue
		}
		switch {
		case slices.Contains(held, ctrl):
			missing = append(missing, fmt.Sprintf("%s (%s; held by cgroup v1)", ctrl, limitFlags(ctrl)))
			fix("boot with systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all")
		case !slices.Contains(c.Root, ctrl):
			missing = append(missing, fmt.Sprintf("%s (%s; not in this kernel's cgroup v2)", ctrl, limitFlags(ctrl)))
			fix("a kernel with that controller")
		default:
			missing = append(missing, fmt.Sprintf("%s (%s; not delegated to %s)", ctrl, limitFlags(ctrl), where))
			fix("systemd: the drop-in /etc/systemd/system/user@.service.d/delegate.conf with [Service] Delegate=cpu cpuset io memory pids, then systemctl daemon-reload and log in again")
		}
	}
	if len(missing) == 0 {
		out = append(out, ok("cgroup.controllers", "cpu io memory pids: every limit flag can be applied"))
	} else {
		out = append(out, warn("cgroup.controllers", "unavailable: "+strings.Join(missing, ", "), strings.Join(fixes, "; ")))
	}
	return append(out, judgeUserBus(c, user))
}

// direct: runs with limits use the caller's cgroup itself.
func (c CgroupFacts) direct() bool { return c.Delegated && len(c.Foreign) == 0 }

// notDirect says why runs with limits cannot use the caller's cgroup.
func (c CgroupFacts) notDirect() string {
	if c.Delegated {
		return fmt.Sprintf("your cgroup %s is delegated but also holds processes sandbox did not start (%v), which it never moves", c.Base, c.Foreign)
	}
	return orWhy(c.Why, "your cgroup "+c.Base+" is not delegated to you")
}

func orWhy(why, def string) string {
	if why != "" {
		return why
	}
	return def
}

// judgeUserBus: the systemd user manager gives a delegated scope to runs
// with limits whose cgroup is not delegated.
func judgeUserBus(c CgroupFacts, user string) Result {
	const id = "systemd.bus"
	fix := "log in through systemd-logind (a user session starts user@UID.service and sets XDG_RUNTIME_DIR), or sudo loginctl enable-linger " + user +
		"; then DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus finds it"
	switch {
	case c.busUsable():
		return ok(id, fmt.Sprintf("the systemd user manager (version %s) answers at %s: runs with limits get a delegated scope from it when needed", orNA(c.Systemd), c.UserBus))
	case c.Delegated:
		msg := "no systemd user bus; not needed: your cgroup is delegated"
		if c.UserBus != "" {
			msg = fmt.Sprintf("the user bus at %s does not answer (%v); not needed: your cgroup is delegated", c.UserBus, c.UserBusErr)
		}
		return ok(id, msg)
	case c.UserBus != "":
		return warn(id, fmt.Sprintf("the user bus at %s does not answer as the systemd user manager (%v): runs with limits cannot get a delegated cgroup", c.UserBus, c.UserBusErr), fix)
	}
	return warn(id, "no systemd user bus (DBUS_SESSION_BUS_ADDRESS is unset, no $XDG_RUNTIME_DIR/bus): runs with limits cannot get a delegated cgroup", fix)
}
