package parent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sandbox/cgroupdelegate"
	"sandbox/journal"
	"sandbox/state"
	"sandbox/userns"
)

// delegatedCgroup is the sandbox's cgroup sandbox-<pid>-<start> below a
// delegated cgroup (the caller's, or the scope of a systemdCgroup), with
// the limits, and its child payload where init is born. When init cannot
// start in it and the run goes on without it (startInit), it is dropped:
// zero, f nil, and then does what noCgroup does.
type delegatedCgroup struct {
	dir     string   // sandbox-<pid>-<start>, with the limits
	f       *os.File // dir/payload, for clone3(CLONE_INTO_CGROUP)
	memory  int64    // --memory, for the OOM message
	limited bool     // limits were written: the run needs this cgroup
	applied []string // the limits written, as FILE=VALUE
	logf    func(string, ...any)
	warn    func(string)    // a warning line
	fail    func(string)    // an error line
	lg      *journal.Logger // fallbacks; nil in tests
	rep     *journal.Report // nil in tests
}

// delegated makes the sandbox's cgroup below base, whose children can use
// the controllers the writes need, and writes them; first it removes the
// cgroups of earlier runs there that were killed.
func (h cgroupHost) delegated(base string, writes []cgroupdelegate.Write, memory int64, logf func(string, ...any)) (*delegatedCgroup, error) {
	if removed, err := cgroupdelegate.CleanStale(base, h.procRoot); err != nil {
		logf("cleaning stale cgroups: %v", err)
	} else if len(removed) > 0 {
		logf("removed cgroups of runs that were killed: %s", strings.Join(removed, " "))
	}
	cg, err := h.create(base, writes)
	if err != nil {
		return nil, err
	}
	cg.logf, cg.memory, cg.limited = logf, memory, len(writes) > 0
	cg.lg, cg.rep = h.lg, h.rep
	if cg.rep != nil {
		cg.rep.CgroupPart().Path = cg.dir
	}
	logf("cgroup %s (%d limit writes)", cg.dir, len(writes))
	return cg, nil
}

// create makes dir and its payload child and writes the limits; nothing
// is left of it when it fails.
func (h cgroupHost) create(base string, writes []cgroupdelegate.Write) (*delegatedCgroup, error) {
	dir := filepath.Join(base, h.owner.Name())
	if err := h.mkdir(dir); err != nil {
		return nil, fmt.Errorf("creating the sandbox's cgroup: %w", err)
	}
	fail := func(err error) (*delegatedCgroup, error) {
		cgroupdelegate.Remove(dir)
		return nil, err
	}
	skipped, err := cgroupdelegate.Apply(dir, writes)
	if err != nil {
		return fail(err)
	}
	for _, w := range skipped {
		h.warn(fmt.Sprintf("%s: this kernel has no %s (no swap accounting), so swap is not limited", w.Flag, w.File))
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
	return &delegatedCgroup{dir: dir, f: f, warn: h.warn, fail: h.fail, applied: applied}, nil
}

// startInit starts init in the sandbox's cgroup. Without limits the
// cgroup is only a convenience: where init cannot be placed in it (a
// threaded subtree, say), the run goes on without it.
func (c *delegatedCgroup) startInit(o userns.Options) (*userns.Child, error) {
	o.Cgroup = c.f
	child, err := userns.Start(o)
	if err == nil || c.limited {
		return child, err
	}
	c.drop(err)
	o.Cgroup = nil
	return userns.Start(o)
}

// drop gives up a cgroup without limits that init could not enter (err):
// the run goes on without a cgroup of its own.
func (c *delegatedCgroup) drop(err error) {
	c.logf("init could not start in cgroup %s (%v); running without a cgroup of its own", c.dir, err)
	if c.lg != nil {
		c.lg.Fallback("cgroup", "no cgroup of its own", fmt.Sprintf("init could not start in %s: %v", c.dir, err))
	}
	if c.rep != nil {
		c.rep.CgroupPart().Path = ""
	}
	c.f.Close()
	cgroupdelegate.Remove(c.dir)
	*c = delegatedCgroup{}
}

// adoptInit moves an init started early (StartEarly: no limits asked)
// into the cgroup, as userns.Start does where clone3 cannot start it
// there; what its Go runtime's start allocated before stays charged to
// the caller's cgroup. A cgroup with limits takes only an init born in
// it: false (the run starts another).
func (c *delegatedCgroup) adoptInit(child *userns.Child) bool {
	if c.f == nil {
		return true
	}
	if c.limited {
		return false
	}
	if err := userns.JoinCgroup(c.f, child.Pid); err != nil {
		c.drop(err)
		return true
	}
	child.CgroupVia = "cgroup.procs"
	return true
}

func (c *delegatedCgroup) where(child *userns.Child) string {
	if c.f == nil {
		return ""
	}
	return " in cgroup " + c.f.Name() + " (" + child.CgroupVia + ")"
}

func (c *delegatedCgroup) describe(info *state.Info) {
	if c.f == nil {
		return
	}
	info.Cgroup, info.Limits = c.dir, c.applied
}

func (c *delegatedCgroup) limits() []string { return c.applied }

func (c *delegatedCgroup) placed(child *userns.Child) {
	if c.f == nil || c.rep == nil {
		return
	}
	c.rep.CgroupPart().InitVia = child.CgroupVia
	if child.CgroupVia == "cgroup.procs" {
		c.lg.Fallback("cgroup", "init moved in through cgroup.procs",
			"the kernel refused clone3 with CLONE_INTO_CGROUP")
	}
}

func (c *delegatedCgroup) finish(status int, err error) (int, error) {
	if c.f == nil {
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
		c.warn(fmt.Sprintf("%v (the next run removes it)", rerr))
	} else {
		c.logf("killed and removed cgroup %s", c.dir)
	}
	c.f.Close()
	status, msg, warn, err := oomReport(status, err, ooms, c.memory)
	switch {
	case msg != "" && warn:
		c.warn(msg)
	case msg != "":
		c.fail(msg)
	}
	return status, err
}
