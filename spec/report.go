package spec

import (
	"fmt"

	"sandbox/cgroupdelegate"
	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/idmap"
	"sandbox/journal"
	"sandbox/netns"
	"sandbox/netns/egress"
	"sandbox/rootfs"
)

// newReport fills in what Prepare decided.
func newReport(opts Options, cfg rootfs.Config, s *Spec) *journal.Report {
	r := &journal.Report{
		Version: journal.ReportVersion, Name: s.Name, Hostname: s.Hostname, Command: s.Args,
		Identity: identityReport(opts, s.Maps),
		Root: &journal.RootReport{
			Source: "host", Rootfs: cfg.Rootfs, Layers: journal.OrEmpty(cfg.Layers), Upper: cfg.Upper, ReadOnly: cfg.ReadOnly,
			OverlayDriver: "none", FuseMounts: []string{}, Cwd: cfg.Cwd, CwdMode: string(cfg.CwdMode), Chdir: s.Plan.Chdir,
			MountSteps: len(s.Plan.Steps), ProcUnmasked: cfg.UnmaskProc,
		},
		Network:    networkReport(opts, s),
		LimitsMode: "strict",
	}
	if cfg.Rootfs != "" {
		r.Root.Source = "rootfs"
	}
	r.Root.Ephemeral = &journal.EphemeralReport{Place: EphemeralMemory, SizeBytes: s.Plan.Ephemeral.Size, Inodes: s.Plan.Ephemeral.Inodes}
	if s.EphemeralBase != "" {
		r.Root.Ephemeral.Place = EphemeralDisk
	} else {
		r.Root.Ephemeral.Size = cgroupdelegate.FormatSize(s.Plan.Ephemeral.Size)
	}
	for _, st := range append([]rootfs.Step{s.Plan.Root}, s.Plan.Steps...) {
		if st.Op == rootfs.OpOverlay {
			// auto: kernel, with each mount fuse-overlayfs stood in for
			// among the fallbacks.
			r.Root.OverlayDriver = "kernel"
			if s.Plan.Overlay.Driver == fuseoverlay.Fuse {
				r.Root.OverlayDriver = "fuse"
			}
		}
	}
	if s.Resources.BestEffort {
		r.LimitsMode = "best-effort"
	}
	r.CgroupPart()
	return r
}

func identityReport(opts Options, m idmap.Prepared) *journal.IdentityReport {
	id := &journal.IdentityReport{Requested: orDefault(opts.Map, "auto"), UID: opts.UID, GID: opts.GID, Via: "direct",
		UIDMap: mapLines(m.UIDs), GIDMap: mapLines(m.GIDs), Mode: "single"}
	if m.ViaHelpers {
		id.Via = "newuidmap"
	}
	if len(m.UIDs) > 1 || len(m.UIDs) == 1 && m.UIDs[0].Count > 1 {
		id.Mode = "full"
	}
	switch {
	case m.Warning != "":
		id.Why = m.Warning
	case id.Requested == "single":
		id.Why = "--map=single"
	case m.ViaHelpers:
		id.Why = "your /etc/subuid and /etc/subgid ranges, written by newuidmap and newgidmap"
	default:
		id.Why = "run by root: the maps are written directly"
	}
	return id
}

func mapLines(ms []idmap.Mapping) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d %d %d", m.Inside, m.Outside, m.Count))
	}
	return out
}

func networkReport(opts Options, s *Spec) *journal.NetworkReport {
	n := &journal.NetworkReport{Requested: orDefault(opts.Net, "auto"), Driver: string(s.NetMode), Published: []string{}}
	if s.Net == nil {
		return n
	}
	n.Interface, n.SandboxIP, n.PrefixLen, n.Gateway = netns.TapName, netns.SandboxIP, netns.PrefixLen, netns.GatewayIP
	n.DNS, n.MTU = s.Net.Nameserver(), netns.MTU
	n.AllowHostLoopback, n.AllowLinkLocal = s.Net.AllowHostLoopback, s.Net.AllowLinkLocal
	if p := s.Net.Policy; p != nil {
		n.Policy = &egress.Policy{AllowHost: journal.OrEmpty(p.AllowHost), AllowCIDR: journal.OrEmpty(p.AllowCIDR),
			DenyHost: journal.OrEmpty(p.DenyHost), DNS: p.DNS}
		n.Blocked = &egress.Blocked{Records: []egress.Record{}, Targets: []egress.TargetCount{}} // filled in at the end
	}
	for _, p := range s.Net.Publish {
		n.Published = append(n.Published, p.String())
	}
	return n
}

// EnsureReport returns s's ensureReport, made empty for a Spec not made by Prepare.
func (s *Spec) EnsureReport() *journal.Report {
	if s.Report == nil {
		s.Report = &journal.Report{Version: journal.ReportVersion, Name: s.Name, Hostname: s.Hostname, Command: s.Args}
	}
	return s.Report
}

// EnsureLog returns s's ensureLog, made for a Spec not made by Prepare.
func (s *Spec) EnsureLog() *journal.Logger {
	if s.Log == nil {
		s.Log = journal.DefaultLogger(s.Verbose, s.Start)
	}
	return s.Log
}
