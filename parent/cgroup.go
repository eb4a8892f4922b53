package parent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/state"
	"sandbox/userns"

	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/spec"

	"github.com/moby/sys/mountinfo"
)

// payloadCgroup is the child of the sandbox's cgroup where init and so the
// payload live, the root of their cgroup namespace: the limits sit one
// level up, out of their reach even if they mount cgroup2 (their files
// belong to the user, who is root inside).
const payloadCgroup = "payload"

// cgroupManager is the sandbox's cgroup for one run, one implementation
// per kind of host (crun's cgroup managers are the model): delegated (a
// sandbox-<pid>-<start> below the caller's delegated cgroup,
// cgroup_delegated.go), systemd (the same below a Delegate=yes scope the
// user manager made for this run, cgroup_systemd.go), none (no cgroup of
// its own, cgroup_none.go). h.open chooses it once, before anything starts.
type cgroupManager interface {
	// startInit starts init in the cgroup.
	startInit(o userns.Options) (*userns.Child, error)
	// adoptInit takes into the cgroup an init started before it was
	// decided (StartEarly); false: it cannot be (the run starts another).
	adoptInit(child *userns.Child) bool
	// where describes how init was placed, for the verbose log.
	where(child *userns.Child) string
	// placed records how init entered the cgroup.
	placed(child *userns.Child)
	// describe puts the cgroup and its limits into the sandbox's record.
	describe(info *state.Info)
	// limits are the limits written, as FILE=VALUE.
	limits() []string
	// finish reports an OOM kill, then kills whatever is left in the
	// cgroup and removes it. It runs when Run returns, whatever happened.
	finish(status int, err error) (int, error)
}

// cgroupHost is what choosing and making the cgroup reads from the host;
// tests fake it.
type cgroupHost struct {
	mounts     func() ([]*mountinfo.Info, error)
	selfCgroup func() (string, error) // /proc/self/cgroup
	procRoot   string
	getenv     func(string) string
	uid        int
	owner      cgroupdelegate.Owner
	ours       []int // sandbox's own processes, which it may move (owner.PID, …)
	startScope func(ctx context.Context, addr, unit string, pid int, desc string) (string, error)
	// unitDelegated asks the user manager whether a unit has Delegate=yes.
	unitDelegated func(ctx context.Context, addr, unit string) (bool, error)
	mkdir         func(string) error // the kernel fills a new cgroup directory
	warn          func(string)       // a warning line
	fail          func(string)       // an error line
	lg            *journal.Logger    // fallbacks; nil in tests
	rep           *journal.Report    // records applied and skipped limits; nil in tests
}

// realCgroupHost is this machine, reporting to lg.
func realCgroupHost(lg *journal.Logger) (cgroupHost, error) {
	owner, err := cgroupdelegate.ProcessOwner("/proc", "self")
	return cgroupHost{
		mounts: func() ([]*mountinfo.Info, error) {
			return mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2", "cgroup"))
		},
		selfCgroup: func() (string, error) {
			b, err := os.ReadFile("/proc/self/cgroup")
			return string(b), err
		},
		procRoot: "/proc", getenv: os.Getenv, uid: os.Getuid(), owner: owner,
		startScope: cgroupdelegate.StartScope, unitDelegated: cgroupdelegate.UnitDelegated,
		mkdir: func(d string) error { return os.Mkdir(d, 0o755) },
		warn:  lg.Warn, fail: lg.Error, lg: lg,
	}, err
}

// openCgroup gives the sandbox its cgroup before anything starts. Without
// limits it is a convenience (killed and removed as one at exit) made only
// where the caller's cgroup is delegated already, and nothing fails when it
// cannot be made. With limits it fails closed (unless best-effort).
func openCgroup(s *spec.Spec, lg *journal.Logger) (cgroupManager, error) {
	h, err := realCgroupHost(lg)
	if err != nil {
		if s.Resources.Limits.Any() {
			return nil, fmt.Errorf("reading this process's identity: %w", err)
		}
		return noCgroup{}, nil
	}
	if s.HostMounts != nil {
		// Read by planning a moment ago: not read and parsed again.
		h.mounts = func() ([]*mountinfo.Info, error) { return cgroupMounts(s.HostMounts), nil }
	}
	h.rep = s.Report
	h.ours = []int{h.owner.PID}
	if s.Detached {
		// The foreground `run -d` waits in the same cgroup until we report.
		h.ours = append(h.ours, os.Getppid())
	}
	return h.manager(s.Resources, strings.Join(s.Args, " "), lg.Step)
}

// cgroupMounts are the cgroup mounts of a mount table, as
// mountinfo.FSTypeFilter("cgroup2", "cgroup") selects them.
func cgroupMounts(infos []*mountinfo.Info) []*mountinfo.Info {
	var out []*mountinfo.Info
	for _, m := range infos {
		if m.FSType == "cgroup2" || m.FSType == "cgroup" {
			out = append(out, m)
		}
	}
	return out
}

// unavailable is a write that cannot be applied, and why.
type unavailable struct {
	w   cgroupdelegate.Write
	why string
}

// cgroupChoice is the kind of manager the host's facts call for.
type cgroupChoice struct {
	kind string // "delegated", "systemd" or "none"
	// base: delegated, the cgroup under which sandbox-<id> goes (prepared
	// for the controllers); systemd, the caller's cgroup if it is delegated
	// (where a run without the limits goes if systemd gives no scope).
	base    string
	skipped []unavailable // writes no manager of this host can serve
	// systemd only: the cgroup2 mount, why the caller's cgroup does not
	// serve, the writes a scope may serve and their controllers, and
	// whether only the drop-in can help if no scope comes (the caller is
	// in a delegated unit of the user manager already: another scope
	// would get the same controllers).
	mount  cgroupdelegate.Mount
	why    string
	usable []cgroupdelegate.Write
	need   []string
	dropIn bool
}

// manager chooses the manager for this run and makes it: it applies the
// limits it can, fails closed on the others (or warns and drops them with
// best-effort), and falls back to none where a run without limits cannot
// get a cgroup.
func (h cgroupHost) manager(res spec.Resources, cmdline string, logf func(string, ...any)) (cgroupManager, error) {
	writes := res.Limits.Plan()
	c, err := h.choose(writes, res.BestEffort, logf)
	if err != nil {
		return nil, err
	}
	base, skipped, scope := c.base, c.skipped, ""
	if c.kind == "systemd" {
		scope, skipped, err = h.scope(c, res.BestEffort, cmdline, logf)
		if err != nil {
			return nil, err
		}
		if scope != "" {
			base = scope
		}
	}
	if len(skipped) > 0 {
		if !res.BestEffort {
			return nil, failClosed(skipped)
		}
		warned := map[string]bool{}
		for _, u := range skipped {
			if !warned[u.w.Flag] {
				warned[u.w.Flag] = true
				h.warn(fmt.Sprintf("%s not applied (--limits=best-effort): %s", u.w.Flag, u.why))
			}
			h.rep.SkipLimit(limitReport(u.w), u.why)
			writes = slices.DeleteFunc(writes, func(w cgroupdelegate.Write) bool { return w == u.w })
		}
	}
	if base == "" {
		return noCgroup{}, nil
	}
	cg, err := h.delegated(base, writes, res.Limits.Memory, logf)
	if err != nil && len(writes) == 0 {
		// Only a convenience without limits: run without it.
		logf("no cgroup of its own: %v", err)
		return noCgroup{}, nil
	}
	if err != nil {
		return nil, err
	}
	if scope != "" {
		return systemdCgroup{cg}, nil
	}
	return cg, nil
}

// choose is the one place that picks the kind of manager, from the host's
// facts: the cgroup2 mount, the caller's cgroup, its delegation and
// controllers, the writes. A strict run changes nothing on the host before
// it knows that every write can be served: the only change made here is
// enabling the controllers in a delegated cgroup that serves them all.
func (h cgroupHost) choose(writes []cgroupdelegate.Write, bestEffort bool, logf func(string, ...any)) (cgroupChoice, error) {
	none := func(why string) (cgroupChoice, error) {
		return cgroupChoice{kind: "none", skipped: unavailableAll(writes, why)}, nil
	}
	infos, err := h.mounts()
	if err != nil {
		return none("reading the mount table: " + err.Error())
	}
	m, err := cgroupdelegate.FindMount(infos)
	if err != nil {
		return none("cgroup v2 is not mounted on this host (cgroup v1 only); limits need cgroup v2: boot with systemd.unified_cgroup_hierarchy=1")
	}
	base, err := h.baseDir(m)
	if err != nil {
		return none(err.Error())
	}
	deleg := h.delegation(base)
	// Where a run goes whose limits are all dropped (or that fails closed).
	ifDelegated := func(skipped []unavailable) (cgroupChoice, error) {
		if deleg.Delegated {
			return cgroupChoice{kind: "delegated", base: base, skipped: skipped}, nil
		}
		return cgroupChoice{kind: "none", skipped: skipped}, nil
	}
	if len(writes) == 0 {
		if !deleg.Delegated {
			logf("no cgroup of its own: %s", deleg.Why)
		}
		return ifDelegated(nil)
	}
	// Controllers cgroup v2 does not have at all: no delegation helps.
	rootHas, err := cgroupdelegate.List(m.Point, "cgroup.controllers")
	if err != nil {
		return none(fmt.Sprintf("reading %s/cgroup.controllers: %v", m.Point, err))
	}
	var skipped []unavailable
	var usable []cgroupdelegate.Write
	for _, w := range writes {
		if slices.Contains(rootHas, w.Controller) {
			usable = append(usable, w)
			continue
		}
		why := fmt.Sprintf("the %s controller is not available in cgroup v2 on this host (kernel without it?)", w.Controller)
		if v1 := m.V1Owner(w.Controller); v1 != "" {
			why = fmt.Sprintf("the %s controller belongs to cgroup v1 here (mounted at %s: a hybrid cgroup layout, cgroup v2 is at %s); "+
				"limits need it in cgroup v2: boot with systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all", w.Controller, v1, m.Point)
		}
		skipped = append(skipped, unavailable{w, why})
	}
	if len(usable) == 0 || len(skipped) > 0 && !bestEffort {
		return ifDelegated(skipped)
	}
	need := cgroupdelegate.Controllers(usable)
	have, _ := cgroupdelegate.List(base, "cgroup.controllers")
	notDelegated := ""
	switch {
	case !deleg.Delegated:
		notDelegated = deleg.Why
	case !subset(need, have):
		notDelegated = fmt.Sprintf("your cgroup %s has only the controllers %q, not all of %q", base, strings.Join(have, " "), strings.Join(need, " "))
	}
	if notDelegated == "" {
		var foreign *cgroupdelegate.ForeignError
		err := prepareBase(base, m.Point, need, h.ours)
		if err == nil {
			return cgroupChoice{kind: "delegated", base: base, skipped: skipped}, nil
		}
		if !errors.As(err, &foreign) {
			return cgroupChoice{}, err
		}
		notDelegated = "your cgroup " + foreign.Error()
	}
	c := cgroupChoice{kind: "systemd", skipped: skipped, mount: m, why: notDelegated, usable: usable, need: need,
		dropIn: deleg.Delegated && !subset(need, have) && strings.Contains(base, "/user@")}
	if deleg.Delegated {
		c.base = base
	}
	return c, nil
}

// delegation judges the caller's cgroup dir (cgroupdelegate.JudgeDelegation),
// asking the user manager over D-Bus when the cgroup does not say.
func (h cgroupHost) delegation(dir string) cgroupdelegate.Delegation {
	return cgroupdelegate.JudgeDelegation(dir, h.uid, func(unit string) (bool, error) {
		addr, err := cgroupdelegate.UserBusAddress(h.getenv, h.uid)
		if err != nil {
			return false, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return h.unitDelegated(ctx, addr, unit)
	})
}

// baseDir is where this process's sandboxes go (Mount.Base).
func (h cgroupHost) baseDir(m cgroupdelegate.Mount) (string, error) {
	text, err := h.selfCgroup()
	if err != nil {
		return "", fmt.Errorf("reading /proc/self/cgroup: %w", err)
	}
	return m.Base(text)
}

// prepareBase lets base's children use the controllers: when base holds
// sandbox's own processes (ours), they move to base/sandbox-leaf first —
// the kernel enables controllers for children only in a cgroup without
// processes. Processes sandbox did not start are never moved: a
// *cgroupdelegate.ForeignError then. The root cgroup is exempt and never
// emptied.
func prepareBase(base, root string, controllers []string, ours []int) error {
	on, err := cgroupdelegate.List(base, "cgroup.subtree_control")
	if err != nil {
		return fmt.Errorf("reading %s/cgroup.subtree_control: %w", base, err)
	}
	if subset(controllers, on) {
		return nil
	}
	if procs, err := cgroupdelegate.Procs(base); err == nil && len(procs) > 0 && base != root {
		if err := cgroupdelegate.Evacuate(base, ours...); err != nil {
			return err
		}
	}
	return cgroupdelegate.Enable(base, controllers)
}

// dropInFix makes systemd delegate every controller to user managers.
const dropInFix = "add the drop-in /etc/systemd/system/user@.service.d/delegate.conf with " +
	"\"[Service]\\nDelegate=cpu cpuset io memory pids\", then `systemctl daemon-reload` and log in again"

func delegationFix(h cgroupHost) string {
	user := strconv.Itoa(h.uid)
	if me, err := spec.CurrentUser(); err == nil {
		user = me.Name
	}
	return "run it in a delegated scope: `systemd-run --user --scope -p Delegate=yes sandbox run …` " +
		"(no user manager? `sudo loginctl enable-linger " + user + "`, then log in again)"
}

// failClosed is the error of a strict run whose limits cannot all hold.
func failClosed(skipped []unavailable) error {
	var lines []string
	seen := map[string]bool{}
	for _, u := range skipped {
		l := u.w.Flag + ": " + u.why
		if !seen[l] {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return journal.WithHint(errors.New("cannot apply the limits asked for; not starting (or pass --limits=best-effort to run without them):"), lines...)
}

func unavailableAll(ws []cgroupdelegate.Write, why string) []unavailable {
	var out []unavailable
	for _, w := range ws {
		out = append(out, unavailable{w, why})
	}
	return out
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// oomReport turns the OOM kills of a run into its outcome and a line for
// stderr: the command's 137 gets the reason (an error line), a run whose
// init was the victim (it could not report) becomes 137 with it, and kills
// of other processes are a warning (warn true).
func oomReport(status int, err error, ooms, limit int64) (st int, line string, warn bool, _ error) {
	if ooms == 0 {
		return status, "", false, err
	}
	msg := fmt.Sprintf("killed by the OOM killer (memory limit %s)", cgroupdelegate.FormatSize(limit))
	switch {
	case err != nil:
		return wire.StatusSignalStart + 9, "", false, fmt.Errorf("%s (%v)", msg, err)
	case status == wire.StatusSignalStart+9:
		return status, msg, false, nil
	}
	return status, fmt.Sprintf("the OOM killer killed %d process(es) in the sandbox (memory limit %s)",
		ooms, cgroupdelegate.FormatSize(limit)), true, nil
}

// limitReport is w as the run report shows it.
func limitReport(w cgroupdelegate.Write) journal.LimitReport {
	return journal.LimitReport{Flag: w.Flag, File: w.File, Value: w.Value}
}
