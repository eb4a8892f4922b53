package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandbox/cgroupdelegate"
	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/idmap"
	"sandbox/netns"
	"sandbox/netns/driver"
	"sandbox/rootfs"

	"github.com/moby/sys/mountinfo"
)

func TestExitReport(t *testing.T) {
	code := func(n int) *int { return &n }
	childErr := &childFailure{childError{Step: "", Msg: "x: command not found", Status: StatusNotFound}}
	for _, c := range []struct {
		name   string
		status int
		ex     *childExit
		err    error
		ooms   int64
		want   ExitReport
	}{
		{"exit 0", 0, &childExit{Code: 0}, nil, 0, ExitReport{Status: 0, Cause: CauseExited, Code: code(0)}},
		{"exit 3", 3, &childExit{Code: 3}, nil, 0, ExitReport{Status: 3, Cause: CauseExited, Code: code(3)}},
		{"exit 137 by itself", 137, &childExit{Code: 137}, nil, 0, ExitReport{Status: 137, Cause: CauseExited, Code: code(137)}},
		{"SIGTERM", 143, &childExit{Signal: 15}, nil, 0, ExitReport{Status: 143, Cause: CauseSignaled, Signal: 15, SignalName: "SIGTERM"}},
		{"SIGKILL, no OOM", 137, &childExit{Signal: 9}, nil, 0, ExitReport{Status: 137, Cause: CauseSignaled, Signal: 9, SignalName: "SIGKILL"}},
		{"OOM-killed command", 137, &childExit{Signal: 9}, nil, 1, ExitReport{Status: 137, Cause: CauseOOMKilled, Signal: 9, SignalName: "SIGKILL", OOMKills: 1}},
		{"OOM-killed init", 137, nil, errors.New("killed by the OOM killer"), 2, ExitReport{Status: 137, Cause: CauseOOMKilled, Signal: 9, SignalName: "SIGKILL", OOMKills: 2}},
		{"OOM elsewhere, command exits", 0, &childExit{Code: 0}, nil, 1, ExitReport{Status: 0, Cause: CauseExited, Code: code(0), OOMKills: 1}},
		{"not found", 127, nil, childErr, 0, ExitReport{Status: 127, Cause: CauseNotFound}},
		{"not executable", 126, nil, &childFailure{childError{Msg: "x: not executable", Status: 126}}, 0, ExitReport{Status: 126, Cause: CauseNotExecutable}},
		{"sandbox error", 125, nil, errors.New("boom"), 0, ExitReport{Status: 125, Cause: CauseSandboxError}},
	} {
		got := exitReport(c.status, c.ex, c.err, c.ooms)
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(c.want)
		if string(g) != string(w) {
			t.Errorf("%s: %s, want %s", c.name, g, w)
		}
	}
}

func TestErrorReport(t *testing.T) {
	if errorReport(nil) != nil {
		t.Error("an error report without an error")
	}
	for _, c := range []struct {
		err  error
		want ErrorReport
	}{
		{&childFailure{childError{Step: "changing to the working directory", Msg: "/x: no such file or directory"}},
			ErrorReport{"changing to the working directory", "/x: no such file or directory"}},
		{&childFailure{childError{Msg: "x: command not found"}}, ErrorReport{"starting the command", "x: command not found"}},
		{atStep("writing the id maps", errors.New("writing the id maps: newuidmap failed")),
			ErrorReport{"writing the id maps", "writing the id maps: newuidmap failed"}},
		{fmt.Errorf("killed by the OOM killer (memory limit 64M) (%w)", atStep("running init", errors.New("init killed"))),
			ErrorReport{"running init", "killed by the OOM killer (memory limit 64M) (init killed)"}},
		{errors.New("plain"), ErrorReport{"running the sandbox", "plain"}},
	} {
		if got := errorReport(c.err); *got != c.want {
			t.Errorf("%v: %+v, want %+v", c.err, *got, c.want)
		}
	}
}

// testSpec is a Spec as Prepare makes it, without reading the host.
func testSpec(t *testing.T) (*Spec, Options, rootfs.Config) {
	t.Helper()
	opts := Options{Args: []string{"sh", "-c", "exit 3"}, Net: "auto", UID: 0, GID: 0}
	s := &Spec{Args: opts.Args, Hostname: "sandbox-abcdef", Start: time.Now(), NetMode: netns.Slirp4netns, NetNS: true,
		Net: &driver.Config{Mode: netns.Slirp4netns, Publish: []netns.Publish{{HostIP: "127.0.0.1", HostPort: 8080, SandboxPort: 80, Proto: "tcp"}}},
		Maps: idmap.Prepared{ViaHelpers: true,
			UIDs: []idmap.Mapping{{Inside: 0, Outside: 1001, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}},
			GIDs: []idmap.Mapping{{Inside: 0, Outside: 1001, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}}},
		Plan: &rootfs.Plan{Root: rootfs.Step{Op: rootfs.OpTmpfs}, Steps: []rootfs.Step{{Op: rootfs.OpOverlay}}, Chdir: "/work"},
	}
	s.Log = NewLogger(&strings.Builder{}, LogText, "sandbox", false, s.Start)
	cfg := rootfs.Config{Cwd: "/work", CwdMode: rootfs.CwdRW, Layers: nil}
	return s, opts, cfg
}

func TestReportFromSpec(t *testing.T) {
	s, opts, cfg := testSpec(t)
	r := newReport(opts, cfg, s)
	id := r.Identity
	if id.Mode != "full" || id.Via != "newuidmap" || id.Requested != "auto" || id.Why == "" ||
		strings.Join(id.UIDMap, ",") != "0 1001 1,1 100000 65536" {
		t.Errorf("identity %+v", *id)
	}
	if n := r.Network; n.Driver != "slirp4netns" || n.SandboxIP != netns.SandboxIP || n.Gateway != netns.GatewayIP ||
		n.DNS != netns.DNSIP || n.MTU != netns.MTU || len(n.Published) != 1 || n.Published[0] != "127.0.0.1:8080:80/tcp" {
		t.Errorf("network %+v", *n)
	}
	if root := r.Root; root.Source != "host" || root.OverlayDriver != "kernel" || root.Layers == nil || root.Cwd != "/work" {
		t.Errorf("root %+v", *root)
	}

	single := identityReport(Options{Map: "auto"}, idmap.Prepared{UIDs: []idmap.Mapping{{Inside: 0, Outside: 1001, Count: 1}},
		Warning: "sandbox: warning: no /etc/subuid entry for u; mapping only your own uid and gid"})
	if single.Mode != "single" || single.Via != "direct" || !strings.HasPrefix(single.Why, "no /etc/subuid entry") {
		t.Errorf("auto falling back to single: %+v", *single)
	}
}

// TestReportFinish: the parent's and init's steps on one timeline, init's
// warnings and fallbacks, start-up time, the payload's exit.
func TestReportFinish(t *testing.T) {
	s, opts, cfg := testSpec(t)
	r := newReport(opts, cfg, s)
	lg := s.Log
	lg.Step("parent one")
	lg.Warn("sandbox: warning: parent warns")
	lg.Fallback("cgroup", "none", "because")
	base := monoNow()
	lg.Step("parent two")
	r.init = &initReport{
		Steps:    []timedStep{{At: base - 1000, Msg: "init one"}, {At: base + 2e6, Msg: "init two"}},
		Warnings: []string{"init warns"}, Fallbacks: []Fallback{{"root", "MS_MOVE+chroot", "initramfs"}},
		Enter: "MS_MOVE+chroot", Started: base + 3e6,
	}
	r.exited(&childExit{Code: 3})
	r.finish(lg, 3, nil)

	var order []string
	prev := 0.0
	for _, st := range r.Steps {
		order = append(order, st.Stage+":"+st.Msg)
		if st.ElapsedMS < prev || st.StepMS < 0 || st.ElapsedMS <= 0 {
			t.Errorf("step %+v after %.3f", st, prev)
		}
		prev = st.ElapsedMS
	}
	if got := strings.Join(order, " "); got != "sandbox:parent one init:init one sandbox:parent two init:init two" {
		t.Errorf("steps in order %q", got)
	}
	if r.StartupMS == nil || *r.StartupMS < prev {
		t.Errorf("startup_ms %v, last step %.3f", r.StartupMS, prev)
	}
	if strings.Join(r.Warnings, "|") != "parent warns|init warns" || len(r.Fallbacks) != 2 || r.Root.Enter != "MS_MOVE+chroot" {
		t.Errorf("warnings %q, fallbacks %+v, enter %q", r.Warnings, r.Fallbacks, r.Root.Enter)
	}
	if r.Exit.Cause != CauseExited || r.Exit.Code == nil || *r.Exit.Code != 3 || r.Error != nil {
		t.Errorf("exit %+v, error %+v", r.Exit, r.Error)
	}

	// An init that failed: its share comes with the error.
	r = newReport(opts, cfg, s)
	r.finish(lg, StatusError, &childFailure{childError{Step: "building the root filesystem", Msg: "m", Status: StatusError,
		Init: &initReport{Steps: []timedStep{{At: base, Msg: "init up to the failure"}}}}})
	if r.Error == nil || r.Error.Step != "building the root filesystem" || r.StartupMS != nil ||
		!strings.Contains(fmt.Sprint(r.Steps), "init up to the failure") {
		t.Errorf("failed init: error %+v, startup %v, steps %+v", r.Error, r.StartupMS, r.Steps)
	}
}

// TestReportCgroupLimits: best-effort limits that cannot hold are reported
// skipped with why, the others applied.
func TestReportCgroupLimits(t *testing.T) {
	f := newFakeHost(t)
	f.cgroup("/", "pids")
	f.self = "/u"
	f.cgroup(f.self, "pids")
	f.v1 = []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", VFSOptions: "rw,memory"}}
	r := &Report{limitsMode: "best-effort"}
	h := f.host()
	h.rep = r
	cg, err := h.open(limits(t, true, cgroupdelegate.Flags{Memory: "64M", Pids: "10"}), "true", nolog)
	if err != nil || cg == nil {
		t.Fatalf("cgroup %v, %v", cg, err)
	}
	defer cg.f.Close()
	c := r.Cgroup
	if c == nil || c.LimitsMode != "best-effort" || len(c.Applied) != 1 || c.Applied[0] != (LimitReport{Flag: "--pids 10", File: "pids.max", Value: "10"}) {
		t.Fatalf("cgroup report %+v", c)
	}
	if len(c.Skipped) == 0 {
		t.Fatal("--memory not reported skipped")
	}
	for _, s := range c.Skipped {
		if s.Flag != "--memory 64M" || !strings.Contains(s.Why, "cgroup v1") {
			t.Errorf("skipped %+v", s)
		}
	}
	if b, err := os.ReadFile(filepath.Join(cg.dir, "pids.max")); err != nil || string(b) != "10" {
		t.Errorf("pids.max %q %v: the report says applied", b, err)
	}
}

func TestOpenReport(t *testing.T) {
	if o, err := OpenReport(""); o != nil || err != nil {
		t.Errorf("no --report: %v %v", o, err)
	}
	dir := t.TempDir()
	_, err := OpenReport(filepath.Join(dir, "missing", "r.json"))
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--report") {
		t.Errorf("unwritable path: %v, want a usage error naming --report", err)
	}
	if _, err := OpenReport(dir); !errors.As(err, &ue) {
		t.Errorf("a directory: %v", err)
	}
	p := filepath.Join(dir, "r.json")
	os.WriteFile(p, []byte(strings.Repeat("old ", 1000)), 0o644)
	o, err := OpenReport(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(PrepareFailed([]string{"true"}, usagef("--hostname: bad"))); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	var r Report
	if err := json.Unmarshal(b, &r); err != nil || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("not one JSON line (%v): %q", err, b)
	}
	if r.Exit.Status != StatusError || r.Exit.Cause != CauseSandboxError || r.Error == nil || r.Error.Msg != "--hostname: bad" ||
		r.Steps == nil || r.Warnings == nil || r.Fallbacks == nil {
		t.Errorf("refused run's report %s", b)
	}
}

func TestOverlaysUsed(t *testing.T) {
	k, f := fuseoverlay.Kernel, fuseoverlay.Fuse
	for _, c := range []struct {
		used []rootfs.OverlayUse
		want string
		fuse int
	}{
		{nil, "none", 0},
		{[]rootfs.OverlayUse{{Target: "/etc", Driver: k}}, "kernel", 0},
		{[]rootfs.OverlayUse{{Target: "/etc", Driver: f}, {Target: "/usr", Driver: f}}, "fuse", 2},
		{[]rootfs.OverlayUse{{Target: "/etc", Driver: k}, {Target: "/mnt/nfs", Driver: f}}, "mixed", 1},
	} {
		r := &RootReport{OverlayDriver: "none", FuseMounts: []string{}}
		r.overlaysUsed(c.used)
		if r.OverlayDriver != c.want || len(r.FuseMounts) != c.fuse {
			t.Errorf("%v: overlay_driver %q fuse_mounts %v, want %q with %d", c.used, r.OverlayDriver, r.FuseMounts, c.want, c.fuse)
		}
	}
}
