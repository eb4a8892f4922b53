package process

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/confine"
)

func goodProcess() *specs.Process {
	return &specs.Process{
		Args: []string{"sh"},
		Env:  []string{"PATH=/bin"},
		Cwd:  "/",
		Capabilities: &specs.LinuxCapabilities{
			Bounding:  []string{"CAP_KILL", "CAP_SYS_ADMIN"},
			Effective: []string{"CAP_KILL"},
			Permitted: []string{"CAP_KILL"},
			Ambient:   []string{"cap_kill"},
		},
		Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 200}, {Type: "RLIMIT_CORE"}},
	}
}

func TestPrepareMaps(t *testing.T) {
	plan, err := Prepare(goodProcess(), &specs.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	want := CapSets{Bounding: []int{5, 21}, Effective: []int{5}, Permitted: []int{5}, Ambient: []int{5}}
	if !reflect.DeepEqual(plan.Caps, want) {
		t.Errorf("caps %+v, want %+v", plan.Caps, want)
	}
	wantRl := []Rlimit{{Resource: 7, Soft: 100, Hard: 200}, {Resource: 4}}
	if !reflect.DeepEqual(plan.Rlimits, wantRl) {
		t.Errorf("rlimits %+v, want %+v", plan.Rlimits, wantRl)
	}
	// The plan travels as JSON from the checking parent to the process.
	data, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Caps, plan.Caps) || !reflect.DeepEqual(back.Rlimits, plan.Rlimits) {
		t.Errorf("JSON round trip changed the plan: %s", data)
	}
}

func TestPrepareSeccomp(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Seccomp: &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	}}}
	plan, err := Prepare(goodProcess(), s)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Seccomp == nil || len(plan.Seccomp.Instructions) == 0 {
		t.Fatal("no seccomp program compiled")
	}
	data, _ := json.Marshal(plan)
	var back Plan
	if err := json.Unmarshal(data, &back); err != nil || back.Seccomp == nil || len(back.Seccomp.Instructions) != len(plan.Seccomp.Instructions) {
		t.Fatalf("seccomp program lost in JSON: %v", err)
	}
}

func TestPrepareScheduling(t *testing.T) {
	p := goodProcess()
	p.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 4}
	p.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 5, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork}}
	s := &specs.Spec{Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32}}}
	plan, err := Prepare(p, s)
	if err != nil {
		t.Fatal(err)
	}
	if *plan.IOPrio != 2<<13|4 {
		t.Errorf("ioprio %#x", *plan.IOPrio)
	}
	if plan.Sched.Policy != 3 || plan.Sched.Nice != 5 || plan.Sched.Flags != 1 {
		t.Errorf("sched %+v", plan.Sched)
	}
	if *plan.Personality != 8 {
		t.Errorf("personality %#x", *plan.Personality)
	}
}

// TestPrepareNamesField: every bad field is refused with an error that
// names it.
func TestPrepareNamesField(t *testing.T) {
	i := func(v int) *int { return &v }
	u := func(v uint32) *uint32 { return &v }
	cases := []struct {
		name string
		edit func(p *specs.Process, s *specs.Spec)
		want string
	}{
		{"no args", func(p *specs.Process, s *specs.Spec) { p.Args = nil }, "process.args: empty"},
		{"relative cwd", func(p *specs.Process, s *specs.Spec) { p.Cwd = "tmp" }, `process.cwd: "tmp" is not an absolute path`},
		{"env", func(p *specs.Process, s *specs.Spec) { p.Env = append(p.Env, "NOEQUALS") }, `process.env[1]: "NOEQUALS" is not KEY=VALUE`},
		{"nul arg", func(p *specs.Process, s *specs.Spec) { p.Args = []string{"a\x00b"} }, "process.args[0]: contains a NUL byte"},
		{"unknown cap", func(p *specs.Process, s *specs.Spec) {
			p.Capabilities.Effective = []string{"CAP_KILL", "CAP_FOO"}
		}, `process.capabilities.effective[1]: unknown capability "CAP_FOO"`},
		{"cap without prefix", func(p *specs.Process, s *specs.Spec) {
			p.Capabilities.Bounding = []string{"kill"}
		}, `process.capabilities.bounding[0]: unknown capability "kill"`},
		{"rlimit name", func(p *specs.Process, s *specs.Spec) {
			p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_BOGUS"})
		}, `process.rlimits[2].type: unknown resource "RLIMIT_BOGUS"`},
		{"rlimit soft>hard", func(p *specs.Process, s *specs.Spec) {
			p.Rlimits[0].Soft = 300
		}, "process.rlimits[0]: RLIMIT_NOFILE soft limit 300 is above the hard limit 200"},
		{"rlimit twice", func(p *specs.Process, s *specs.Spec) {
			p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE"})
		}, "process.rlimits[2].type: RLIMIT_NOFILE given twice"},
		{"oom", func(p *specs.Process, s *specs.Spec) { p.OOMScoreAdj = i(1001) }, "process.oomScoreAdj: 1001 is outside -1000..1000"},
		{"umask", func(p *specs.Process, s *specs.Spec) { p.User.Umask = u(0o1000) }, "process.user.umask"},
		{"groups", func(p *specs.Process, s *specs.Spec) {
			p.User.AdditionalGids = make([]uint32, MaxAdditionalGids+1)
		}, "process.user.additionalGids: 65537 entries"},
		{"username", func(p *specs.Process, s *specs.Spec) { p.User.Username = "bob" }, "process.user.username"},
		// (uid_t)-1 is "unchanged" to setresuid: the process would keep
		// root; runc refuses ids past 2^31-1 too.
		{"uid -1", func(p *specs.Process, s *specs.Spec) { p.User.UID = 4294967295 }, "process.user.uid: 4294967295 is outside 0..2147483647"},
		{"gid -1", func(p *specs.Process, s *specs.Spec) { p.User.GID = 4294967295 }, "process.user.gid: 4294967295 is outside 0..2147483647"},
		{"uid 2^31", func(p *specs.Process, s *specs.Spec) { p.User.UID = 1 << 31 }, "process.user.uid: 2147483648 is outside"},
		{"group -1", func(p *specs.Process, s *specs.Spec) {
			p.User.AdditionalGids = []uint32{5, 4294967295}
		}, "process.user.additionalGids[1]: 4294967295 is outside 0..2147483647"},
		{"selinux", func(p *specs.Process, s *specs.Spec) { p.SelinuxLabel = "system_u:system_r:container_t:s0" }, "process.selinuxLabel"},
		{"ioprio class", func(p *specs.Process, s *specs.Spec) {
			p.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_NONE"}
		}, "process.ioPriority.class"},
		{"ioprio level", func(p *specs.Process, s *specs.Spec) {
			p.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}
		}, "process.ioPriority.priority: 8 is outside 0..7"},
		{"sched policy", func(p *specs.Process, s *specs.Spec) { p.Scheduler = &specs.Scheduler{Policy: "SCHED_ISO"} }, "process.scheduler.policy"},
		{"sched prio", func(p *specs.Process, s *specs.Spec) {
			p.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO, Priority: 100}
		}, "process.scheduler.priority: 100 is outside 1..99"},
		{"sched nice", func(p *specs.Process, s *specs.Spec) {
			p.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Nice: 20}
		}, "process.scheduler.nice"},
		{"sched flag", func(p *specs.Process, s *specs.Spec) {
			p.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{"SCHED_FLAG_X"}}
		}, "process.scheduler.flags[0]"},
		{"personality", func(p *specs.Process, s *specs.Spec) {
			s.Linux = &specs.Linux{Personality: &specs.LinuxPersonality{Domain: "OSF"}}
		}, "linux.personality.domain"},
		{"seccomp notify", func(p *specs.Process, s *specs.Spec) {
			s.Linux = &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/x.sock"}}
		}, "linux.seccomp: listenerPath"},
		{"seccomp flag", func(p *specs.Process, s *specs.Spec) {
			s.Linux = &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"}}}
		}, "linux.seccomp: flags[0]"},
		{"seccomp syscall", func(p *specs.Process, s *specs.Spec) {
			s.Linux = &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
				Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: "SCMP_ACT_BOGUS"}}}}
		}, "linux.seccomp: syscalls[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, s := goodProcess(), &specs.Spec{}
			c.edit(p, s)
			_, err := Prepare(p, s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Prepare: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestPrepareAppArmor(t *testing.T) {
	p := goodProcess()
	p.ApparmorProfile = "containers-default"
	_, err := Prepare(p, nil)
	if appArmorEnabled() {
		if err != nil {
			t.Fatalf("AppArmor is enabled, yet: %v", err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "process.apparmorProfile") {
		t.Fatalf("AppArmor is off and the profile was accepted: %v", err)
	}
}

func TestLookPath(t *testing.T) {
	if _, err := lookPath("sh", []string{"PATH=/nonexistent:/bin"}); err != nil {
		t.Fatal(err)
	}
	_, err := lookPath("no-such-program", []string{"PATH=/bin"})
	var ee *ExecError
	if !errorsAs(err, &ee) || ee.Code != 127 || !strings.Contains(err.Error(), `process.args[0]: "no-such-program"`) {
		t.Fatalf("missing program: %v", err)
	}
	_, err = lookPath("/etc/passwd", nil)
	if !errorsAs(err, &ee) || ee.Code != 126 {
		t.Fatalf("not executable: %v", err)
	}
}

func errorsAs(err error, target **ExecError) bool {
	e, ok := err.(*ExecError)
	if ok {
		*target = e
	}
	return ok
}

func TestHome(t *testing.T) {
	if h := home(0); h != "/root" {
		t.Errorf("home(0) = %q, want /root (this host's /etc/passwd)", h)
	}
	if h := home(4000000000); h != "/" {
		t.Errorf("home of an unknown uid = %q, want /", h)
	}
	if !hasEnv([]string{"A=1", "HOME=/x"}, "HOME") || hasEnv([]string{"HOMER=1"}, "HOME") {
		t.Error("hasEnv")
	}
}

// TestUnavailableCaps: a capset refused for capabilities the runtime does
// not hold names them.
func TestUnavailableCaps(t *testing.T) {
	last, err := confine.LastCap()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var prm uint64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapPrm:\t"); ok {
			prm, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	var all []int
	missing := -1
	for n := 0; n <= last; n++ {
		all = append(all, n)
		if prm&(1<<uint(n)) == 0 && missing < 0 {
			missing = n
		}
	}
	got := unavailableCaps(CapSets{Permitted: all}, last)
	if missing < 0 {
		if got != "" {
			t.Fatalf("every capability is held, yet %q", got)
		}
		return
	}
	if !strings.Contains(got, "not available to the runtime: "+confine.CapName(missing)) {
		t.Fatalf("%q does not name %s", got, confine.CapName(missing))
	}
}
