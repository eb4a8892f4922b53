package parent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/userns"
)

// systemdCgroup is the sandbox's cgroup below a transient scope the
// systemd user manager made for this run with Delegate=yes: the caller's
// cgroup is not delegated, lacks controllers or holds processes sandbox
// did not start. Once the scope is there it is a delegated cgroup; the
// scope ends with this process (CollectMode=inactive-or-failed).
type systemdCgroup struct {
	*delegatedCgroup
}

// adoptInit: a scope is asked for limits only, whose cgroup takes only an
// init born in it (see delegatedCgroup.adoptInit).
func (systemdCgroup) adoptInit(*userns.Child) bool { return false }

// scope asks the user manager for the scope c calls for and prepares it
// for the controllers it was given. Without a scope ("") the usable writes
// come back unavailable with the reason and the fix, and the run goes on
// as c.base says (a delegated caller's cgroup, or none).
func (h cgroupHost) scope(c cgroupChoice, bestEffort bool, cmdline string, logf func(string, ...any)) (string, []unavailable, error) {
	logf("%s; asking the systemd user manager for a delegated scope", c.why)
	scope, err := h.startScopeHere(c, cmdline)
	if err != nil {
		fix := dropInFix
		if !c.dropIn {
			fix = delegationFix(h)
		}
		// Added to what was skipped already (cgroup v1's controllers).
		return "", append(slices.Clip(c.skipped), unavailableAll(c.usable, fmt.Sprintf("%s, and systemd could not give one: %v; %s", c.why, err, fix))...), nil
	}
	logf("in the delegated systemd scope %s", scope)
	skipped := c.skipped
	have, _ := cgroupdelegate.List(scope, "cgroup.controllers")
	for _, w := range c.usable {
		if !slices.Contains(have, w.Controller) {
			skipped = append(skipped, unavailable{w, fmt.Sprintf("systemd delegates only %q to your user manager, not %s; %s",
				strings.Join(have, " "), w.Controller, dropInFix)})
		}
	}
	if len(skipped) > 0 && !bestEffort {
		return scope, skipped, nil
	}
	if err := prepareBase(scope, c.mount.Point, intersect(c.need, have), h.ours); err != nil {
		return "", nil, err
	}
	return scope, skipped, nil
}

// startScopeHere obtains a delegated transient scope from the systemd user
// manager holding this process, and returns its directory.
func (h cgroupHost) startScopeHere(c cgroupChoice, cmdline string) (string, error) {
	addr, err := cgroupdelegate.UserBusAddress(h.getenv, h.uid)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	unit := h.owner.Name() + ".scope"
	cg, err := h.startScope(ctx, addr, unit, h.owner.PID, "sandbox run "+cmdline)
	if err != nil {
		return "", err
	}
	// systemd moved us; make sure, the rest relies on it.
	text, err := h.selfCgroup()
	if err != nil {
		return "", err
	}
	if now, _ := cgroupdelegate.ParseProcCgroup(text); now != cg {
		return "", fmt.Errorf("systemd made the scope %s (cgroup %s) but this process is in %q", unit, cg, now)
	}
	return c.mount.Dir(cg)
}
