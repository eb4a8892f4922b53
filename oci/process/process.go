// Package process applies an OCI process (config.json's process, or exec's
// --process) to the calling process and executes it: rlimits,
// oomScoreAdj, user (additional groups, gid, uid), capabilities,
// no_new_privs, seccomp, cwd, environment, the console, execve. Used by the
// container's init once started and by exec once inside the namespaces.
package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/confine"
	"sandbox/seccomp"
)

// Bounds on what a process may ask for (config.json is read bounded, but
// one field must not make Exec loop or allocate without end).
const (
	// MaxAdditionalGids is the kernel's NGROUPS_MAX.
	MaxAdditionalGids = 65536
	// maxID is the largest uid or gid a process may ask for (runc's).
	maxID   = 1<<31 - 1
	maxArgs = 1 << 16
	maxEnv  = 1 << 16
)

// Plan is a checked process, ready to apply (JSON, so that a parent can
// check it and hand it on).
type Plan struct {
	Process *specs.Process `json:"process"`
	// What Prepare worked out from Process and the spec.
	Rlimits     []Rlimit         `json:"rlimits,omitempty"`
	Caps        CapSets          `json:"caps"`
	Seccomp     *seccomp.Program `json:"seccomp,omitempty"`
	IOPrio      *int             `json:"ioprio,omitempty"` // ioprio_set value (class<<13 | level)
	Sched       *SchedAttr       `json:"sched,omitempty"`
	Personality *int             `json:"personality,omitempty"`
	AppArmor    string           `json:"apparmor,omitempty"`
}

// Rlimit is one setrlimit.
type Rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// CapSets are the process's capability sets as numbers. A process given
// no capabilities section gets none at all.
type CapSets struct {
	Bounding    []int `json:"bounding,omitempty"`
	Effective   []int `json:"effective,omitempty"`
	Inheritable []int `json:"inheritable,omitempty"`
	Permitted   []int `json:"permitted,omitempty"`
	Ambient     []int `json:"ambient,omitempty"`
}

// rlimits are the RLIMIT_ names of linux (sys/resource.h numbers).
var rlimits = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
	"RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
	"RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

// RlimitNumber is the resource number of an RLIMIT_ name.
func RlimitNumber(name string) (int, bool) {
	n, ok := rlimits[name]
	return n, ok
}

// Prepare checks p (with the spec's linux.seccomp, linux.sysctl where it
// matters) and compiles what can be compiled; errors name the field
// (`process.capabilities.bounding[2]: ...`). Pure.
func Prepare(p *specs.Process, s *specs.Spec) (*Plan, error) {
	if p == nil {
		return nil, errors.New("process: missing")
	}
	plan := &Plan{Process: p}
	if len(p.Args) == 0 {
		if p.CommandLine != "" {
			return nil, errors.New("process.commandLine: only for Windows; give process.args")
		}
		return nil, errors.New("process.args: empty (the container needs a program to run)")
	}
	if len(p.Args) > maxArgs {
		return nil, fmt.Errorf("process.args: %d entries, more than %d", len(p.Args), maxArgs)
	}
	for i, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("process.args[%d]: contains a NUL byte", i)
		}
	}
	if p.Args[0] == "" {
		return nil, errors.New("process.args[0]: empty")
	}
	if !path.IsAbs(p.Cwd) {
		return nil, fmt.Errorf("process.cwd: %q is not an absolute path", p.Cwd)
	}
	if len(p.Env) > maxEnv {
		return nil, fmt.Errorf("process.env: %d entries, more than %d", len(p.Env), maxEnv)
	}
	for i, e := range p.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, fmt.Errorf("process.env[%d]: %q is not KEY=VALUE", i, e)
		}
		if strings.IndexByte(e, 0) >= 0 {
			return nil, fmt.Errorf("process.env[%d]: contains a NUL byte", i)
		}
	}
	if p.User.Username != "" {
		return nil, errors.New("process.user.username: only for Windows; give process.user.uid and gid")
	}
	// (uid_t)-1 means "unchanged" to setresuid and setresgid: the process
	// would keep root. runc's range, which engines know, bounds them all.
	if p.User.UID > maxID {
		return nil, fmt.Errorf("process.user.uid: %d is outside 0..%d", p.User.UID, maxID)
	}
	if p.User.GID > maxID {
		return nil, fmt.Errorf("process.user.gid: %d is outside 0..%d", p.User.GID, maxID)
	}
	if len(p.User.AdditionalGids) > MaxAdditionalGids {
		return nil, fmt.Errorf("process.user.additionalGids: %d entries, more than %d", len(p.User.AdditionalGids), MaxAdditionalGids)
	}
	for i, g := range p.User.AdditionalGids {
		if g > maxID {
			return nil, fmt.Errorf("process.user.additionalGids[%d]: %d is outside 0..%d", i, g, maxID)
		}
	}
	if p.User.Umask != nil && *p.User.Umask > 0o777 {
		return nil, fmt.Errorf("process.user.umask: %#o is not a mode (0 to 0777)", *p.User.Umask)
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return nil, errors.New("process.consoleSize: set without process.terminal")
	}
	caps, err := capSets(p.Capabilities)
	if err != nil {
		return nil, err
	}
	plan.Caps = caps
	if plan.Rlimits, err = prepareRlimits(p.Rlimits); err != nil {
		return nil, err
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return nil, fmt.Errorf("process.oomScoreAdj: %d is outside -1000..1000", *p.OOMScoreAdj)
	}
	if p.SelinuxLabel != "" {
		return nil, errors.New("process.selinuxLabel: SELinux labels are not supported by sandbox-oci")
	}
	if p.ApparmorProfile != "" {
		if !appArmorEnabled() {
			return nil, fmt.Errorf("process.apparmorProfile: %q asked, but AppArmor is not enabled on this host", p.ApparmorProfile)
		}
		plan.AppArmor = p.ApparmorProfile
	}
	if p.IOPriority != nil {
		v, err := ioPrio(p.IOPriority)
		if err != nil {
			return nil, err
		}
		plan.IOPrio = &v
	}
	if p.Scheduler != nil {
		a, err := schedAttr(p.Scheduler)
		if err != nil {
			return nil, err
		}
		plan.Sched = a
	}
	if p.ExecCPUAffinity != nil && (p.ExecCPUAffinity.Initial != "" || p.ExecCPUAffinity.Final != "") {
		return nil, errors.New("process.execCPUAffinity: not supported by sandbox-oci")
	}
	if s != nil && s.Linux != nil {
		if s.Linux.Personality != nil {
			v, err := personality(s.Linux.Personality)
			if err != nil {
				return nil, err
			}
			plan.Personality = &v
		}
		if s.Linux.Seccomp != nil {
			var names []string
			for _, c := range caps.Bounding {
				names = append(names, confine.CapName(c))
			}
			if plan.Seccomp, err = compileSeccomp(s.Linux.Seccomp, names); err != nil {
				return nil, err
			}
		}
	}
	return plan, nil
}

// capSets maps the five lists to numbers; unknown names are errors.
func capSets(c *specs.LinuxCapabilities) (CapSets, error) {
	var out CapSets
	if c == nil {
		return out, nil
	}
	sets := []struct {
		name string
		in   []string
		out  *[]int
	}{
		{"bounding", c.Bounding, &out.Bounding},
		{"effective", c.Effective, &out.Effective},
		{"inheritable", c.Inheritable, &out.Inheritable},
		{"permitted", c.Permitted, &out.Permitted},
		{"ambient", c.Ambient, &out.Ambient},
	}
	for _, s := range sets {
		if len(s.in) > 1024 {
			return out, fmt.Errorf("process.capabilities.%s: %d entries, more than 1024", s.name, len(s.in))
		}
		for i, name := range s.in {
			if !strings.HasPrefix(strings.ToUpper(name), "CAP_") {
				return out, fmt.Errorf("process.capabilities.%s[%d]: unknown capability %q", s.name, i, name)
			}
			n, err := confine.CapNumber(name)
			if err != nil {
				return out, fmt.Errorf("process.capabilities.%s[%d]: unknown capability %q", s.name, i, name)
			}
			*s.out = append(*s.out, n)
		}
	}
	return out, nil
}

func prepareRlimits(rl []specs.POSIXRlimit) ([]Rlimit, error) {
	seen := map[string]bool{}
	var out []Rlimit
	for i, r := range rl {
		n, ok := rlimits[r.Type]
		if !ok {
			return nil, fmt.Errorf("process.rlimits[%d].type: unknown resource %q (RLIMIT_CPU … RLIMIT_RTTIME)", i, r.Type)
		}
		if seen[r.Type] {
			return nil, fmt.Errorf("process.rlimits[%d].type: %s given twice", i, r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return nil, fmt.Errorf("process.rlimits[%d]: %s soft limit %d is above the hard limit %d", i, r.Type, r.Soft, r.Hard)
		}
		out = append(out, Rlimit{Resource: n, Soft: r.Soft, Hard: r.Hard})
	}
	return out, nil
}

// compileSeccomp compiles linux.seccomp with sandbox's compiler: the OCI
// section is that compiler's own input format.
func compileSeccomp(sc *specs.LinuxSeccomp, caps []string) (*seccomp.Program, error) {
	data, err := json.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	prof, err := seccomp.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %s", strings.TrimPrefix(err.Error(), "seccomp profile: "))
	}
	prog, err := seccomp.Compile(prof, seccomp.Options{Caps: caps})
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %s", strings.TrimPrefix(err.Error(), "seccomp profile: "))
	}
	return prog, nil
}

// ioPrio is the ioprio_set value of process.ioPriority.
func ioPrio(p *specs.LinuxIOPriority) (int, error) {
	var class int
	switch p.Class {
	case specs.IOPRIO_CLASS_RT:
		class = 1
	case specs.IOPRIO_CLASS_BE:
		class = 2
	case specs.IOPRIO_CLASS_IDLE:
		class = 3
	default:
		return 0, fmt.Errorf("process.ioPriority.class: unknown class %q (IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE)", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return 0, fmt.Errorf("process.ioPriority.priority: %d is outside 0..7", p.Priority)
	}
	return class<<13 | p.Priority, nil
}

// SchedAttr is the kernel's struct sched_attr (sched_setattr(2)).
type SchedAttr struct {
	Size     uint32 `json:"-"`
	Policy   uint32 `json:"policy"`
	Flags    uint64 `json:"flags"`
	Nice     int32  `json:"nice"`
	Priority uint32 `json:"priority"`
	Runtime  uint64 `json:"runtime"`
	Deadline uint64 `json:"deadline"`
	Period   uint64 `json:"period"`
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3,
	specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10, specs.SchedFlagUtilClampMin: 0x20,
	specs.SchedFlagUtilClampMax: 0x40,
}

func schedAttr(s *specs.Scheduler) (*SchedAttr, error) {
	pol, ok := schedPolicies[s.Policy]
	if !ok {
		return nil, fmt.Errorf("process.scheduler.policy: unknown or unsupported policy %q", s.Policy)
	}
	a := &SchedAttr{Policy: pol, Nice: s.Nice, Priority: uint32(s.Priority), Runtime: s.Runtime, Deadline: s.Deadline, Period: s.Period}
	if s.Nice < -20 || s.Nice > 19 {
		return nil, fmt.Errorf("process.scheduler.nice: %d is outside -20..19", s.Nice)
	}
	rt := s.Policy == specs.SchedFIFO || s.Policy == specs.SchedRR
	if s.Priority < 0 {
		return nil, fmt.Errorf("process.scheduler.priority: %d is negative", s.Priority)
	}
	if rt && (s.Priority < 1 || s.Priority > 99) {
		return nil, fmt.Errorf("process.scheduler.priority: %d is outside 1..99 for %s", s.Priority, s.Policy)
	}
	if !rt && s.Priority != 0 {
		return nil, fmt.Errorf("process.scheduler.priority: must be 0 for %s", s.Policy)
	}
	if s.Policy == specs.SchedDeadline {
		if s.Runtime == 0 || s.Runtime > s.Deadline || (s.Period != 0 && s.Deadline > s.Period) {
			return nil, errors.New("process.scheduler: SCHED_DEADLINE needs 0 < runtime <= deadline <= period")
		}
	} else if s.Runtime != 0 || s.Deadline != 0 || s.Period != 0 {
		return nil, fmt.Errorf("process.scheduler: runtime, deadline and period are for SCHED_DEADLINE only, not %s", s.Policy)
	}
	for i, f := range s.Flags {
		bit, ok := schedFlags[f]
		if !ok {
			return nil, fmt.Errorf("process.scheduler.flags[%d]: unknown flag %q", i, f)
		}
		a.Flags |= bit
	}
	return a, nil
}

func personality(p *specs.LinuxPersonality) (int, error) {
	if len(p.Flags) > 0 {
		// Quoted: the flags are the config's, and a newline in one would
		// make the error two lines.
		return 0, fmt.Errorf("linux.personality.flags: not supported (%q)", p.Flags)
	}
	switch p.Domain {
	case specs.PerLinux:
		return 0x0000, nil
	case specs.PerLinux32:
		return 0x0008, nil
	}
	return 0, fmt.Errorf("linux.personality.domain: unknown domain %q (LINUX, LINUX32)", p.Domain)
}

// appArmorEnabled is what runc asks: is AppArmor on in this kernel?
func appArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(b) > 0 && b[0] == 'Y'
}
