package spec

import (
	"fmt"
	"strings"
	"testing"
	"time"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/idmap"
	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/netns"
	"sandbox/netns/driver"
	"sandbox/rootfs"
)

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
	s.Log = journal.NewLogger(&strings.Builder{}, journal.LogText, "sandbox", false, s.Start)
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
		Warning: "no /etc/subuid entry for u; mapping only your own uid and gid"})
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
	lg.Warn("parent warns")
	lg.Fallback("cgroup", "none", "because")
	base := journal.MonoNow()
	lg.Step("parent two")
	r.InitShare = &wire.InitReport{
		Steps:    []wire.TimedStep{{At: base - 1000, Msg: "init one"}, {At: base + 2e6, Msg: "init two"}},
		Warnings: []string{"init warns"}, Fallbacks: []wire.Fallback{{Area: "root", Taken: "MS_MOVE+chroot", Why: "initramfs"}},
		Enter: "MS_MOVE+chroot", Started: base + 3e6,
	}
	r.Exited(&wire.ChildExit{Code: 3})
	r.Finish(lg, 3, nil)

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
	if r.Exit.Cause != journal.CauseExited || r.Exit.Code == nil || *r.Exit.Code != 3 || r.Error != nil {
		t.Errorf("exit %+v, error %+v", r.Exit, r.Error)
	}

	// An init that failed: its share comes with the error.
	r = newReport(opts, cfg, s)
	r.Finish(lg, wire.StatusError, &wire.ChildFailure{E: wire.ChildError{Step: "building the root filesystem", Msg: "m", Status: wire.StatusError,
		Init: &wire.InitReport{Steps: []wire.TimedStep{{At: base, Msg: "init up to the failure"}}}}})
	if r.Error == nil || r.Error.Step != "building the root filesystem" || r.StartupMS != nil ||
		!strings.Contains(fmt.Sprint(r.Steps), "init up to the failure") {
		t.Errorf("failed init: error %+v, startup %v, steps %+v", r.Error, r.StartupMS, r.Steps)
	}
}

func TestOverlaysUsed(t *testing.T) {
	k, f := fuseoverlay.Kernel, fuseoverlay.Fuse
	for _, c := range []struct {
		planned string
		used    []rootfs.OverlayUse
		built   bool
		want    string
		fuse    int
	}{
		{"none", nil, true, "none", 0},
		// --read-only plans an overlay it may skip: none mounted is none
		// (before, the planned "kernel" stayed).
		{"kernel", nil, true, "none", 0},
		{"kernel", nil, false, "kernel", 0}, // init failed before its root: the plan
		{"none", []rootfs.OverlayUse{{Target: "/etc", Driver: k}}, true, "kernel", 0},
		{"none", []rootfs.OverlayUse{{Target: "/etc", Driver: f}, {Target: "/usr", Driver: f}}, true, "fuse", 2},
		{"none", []rootfs.OverlayUse{{Target: "/etc", Driver: k}, {Target: "/mnt/nfs", Driver: f}}, true, "mixed", 1},
	} {
		r := &journal.RootReport{OverlayDriver: c.planned, FuseMounts: []string{}}
		r.OverlaysUsed(c.used, c.built)
		if r.OverlayDriver != c.want || len(r.FuseMounts) != c.fuse {
			t.Errorf("%s, %v, built %v: overlay_driver %q fuse_mounts %v, want %q with %d", c.planned, c.used, c.built, r.OverlayDriver, r.FuseMounts, c.want, c.fuse)
		}
	}
}
