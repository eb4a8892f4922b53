package parent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// runCgroup is the sandbox's own cgroup for one run.
type runCgroup struct {
	dir     string   // sandbox-<pid>-<start>, with the limits
	f       *os.File // dir/payload, for clone3(CLONE_INTO_CGROUP)
	memory  int64    // --memory, for the OOM message
	limited bool     // limits were written: the run needs this cgroup
	applied []string // the limits written, as FILE=VALUE
	logf    func(string, ...any)
	warn    func(string)
	lg      *journal.Logger // fallbacks
	rep     *journal.Report // nil in tests
}

// cgroupHost is what placing the cgroup reads from the host; tests fake it.
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
	warn          func(string)
	rep           *journal.Report // records applied and skipped limits; nil in tests
}

func realCgroupHost() (cgroupHost, error) {
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
		warn:  journal.DefaultLogger(false, time.Now()).Line,
	}, err
}

// openCgroup gives the sandbox its cgroup before anything starts. Without
// limits it is a convenience (killed and removed as one at exit) made only
// where the caller's cgroup is delegated already, and nothing fails when it
// cannot be made. With limits it fails closed (unless best-effort).
func openCgroup(s *spec.Spec, lg *journal.Logger) (*runCgroup, error) {
	h, err := realCgroupHost()
	if err != nil {
		if s.Resources.Limits.Any() {
			return nil, fmt.Errorf("reading this process's identity: %w", err)
		}
		return nil, nil
	}
	h.warn, h.rep = lg.Line, s.Report
	h.ours = []int{h.owner.PID}
	if s.Detached {
		// The foreground `run -d` waits in the same cgroup until we report.
		h.ours = append(h.ours, os.Getppid())
	}
	cg, err := h.open(s.Resources, strings.Join(s.Args, " "), lg.Step)
	if cg != nil {
		cg.lg, cg.rep = lg, s.Report
		if cg.rep != nil {
			cg.rep.CgroupPart().Path = cg.dir
		}
	}
	return cg, err
}

// unavailable is a write that cannot be applied, and why.
type unavailable struct {
	w   cgroupdelegate.Write
	why string
}

func (h cgroupHost) open(res spec.Resources, cmdline string, logf func(string, ...any)) (*runCgroup, error) {
	writes := res.Limits.Plan()
	base, skipped, err := h.place(writes, res.BestEffort, cmdline, logf)
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		if !res.BestEffort {
			return nil, failClosed(skipped)
		}
		warned := map[string]bool{}
		for _, u := range skipped {
			if !warned[u.w.Flag] {
				warned[u.w.Flag] = true
				h.warn(fmt.Sprintf("sandbox: warning: %s not applied (--limits=best-effort): %s", u.w.Flag, u.why))
			}
			h.rep.SkipLimit(limitReport(u.w), u.why)
			writes = slices.DeleteFunc(writes, func(w cgroupdelegate.Write) bool { return w == u.w })
		}
	}
	if base == "" {
		return nil, nil
	}
	if removed, err := cgroupdelegate.CleanStale(base, h.procRoot); err != nil {
		logf("cleaning stale cgroups: %v", err)
	} else if len(removed) > 0 {
		logf("removed cgroups of runs that were killed: %s", strings.Join(removed, " "))
	}
	cg, err := h.create(base, writes)
	if err != nil && len(writes) == 0 {
		// Only a convenience without limits: run without it.
		logf("no cgroup of its own: %v", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cg.logf, cg.memory, cg.limited = logf, res.Limits.Memory, len(writes) > 0
	logf("cgroup %s (%d limit writes)", cg.dir, len(writes))
	return cg, nil
}

func (h cgroupHost) create(base string, writes []cgroupdelegate.Write) (*runCgroup, error) {
	dir := filepath.Join(base, h.owner.Name())
	if err := h.mkdir(dir); err != nil {
		return nil, fmt.Errorf("creating the sandbox's cgroup: %w", err)
	}
	fail := func(err error) (*runCgroup, error) {
		cgroupdelegate.Remove(dir)
		return nil, err
	}
	skipped, err := cgroupdelegate.Apply(dir, writes)
	if err != nil {
		return fail(err)
	}
	for _, w := range skipped {
		h.warn(fmt.Sprintf("sandbox: warning: %s: this kernel has no %s (no swap accounting), so swap is not limited", w.Flag, w.File))
		h.rep.SkipLimit(limitReport(w), "this kernel has no "+w.File+" (no swap accounting)")
	}
	var applied []string
	for _, w := range writes {
		if !slices.Contains(skipped, w) {
			h.rep.ApplyLimit(limitReport(w))
			applied = append(applied, w.File+"="+w.Value)
		}
	}
	payload := filepath.Join(dir, payloadCgroup)
	if err := h.mkdir(payload); err != nil {
		return fail(fmt.Errorf("creating the sandbox's cgroup: %w", err))
	}
	f, err := os.Open(payload)
	if err != nil {
		return fail(fmt.Errorf("opening the sandbox's cgroup: %w", err))
	}
	return &runCgroup{dir: dir, f: f, warn: h.warn, applied: applied}, nil
}

// place finds the cgroup under which sandbox-<id> goes ("" for none) and
// prepares it for the controllers the writes need. The writes it cannot
// serve come back with the reason. A strict run changes nothing on the
// host before it knows that every write can be served (only a systemd
// scope may be left, and it ends with this process).
func (h cgroupHost) place(writes []cgroupdelegate.Write, bestEffort bool, cmdline string, logf func(string, ...any)) (string, []unavailable, error) {
	all := func(why string) []unavailable { return unavailableAll(writes, why) }
	infos, err := h.mounts()
	if err != nil {
		return "", all("reading the mount table: " + err.Error()), nil
	}
	m, err := cgroupdelegate.FindMount(infos)
	if err != nil {
		return "", all("cgroup v2 is not mounted on this host (cgroup v1 only); limits need cgroup v2: boot with systemd.unified_cgroup_hierarchy=1"), nil
	}
	base, err := h.baseDir(m)
	if err != nil {
		return "", all(err.Error()), nil
	}
	deleg := h.delegation(base)
	if len(writes) == 0 {
		if deleg.Delegated {
			return base, nil, nil
		}
		logf("no cgroup of its own: %s", deleg.Why)
		return "", nil, nil
	}
	// Controllers cgroup v2 does not have at all: no delegation helps.
	rootHas, err := cgroupdelegate.List(m.Point, "cgroup.controllers")
	if err != nil {
		return "", all(fmt.Sprintf("reading %s/cgroup.controllers: %v", m.Point, err)), nil
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
		return baseIfDelegated(base, deleg), skipped, nil
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
			return base, skipped, nil
		}
		if !errors.As(err, &foreign) {
			return "", nil, err
		}
		notDelegated = "your cgroup " + foreign.Error()
	}
	logf("%s; asking the systemd user manager for a delegated scope", notDelegated)
	scope, err := h.scope(m, cmdline)
	if err != nil {
		fix := delegationFix(h)
		if deleg.Delegated && !subset(need, have) && strings.Contains(base, "/user@") {
			// Already in a delegated unit of the user manager: another
			// scope would get the same controllers; only the drop-in adds some.
			fix = dropInFix
		}
		return baseIfDelegated(base, deleg), unavailableAll(usable, fmt.Sprintf("%s, and systemd could not give one: %v; %s", notDelegated, err, fix)), nil
	}
	logf("in the delegated systemd scope %s", scope)
	have, _ = cgroupdelegate.List(scope, "cgroup.controllers")
	for _, w := range usable {
		if !slices.Contains(have, w.Controller) {
			skipped = append(skipped, unavailable{w, fmt.Sprintf("systemd delegates only %q to your user manager, not %s; %s",
				strings.Join(have, " "), w.Controller, dropInFix)})
		}
	}
	if len(skipped) > 0 && !bestEffort {
		return scope, skipped, nil
	}
	if err := prepareBase(scope, m.Point, intersect(need, have), h.ours); err != nil {
		return "", nil, err
	}
	return scope, skipped, nil
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

// scope obtains a delegated transient scope from the systemd user manager
// holding this process, and returns its directory.
func (h cgroupHost) scope(m cgroupdelegate.Mount, cmdline string) (string, error) {
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
	return m.Dir(cg)
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
	return fmt.Errorf("cannot apply the limits asked for; not starting (or pass --limits=best-effort to run without them):\n  %s",
		strings.Join(lines, "\n  "))
}

func unavailableAll(ws []cgroupdelegate.Write, why string) []unavailable {
	var out []unavailable
	for _, w := range ws {
		out = append(out, unavailable{w, why})
	}
	return out
}

// baseIfDelegated: where a run without the limits still gets its cgroup.
func baseIfDelegated(base string, d cgroupdelegate.Delegation) string {
	if d.Delegated {
		return base
	}
	return ""
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

// startInit starts init in the sandbox's cgroup. Without limits the
// cgroup is only a convenience: where init cannot be placed in it (a
// threaded subtree, say), the run goes on without it.
func (c *runCgroup) startInit(o userns.Options) (*userns.Child, error) {
	if c == nil {
		return userns.Start(o)
	}
	o.Cgroup = c.f
	child, err := userns.Start(o)
	if err == nil || c.limited {
		return child, err
	}
	c.logf("init could not start in cgroup %s (%v); running without a cgroup of its own", c.dir, err)
	if c.lg != nil {
		c.lg.Fallback("cgroup", "no cgroup of its own", fmt.Sprintf("init could not start in %s: %v", c.dir, err))
	}
	if c.rep != nil {
		c.rep.CgroupPart().Path = ""
	}
	c.f.Close()
	cgroupdelegate.Remove(c.dir)
	*c = runCgroup{}
	o.Cgroup = nil
	return userns.Start(o)
}

// where describes how init was placed, for the verbose log.
func (c *runCgroup) where(child *userns.Child) string {
	if c == nil || c.f == nil {
		return ""
	}
	return " in cgroup " + c.f.Name() + " (" + child.CgroupVia + ")"
}

// describe puts the cgroup and its limits into the sandbox's record.
func (c *runCgroup) describe(info *state.Info) {
	if c == nil || c.f == nil {
		return
	}
	info.Cgroup, info.Limits = c.dir, c.applied
}

// placed records how init entered the cgroup.
func (c *runCgroup) placed(child *userns.Child) {
	if c == nil || c.f == nil || c.rep == nil {
		return
	}
	c.rep.CgroupPart().InitVia = child.CgroupVia
	if child.CgroupVia == "cgroup.procs" {
		c.lg.Fallback("cgroup", "init moved in through cgroup.procs",
			"the kernel refused clone3 with CLONE_INTO_CGROUP")
	}
}

// finish reports an OOM kill, then kills whatever is left in the cgroup
// and removes it. It runs when Run returns, whatever happened.
func (c *runCgroup) finish(status int, err error) (int, error) {
	if c == nil || c.f == nil {
		return status, err
	}
	var ooms int64
	if c.memory > 0 {
		ooms, _ = cgroupdelegate.Key(c.dir, "memory.events", "oom_kill")
	}
	if c.rep != nil {
		c.rep.OomKills = ooms
	}
	if kerr := cgroupdelegate.Kill(c.dir); kerr != nil {
		c.logf("killing the cgroup: %v", kerr)
	}
	if rerr := cgroupdelegate.Remove(c.dir); rerr != nil {
		c.warn(fmt.Sprintf("sandbox: warning: %v (the next run removes it)", rerr))
	} else {
		c.logf("killed and removed cgroup %s", c.dir)
	}
	c.f.Close()
	status, msg, err := oomReport(status, err, ooms, c.memory)
	if msg != "" {
		c.warn(msg)
	}
	return status, err
}

// oomReport turns the OOM kills of a run into its outcome and a line for
// stderr: the command's 137 gets the reason, a run whose init was the
// victim (it could not report) becomes 137 with it, and kills of other
// processes are a warning.
func oomReport(status int, err error, ooms, limit int64) (int, string, error) {
	if ooms == 0 {
		return status, "", err
	}
	msg := fmt.Sprintf("killed by the OOM killer (memory limit %s)", cgroupdelegate.FormatSize(limit))
	switch {
	case err != nil:
		return wire.StatusSignalStart + 9, "", fmt.Errorf("%s (%v)", msg, err)
	case status == wire.StatusSignalStart+9:
		return status, "sandbox: " + msg, nil
	}
	return status, fmt.Sprintf("sandbox: warning: the OOM killer killed %d process(es) in the sandbox (memory limit %s)",
		ooms, cgroupdelegate.FormatSize(limit)), nil
}

// limitReport is w as the run report shows it.
func limitReport(w cgroupdelegate.Write) journal.LimitReport {
	return journal.LimitReport{Flag: w.Flag, File: w.File, Value: w.Value}
}
