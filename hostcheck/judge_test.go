package hostcheck

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"sandbox/idmap"
)

func rng(file string, line int, start, count uint32) idmap.Range {
	return idmap.Range{Start: start, Count: count, File: file, Line: line}
}

// good is a host where everything works, for alice (uid 1000, gid 1001).
func good() Facts {
	return Facts{
		User: "alice", UID: 1000, GID: 1001, Exe: "/usr/local/bin/sandbox", Kernel: "6.18.44-fc", MaxUserNS: "15000",
		NS: NSProbe{},
		Subuid: SubidFacts{File: "/etc/subuid", Own: []idmap.Range{rng("/etc/subuid", 1, 100000, 65536)},
			Others: []OwnedRange{{Owner: "bob", Range: rng("/etc/subuid", 2, 165536, 65536)}}},
		Subgid:        SubidFacts{File: "/etc/subgid", Own: []idmap.Range{rng("/etc/subgid", 1, 100000, 65536)}},
		Newuidmap:     HelperFacts{Name: "newuidmap", Path: "/usr/bin/newuidmap", Setuid: true},
		Newgidmap:     HelperFacts{Name: "newgidmap", Path: "/usr/bin/newgidmap", Setuid: true},
		FuseOverlayfs: "/usr/bin/fuse-overlayfs",
		Tun:           DevAccess{Path: "/dev/net/tun", Exists: true, Mode: 0o666},
		Fuse:          DevAccess{Path: "/dev/fuse", Exists: true, Mode: 0o666},
		RootFSType:    "ext4", LandlockABI: 7, Seccomp: true,
		Cgroup: CgroupFacts{
			Mount: "/sys/fs/cgroup", Base: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/vmtest.scope",
			Delegated: true, Root: []string{"cpuset", "cpu", "io", "memory", "pids"}, Available: []string{"cpu", "io", "memory", "pids"},
			UserBus: "unix:path=/run/user/1000/bus", Systemd: "252",
		},
		NetDrivers: []NetDriver{{Name: "slirp4netns", Err: nil}, {Name: "pasta", Err: nil}, {Name: "builtin", Err: nil}},
	}
}

// undelegatedUserScope: a terminal tab's scope of the user manager, seen
// with Debian 12's stock delegation (no io), the root cgroup having io.
func undelegatedUserScope(f *Facts) {
	c := &f.Cgroup
	c.Base = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope"
	c.Delegated, c.Why = false, "your cgroup "+c.Base+" is in vte-spawn-1.scope, which your user manager owns but does not delegate (Delegate=no: systemd still manages it)"
	c.Root, c.Available = []string{"cpuset", "cpu", "io", "memory", "pids"}, []string{"cpu", "io", "memory", "pids"}
	c.Manager, c.ScopeControllers = "/user.slice/user-1000.slice/user@1000.service", []string{"cpu", "memory", "pids"}
}

func find(t *testing.T, rs []Result, id string) Result {
	t.Helper()
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no %q result in %+v", id, rs)
	return Result{}
}

func TestHealthyHost(t *testing.T) {
	rs := Judge(good())
	seen := map[string]bool{}
	for _, r := range rs {
		if r.Status != OK {
			t.Errorf("%s: %s %s", r.ID, r.Status, r.Message)
		}
		if seen[r.ID] {
			t.Errorf("id %q appears twice", r.ID)
		}
		seen[r.ID] = true
	}
	for _, id := range []string{"kernel", "userns.max", "userns", "subuid", "subgid", "newuidmap", "newgidmap", "overlayfs",
		"fuse-overlayfs", "pivot_root", "tun", "fuse", "net.slirp4netns", "net.auto", "net.egress", "seccomp", "landlock",
		"cgroup.v2", "cgroup.delegation", "cgroup.controllers", "systemd.bus", "tiocsti", "run"} {
		if !seen[id] {
			t.Errorf("no %q line", id)
		}
	}
	for _, id := range []string{"userns.clone", "userns.apparmor"} {
		if seen[id] {
			t.Errorf("%q is shown though the kernel has no such sysctl", id)
		}
	}
	if Failed(rs) {
		t.Error("healthy host reported as failed")
	}
	if s := Summary(rs); !strings.Contains(s, "0 WARN, 0 FAIL") || !strings.Contains(s, "works with its defaults here") {
		t.Errorf("summary: %s", s)
	}
}

var (
	errEPERM  = fmt.Errorf("making the mounts private: %w", syscall.EPERM)
	errEINVAL = fmt.Errorf("pivot_root: %w", syscall.EINVAL)
)

func TestShapes(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Facts)
		id     string
		level  Level
		blocks bool
		inMsg  string
		inFix  string
	}{
		// kernel
		{"too old kernel", func(f *Facts) { f.Kernel = "5.4.0-150-generic" }, "kernel", Fail, true, "older than 5.10", "upgrade the kernel to 5.10"},
		{"old kernel", func(f *Facts) { f.Kernel = "5.10.0-21-amd64" }, "kernel", Warn, false, "every overlay is fuse-overlayfs", "5.11"},
		{"5.11 kernel", func(f *Facts) { f.Kernel = "5.11.22" }, "kernel", OK, false, "bind remounts", ""},
		{"rc kernel", func(f *Facts) { f.Kernel = "5.11-rc1" }, "kernel", OK, false, "5.11-rc1", ""},
		{"odd kernel", func(f *Facts) { f.Kernel = "linux" }, "kernel", Warn, false, "cannot read", "uname -r"},

		// user-namespace sysctls and the probe
		{"userns off", func(f *Facts) { f.MaxUserNS, f.NS = "0", NSProbe{UserNS: syscall.ENOSPC} }, "userns.max", Fail, true, "=0", "sysctl -w user.max_user_namespaces=15000"},
		{"max unreadable, probe ok", func(f *Facts) { f.MaxUserNS = "" }, "userns.max", OK, false, "created a user namespace anyway", ""},
		{"max unreadable, probe fails", func(f *Facts) { f.MaxUserNS, f.NS = "", NSProbe{UserNS: syscall.EPERM} }, "userns.max", Warn, false, "unreadable", "CONFIG_USER_NS"},
		{"debian clone 0", func(f *Facts) { f.UnprivUserNSClone, f.NS = "0", NSProbe{UserNS: syscall.EPERM} }, "userns.clone", Fail, true, "only root", "sysctl -w kernel.unprivileged_userns_clone=1"},
		{"debian clone 1", func(f *Facts) { f.UnprivUserNSClone = "1" }, "userns.clone", OK, false, "=1", ""},
		{"ubuntu restricted, no caps", func(f *Facts) { f.AppArmorRestrict, f.NS = "1", NSProbe{Caps: errEPERM} }, "userns.apparmor", Fail, true,
			"no capabilities", "profile sandbox /usr/local/bin/sandbox flags=(unconfined)"},
		{"ubuntu restricted, no userns", func(f *Facts) { f.AppArmorRestrict, f.NS = "1", NSProbe{UserNS: syscall.EPERM} }, "userns.apparmor", Fail, true,
			"operation not permitted", "apparmor_restrict_unprivileged_userns=0"},
		{"ubuntu restricted, profile allows", func(f *Facts) { f.AppArmorRestrict = "1" }, "userns.apparmor", Warn, false,
			"keep their capabilities", "/usr/local/bin/sandbox"},
		{"ubuntu unrestricted", func(f *Facts) { f.AppArmorRestrict = "0" }, "userns.apparmor", OK, false, "=0", ""},
		{"probe: no userns, explained", func(f *Facts) { f.MaxUserNS, f.NS = "0", NSProbe{UserNS: syscall.ENOSPC} }, "userns", Fail, true,
			"probe: no space left on device", "userns.* lines above"},
		{"probe: no userns, nested", func(f *Facts) { f.NS = NSProbe{UserNS: syscall.EPERM} }, "userns", Fail, true,
			"operation not permitted", "--allow-nested-userns"},
		{"probe not run", func(f *Facts) {
			f.NS = NSProbe{UserNS: fmt.Errorf("%w: making its directory: read-only file system", ErrNotProbed)}
		}, "userns", Warn, false,
			"not probed: making its directory", "TMPDIR"},
		{"ubuntu restricted, not probed", func(f *Facts) { f.AppArmorRestrict, f.NS = "1", NSProbe{UserNS: ErrNotProbed} }, "userns.apparmor", Warn, false,
			"unknown", "apparmor_parser"},
		{"probe: no caps, apparmor", func(f *Facts) { f.AppArmorRestrict, f.NS = "1", NSProbe{Caps: errEPERM} }, "userns", Fail, true,
			"cannot use its capabilities", "userns.apparmor"},
		{"probe: no caps, seccomp", func(f *Facts) { f.NS = NSProbe{Caps: errEPERM} }, "userns", Fail, true,
			"making the mounts private", "--seccomp=unconfined"},

		// overlayfs, fuse-overlayfs, pivot_root
		{"overlay not probed", func(f *Facts) { f.NS = NSProbe{UserNS: syscall.EPERM, Overlay: ErrNotProbed} }, "overlayfs", Warn, false, "not probed", "userns"},
		{"overlay ENODEV", func(f *Facts) { f.NS.Overlay = fmt.Errorf("mounting overlay: %w", syscall.ENODEV) }, "overlayfs", Fail, true, "failed", "modprobe overlay"},
		{"overlay EINVAL", func(f *Facts) { f.NS.Overlay = fmt.Errorf("mounting overlay: %w", syscall.EINVAL) }, "overlayfs", Fail, true, "invalid argument", "5.11"},
		{"overlay EPERM", func(f *Facts) { f.NS.Overlay = fmt.Errorf("mounting overlay: %w", syscall.EPERM) }, "overlayfs", Fail, true, "not permitted", "LSM"},
		{"overlay EPERM before 5.11", func(f *Facts) {
			f.Kernel, f.NS.Overlay = "5.10.0-32-amd64", fmt.Errorf("mounting overlay: %w", syscall.EPERM)
		}, "overlayfs", Fail, false, "older than 5.11", "5.11 or later"},
		{"overlay EPERM before 5.11, no fuse-overlayfs", func(f *Facts) {
			f.Kernel, f.FuseOverlayfs, f.NS.Overlay = "5.10.0-32-amd64", "", fmt.Errorf("mounting overlay: %w", syscall.EPERM)
		}, "overlayfs", Fail, true, "cannot stand in", "install fuse-overlayfs"},
		{"overlay copy-up", func(f *Facts) { f.NS.Overlay = errors.New("copy-up: the upper layer has \"\"") }, "overlayfs", Fail, true, "copy-up", "dmesg"},
		{"no fuse-overlayfs", func(f *Facts) { f.FuseOverlayfs = "" }, "fuse-overlayfs", Warn, false, "not installed", "apt-get install fuse-overlayfs"},
		{"fuse-overlayfs, closed /dev/fuse", func(f *Facts) { f.Fuse.Mode, f.Fuse.Err = 0o600, syscall.EACCES }, "fuse-overlayfs", Warn, false,
			"--overlay=fuse cannot work", "chmod 0666 /dev/fuse"},
		{"fuse-overlayfs usable", func(f *Facts) {}, "fuse-overlayfs", OK, false, "--overlay=fuse works", ""},
		{"pivot EINVAL", func(f *Facts) { f.NS.Pivot, f.RootFSType = errEINVAL, "rootfs" }, "pivot_root", Warn, false, "MS_MOVE+chroot", "switch_root"},
		{"pivot fails", func(f *Facts) { f.NS.Pivot = fmt.Errorf("pivot_root: %w", syscall.EPERM) }, "pivot_root", Fail, true, "not permitted", "dmesg"},
		{"pivot unprobed, initramfs", func(f *Facts) { f.NS, f.RootFSType = NSProbe{Caps: errEPERM, Pivot: ErrNotProbed}, "rootfs" }, "pivot_root", Warn, false,
			"initramfs", "switch_root"},
		{"pivot unprobed", func(f *Facts) { f.NS = NSProbe{UserNS: syscall.EPERM, Pivot: ErrNotProbed} }, "pivot_root", Warn, false, "/ is ext4", "userns"},

		// subordinate ids
		{"root", func(f *Facts) { f.UID, f.Subuid.Own = 0, nil }, "subuid", OK, false, "root writes its maps itself; no entry in /etc/subuid, so ids 1000000000-1000065535", ""},
		{"root with an entry", func(f *Facts) { f.UID = 0 }, "subgid", OK, false, "root writes its maps itself, with 100000:65536 from /etc/subgid", ""},
		{"malformed entry", func(f *Facts) {
			f.Subuid.FileErr = errors.New("/etc/subuid line 3 \"alice:x:1\": start \"x\" is not a decimal number")
		},
			"subuid", Fail, true, "line 3", "alice:START:COUNT"},
		{"no entry, no getsubids", func(f *Facts) { f.Subuid.Own = nil }, "subuid", Warn, false,
			"no entry for alice or uid 1000 in /etc/subuid (getsubids is not installed", "sudo usermod --add-subuids 100000-165535 alice"},
		{"no entry anywhere", func(f *Facts) {
			f.Subgid.Own, f.Subgid.Getsubids, f.Subgid.NSSErr = nil, true, errors.New("`getsubids -g alice`: context deadline exceeded")
		}, "subgid", Warn, false, "nor from getsubids (`getsubids -g alice`: context deadline exceeded)", "--add-subgids 100000-165535 alice"},
		{"entry from getsubids only", func(f *Facts) {
			f.Subuid.Own, f.Subuid.Getsubids, f.Subuid.NSS = nil, true, []idmap.Range{rng("getsubids", 1, 300000, 65536)}
		}, "subuid", OK, false, "300000:65536 from getsubids; none in /etc/subuid", ""},
		{"getsubids agrees", func(f *Facts) { f.Subuid.Getsubids, f.Subuid.NSS = true, f.Subuid.Own }, "subuid", OK, false, "getsubids agrees", ""},
		{"range has own uid", func(f *Facts) { f.Subuid.Own = []idmap.Range{rng("/etc/subuid", 4, 0, 65536)} }, "subuid", Fail, true,
			"0:65536 (/etc/subuid line 4) contains your own uid 1000", "--del-subuids 0-65535 --add-subuids 100000-165535 alice"},
		{"range has own gid", func(f *Facts) { f.Subgid.Own = []idmap.Range{rng("/etc/subgid", 2, 1001, 65536)} }, "subgid", Fail, true,
			"contains your own gid 1001", "--del-subgids 1001-66536"},
		{"overlaps another user", func(f *Facts) { f.Subuid.Own = []idmap.Range{rng("/etc/subuid", 1, 150000, 65536)} }, "subuid", Warn, false,
			"150000:65536 (/etc/subuid line 1) overlaps bob's 165536:65536 (/etc/subuid line 2)", "--del-subuids 150000-215535 --add-subuids 100000-165535 alice"},
		{"file and getsubids differ", func(f *Facts) {
			f.Subuid.Getsubids, f.Subuid.NSS = true, []idmap.Range{rng("getsubids", 1, 500000, 65536)}
		}, "subuid", Warn, false, "/etc/subuid gives 100000:65536 but getsubids (the subid provider newuidmap asks) gives 500000:65536", "nsswitch.conf"},
		{"getsubids has none", func(f *Facts) { f.Subgid.Getsubids = true }, "subgid", Warn, false, "getsubids (the subid provider newuidmap asks) gives nothing", "nsswitch"},
		{"65535 ids map every id up to 65535", func(f *Facts) { f.Subgid.Own = []idmap.Range{rng("/etc/subgid", 1, 100000, 65535)} }, "subgid", OK, false,
			"", ""},
		{"small range", func(f *Facts) { f.Subgid.Own = []idmap.Range{rng("/etc/subgid", 1, 100000, 1000)} }, "subgid", Warn, false,
			"only 1000 ids (100000:1000): ids above 1000 are unmapped", "--del-subgids 100000-100999 --add-subgids 100000-165535 alice"},
		{"small ranges", func(f *Facts) {
			f.Subgid.Own = []idmap.Range{rng("/etc/subgid", 1, 100000, 1000), rng("/etc/subgid", 2, 200000, 1000)}
		}, "subgid", Warn, false, "only 2000 ids", "sudo usermod --add-subgids 100000-165535 alice"},
		{"small range from getsubids", func(f *Facts) {
			f.Subgid.Own, f.Subgid.Getsubids, f.Subgid.NSS = nil, true, []idmap.Range{rng("getsubids", 1, 100000, 4096)}
		}, "subgid", Warn, false, "only 4096 ids", "subid provider"},
		{"overlap and small", func(f *Facts) {
			f.Subuid.Own = []idmap.Range{rng("/etc/subuid", 3, 0, 2000), rng("/etc/subuid", 4, 170000, 100)}
		}, "subuid", Fail, true, "twice); 170000:100 (/etc/subuid line 4) overlaps bob's", "--del-subuids 170000-170099"},

		// id-map helpers
		{"helpers as root", func(f *Facts) { f.UID, f.Newuidmap = 0, HelperFacts{Name: "newuidmap"} }, "newuidmap", OK, false, "not needed", ""},
		{"helper missing", func(f *Facts) { f.Newgidmap = HelperFacts{Name: "newgidmap"} }, "newgidmap", Warn, false, "not installed", "apt-get install uidmap"},
		{"helper not setuid", func(f *Facts) {
			f.Newuidmap = HelperFacts{Name: "newuidmap", Path: "/usr/bin/newuidmap", Err: &idmap.HelperError{
				Problem: "/usr/bin/newuidmap is neither setuid root nor has the cap_setuid file capability", Fix: "`chmod u+s /usr/bin/newuidmap` or `setcap cap_setuid+ep /usr/bin/newuidmap`"}}
		}, "newuidmap", Fail, false, "falls back to mapping only your own uid", "setcap cap_setuid+ep /usr/bin/newuidmap`; or reinstall it: sudo apt-get install --reinstall uidmap"},
		{"helper with caps on nosuid", func(f *Facts) {
			f.Newgidmap = HelperFacts{Name: "newgidmap", Path: "/usr/bin/newgidmap", FileCaps: true, Err: &idmap.HelperError{
				Problem: "/usr/bin/newgidmap is on a filesystem mounted nosuid", Fix: "remount that filesystem without nosuid"}}
		}, "newgidmap", Fail, false, "nosuid", "remount"},
		{"helper with caps", func(f *Facts) { f.Newgidmap.Setuid, f.Newgidmap.FileCaps = false, true }, "newgidmap", OK, false, "file capabilities", ""},
		{"helper plain error", func(f *Facts) { f.Newgidmap.Err = errors.New("odd") }, "newgidmap", Fail, false, "odd", "--reinstall uidmap"},

		// devices
		{"tun 0600", func(f *Facts) { f.Tun.Mode, f.Tun.Err = 0o600, syscall.EACCES }, "tun", Warn, false,
			"mode 0600 (owner uid 0): you cannot open it (permission denied); every user-mode network driver", "sudo chmod 0666 /dev/net/tun"},
		{"fuse 0600", func(f *Facts) { f.Fuse.Mode, f.Fuse.Err = 0o600, syscall.EACCES }, "fuse", Warn, false, "mode 0600", "sudo chmod 0666 /dev/fuse"},
		{"fuse missing", func(f *Facts) { f.Fuse = DevAccess{Path: "/dev/fuse"} }, "fuse", Warn, false, "does not exist", "modprobe fuse"},
		{"tun no module", func(f *Facts) { f.Tun.Err = syscall.ENODEV }, "tun", Warn, false, "cannot be opened", "modprobe tun"},

		// confinement
		{"no seccomp", func(f *Facts) { f.Seccomp = false }, "seccomp", Fail, true, "cannot be installed", "--seccomp=unconfined"},
		{"arm64", func(f *Facts) { f.Arch = "arm64" }, "arch", OK, false, "arm64: run's seccomp filters compile for it", ""},
		{"arch unsupported", func(f *Facts) { f.Arch = "mips64le" }, "arch", Fail, true,
			"mips64le: no system-call tables for this architecture, so run's default seccomp filter cannot be built (supported: amd64, 386, arm64, arm, riscv64, ppc64le, ppc64, s390x, loong64)",
			"run with --seccomp=unconfined (no system-call filter: "},
		{"no landlock", func(f *Facts) { f.LandlockABI = 0 }, "landlock", Warn, false, "--landlock", "CONFIG_SECURITY_LANDLOCK"},
		{"tiocsti off", func(f *Facts) { f.LegacyTIOCSTI = "0" }, "tiocsti", OK, false, "legacy_tiocsti=0", ""},
		{"tiocsti on", func(f *Facts) { f.LegacyTIOCSTI = "1" }, "tiocsti", OK, false, "legacy_tiocsti=1", ""},

		// cgroups and the user bus
		{"no cgroup2", func(f *Facts) { f.Cgroup = CgroupFacts{} }, "cgroup.v2", Warn, false, "not mounted", "unified_cgroup_hierarchy=1"},
		{"no cgroup2: bus line", func(f *Facts) { f.Cgroup = CgroupFacts{} }, "systemd.bus", Warn, false, "no systemd user bus", "enable-linger alice"},
		{"hybrid", func(f *Facts) {
			f.Cgroup.Mount, f.Cgroup.V1 = "/sys/fs/cgroup/unified", map[string]string{"memory": "/sys/fs/cgroup/memory"}
		}, "cgroup.v2", Warn, false, "hybrid", "cgroup_no_v1=all"},
		{"hybrid controllers", func(f *Facts) {
			f.Cgroup.V1, f.Cgroup.Root, f.Cgroup.Available = map[string]string{"memory": "/sys/fs/cgroup/memory"}, []string{"cpu", "io", "pids"}, []string{"cpu", "io", "pids"}
		}, "cgroup.controllers", Warn, false, "held by cgroup v1", "cgroup_no_v1=all"},
		{"controller not in kernel", func(f *Facts) {
			f.Cgroup.Root, f.Cgroup.Available = []string{"cpu", "memory", "pids"}, []string{"cpu", "memory", "pids"}
		},
			"cgroup.controllers", Warn, false, "not in this kernel", "a kernel with that controller"},
		{"io not delegated", func(f *Facts) { f.Cgroup.Available = []string{"cpu", "memory", "pids"} }, "cgroup.controllers", Warn, false,
			"not delegated", "Delegate=cpu cpuset io memory pids"},
		{"not delegated, no bus", func(f *Facts) { f.Cgroup.Delegated, f.Cgroup.UserBus = false, "" }, "cgroup.delegation", Warn, false,
			"no systemd user manager answers", "systemd-run --user --scope -p Delegate=yes"},
		{"not delegated, bus dead", func(f *Facts) { f.Cgroup.Delegated, f.Cgroup.UserBusErr = false, syscall.ECONNREFUSED }, "cgroup.delegation", Warn, false,
			"no systemd user manager answers", "enable-linger alice"},
		{"not delegated, user bus", func(f *Facts) { f.Cgroup.Delegated = false }, "cgroup.delegation", OK, false, "ask the systemd user manager", ""},
		// Issue 12 item 9: what run does, with what the user manager really delegates.
		{"user scope without Delegate", undelegatedUserScope, "cgroup.delegation", OK, false,
			"vte-spawn-1.scope, which your user manager owns but does not delegate (Delegate=no: systemd still manages it); runs with limits ask the systemd user manager for a delegated scope of their own", ""},
		{"stock delegation seen from a scope", undelegatedUserScope, "cgroup.controllers", Warn, false,
			"unavailable: io (--io-weight, --io-max; not delegated to your user manager (/user.slice/user-1000.slice/user@1000.service))", "Delegate=cpu cpuset io memory pids"},
		{"delegated with the shell in it", func(f *Facts) { f.Cgroup.Foreign = []int{77} }, "cgroup.delegation", OK, false,
			"also holds processes sandbox did not start ([77]), which it never moves; runs with limits ask", ""},
		{"delegated with the shell in it, no bus", func(f *Facts) { f.Cgroup.Foreign, f.Cgroup.UserBus = []int{77}, "" }, "cgroup.delegation", Warn, false,
			"also holds processes sandbox did not start", "systemd-run --user --scope -p Delegate=yes"},
		{"cgroup unknown", func(f *Facts) { f.Cgroup.Err = errors.New("no 0:: line") }, "cgroup.delegation", Warn, false, "no 0:: line", "unified_cgroup_hierarchy=1"},
		{"bus answers", func(f *Facts) {}, "systemd.bus", OK, false, "version 252", ""},
		{"bus not needed", func(f *Facts) { f.Cgroup.UserBus = "" }, "systemd.bus", OK, false, "not needed: your cgroup is delegated", ""},
		{"bus dead, not needed", func(f *Facts) { f.Cgroup.UserBusErr = syscall.ECONNREFUSED }, "systemd.bus", OK, false, "does not answer (connection refused); not needed", ""},
		{"bus dead", func(f *Facts) {
			f.Cgroup.Delegated, f.Cgroup.UserBusErr = false, errors.New("no systemd manager on it")
		}, "systemd.bus", Warn, false,
			"does not answer as the systemd user manager (no systemd manager on it)", "loginctl enable-linger alice"},
		{"no bus", func(f *Facts) { f.Cgroup.Delegated, f.Cgroup.UserBus = false, "" }, "systemd.bus", Warn, false, "DBUS_SESSION_BUS_ADDRESS is unset", "XDG_RUNTIME_DIR"},

		// the live run
		{"run fails", func(f *Facts) { f.Run = RunProbe{Err: errors.New("exit status 125"), Stderr: "sandbox: boom"} }, "run", Fail, true, "sandbox: boom", "sandbox run -v -- true"},
		{"run warns", func(f *Facts) { f.Run = RunProbe{Stderr: "sandbox: warning: no network"} }, "run", Warn, false, "works", "see the lines above"},
		{"run not tried", func(f *Facts) { f.Run = RunProbe{Err: fmt.Errorf("%w: true not found", ErrNotProbed)} }, "run", Warn, false, "not tried", "on PATH"},
	}
	for _, c := range cases {
		f := good()
		c.mutate(&f)
		rs := Judge(f)
		r := find(t, rs, c.id)
		if r.Status != c.level || r.Blocks != c.blocks {
			t.Errorf("%s: %s is %s (blocks %v): %s; want %s (blocks %v)", c.name, c.id, r.Status, r.Blocks, r.Message, c.level, c.blocks)
		}
		if !strings.Contains(r.Message, c.inMsg) {
			t.Errorf("%s: message %q lacks %q", c.name, r.Message, c.inMsg)
		}
		if c.inFix != "" && !strings.Contains(r.Fix, c.inFix) {
			t.Errorf("%s: fix %q lacks %q", c.name, r.Fix, c.inFix)
		}
		if (r.Status == OK) != (r.Fix == "") {
			t.Errorf("%s: %s with fix %q: every WARN and FAIL has a fix, an OK none", c.name, r.Status, r.Fix)
		}
		for _, r := range rs {
			if strings.Contains(r.Message+r.Fix, "\n") {
				t.Errorf("%s: %s is more than one line: %q %q", c.name, r.ID, r.Message, r.Fix)
			}
		}
		if c.blocks && !Failed(rs) {
			t.Errorf("%s: Failed = false", c.name)
		}
	}
}

// TestBlockingRule: exit status 1 only for a FAIL that stops run's
// defaults; a broken link that run falls back from is FAIL without it.
func TestBlockingRule(t *testing.T) {
	f := good()
	f.Newuidmap.Err = errors.New("not setuid")
	f.Newuidmap.Setuid = false
	rs := Judge(f)
	if Failed(rs) {
		t.Error("a broken newuidmap stops nothing: run falls back to a single mapping")
	}
	if s := Summary(rs); !strings.Contains(s, "1 FAIL") || !strings.Contains(s, "falling back") {
		t.Errorf("summary: %s", s)
	}
	f.Seccomp = false
	rs = Judge(f)
	if !Failed(rs) {
		t.Error("no seccomp stops run's default filter")
	}
	if s := Summary(rs); !strings.Contains(s, "cannot work") {
		t.Errorf("summary: %s", s)
	}
	for _, r := range rs {
		if r.Blocks && r.Status != Fail {
			t.Errorf("%s blocks but is %s", r.ID, r.Status)
		}
	}
}

func TestNetDriverLines(t *testing.T) {
	f := good()
	f.NetDrivers = []NetDriver{{Name: "pasta", Err: errors.New("pasta is not installed")}, {Name: "slirp4netns", Err: nil}, {Name: "builtin", Err: nil}}
	rs := Judge(f)
	if r := find(t, rs, "net.pasta"); r.Status != Warn || !strings.Contains(r.Message, "not installed") {
		t.Errorf("pasta line: %+v", r)
	}
	if r := find(t, rs, "net.auto"); r.Status != OK || !strings.Contains(r.Message, "slirp4netns") {
		t.Errorf("auto line should name slirp4netns: %+v", r)
	}
	if r := find(t, rs, "net.egress"); r.Status != OK || !strings.Contains(r.Message, "can be enforced") {
		t.Errorf("egress with builtin usable: %+v", r)
	}
	if r := find(t, rs, "net.pasta"); r.Fix != "sudo apt-get install passt" {
		t.Errorf("pasta's fix: %+v", r)
	}
	f.NetDrivers = []NetDriver{{Name: "pasta", Err: errors.New("pasta is not installed")}, {Name: "builtin", Err: errors.New("no helper")}}
	if r := find(t, Judge(f), "net.auto"); r.Status != Warn || !strings.Contains(r.Message, "--net=none") {
		t.Errorf("no usable driver: %+v", r)
	}
	if r := find(t, Judge(f), "net.builtin"); !strings.Contains(r.Fix, "scripts/build.sh") {
		t.Errorf("builtin's fix: %+v", r)
	}
	if Failed(Judge(f)) {
		t.Error("no network driver must not FAIL: run's default falls back to --net=none")
	}
	if r := find(t, Judge(f), "net.egress"); r.Status != Warn || !strings.Contains(r.Message, "cannot be enforced") || !strings.Contains(r.Message, "no helper") {
		t.Errorf("egress without builtin: %+v", r)
	}
	// A trial run decides: found is not usable.
	f = good()
	f.NetDrivers = []NetDriver{{Name: "pasta", Probed: true, Trial: errors.New("exit status 125: sandbox: pasta died")},
		{Name: "slirp4netns", Probed: true}, {Name: "builtin"}}
	rs = Judge(f)
	if r := find(t, rs, "net.pasta"); r.Status != Warn || !strings.Contains(r.Message, "pasta died") {
		t.Errorf("pasta failing its trial: %+v", r)
	}
	if r := find(t, rs, "net.slirp4netns"); r.Status != OK || !strings.Contains(r.Message, "trial") {
		t.Errorf("slirp4netns passing its trial: %+v", r)
	}
	if r := find(t, rs, "net.builtin"); r.Status != OK || r.Message != "found, not probed" {
		t.Errorf("builtin not tried: %+v", r)
	}
	if r := find(t, rs, "net.auto"); !strings.Contains(r.Message, "slirp4netns") {
		t.Errorf("auto must skip the driver that failed its trial: %+v", r)
	}
	// Installed, but /dev/net/tun at 0600: said once, on the tun line.
	f = good()
	f.Tun.Mode, f.Tun.Err = 0o600, syscall.EACCES
	rs = Judge(f)
	for _, id := range []string{"net.slirp4netns", "net.pasta", "net.builtin"} {
		if r := find(t, rs, id); r.Status != Warn || r.Message != "installed, but not usable without /dev/net/tun" || r.Fix != "see the tun line" {
			t.Errorf("%s with tun at 0600: %+v", id, r)
		}
	}
	if r := find(t, rs, "net.auto"); r.Status != Warn || Failed(rs) {
		t.Errorf("auto with tun at 0600: %+v", r)
	}
	if r := find(t, rs, "net.egress"); r.Status != Warn || !strings.Contains(r.Message, "tun") {
		t.Errorf("egress with tun at 0600: %+v", r)
	}
	f.NetDrivers = nil
	for _, r := range Judge(f) {
		if strings.HasPrefix(r.ID, "net.") {
			t.Errorf("no drivers listed, yet %+v", r)
		}
	}
}

func TestFreeRange(t *testing.T) {
	cases := []struct {
		others []OwnedRange
		want   uint32
	}{
		{nil, 100000},
		{[]OwnedRange{{Owner: "bob", Range: rng("f", 1, 100000, 65536)}}, 165536},
		{[]OwnedRange{{Owner: "bob", Range: rng("f", 1, 120000, 10)}, {Owner: "carol", Range: rng("f", 2, 200000, 65536)}}, 296608},
		{[]OwnedRange{{Owner: "carol", Range: rng("f", 2, 200000, 65536)}, {Owner: "bob", Range: rng("f", 1, 120000, 10)}}, 296608}, // any order
		{[]OwnedRange{{Owner: "low", Range: rng("f", 1, 1000, 5000)}, {Owner: "bob", Range: rng("f", 2, 165536, 65536)}}, 100000},
		{[]OwnedRange{{Owner: "big", Range: rng("f", 1, 150000, 1000000)}}, 1214112},
		{[]OwnedRange{{Owner: "top", Range: rng("f", 1, 100000, 1<<32-100001)}}, 100000}, // nothing free: the usual start
		{[]OwnedRange{{Owner: "all", Range: rng("f", 1, 0, 1<<32-1)}}, 100000},
	}
	for _, c := range cases {
		if got := freeRange(c.others); got != c.want {
			t.Errorf("freeRange(%v) = %d, want %d", c.others, got, c.want)
		}
	}
}

func TestKernelSupported(t *testing.T) {
	for rel, want := range map[string]bool{"5.10.0-32-amd64": true, "6.1.0": true, "5.4.0-150-generic": false, "4.18.0-553.el8": false, "linux": true} {
		err := KernelSupported(rel)
		if (err == nil) != want {
			t.Errorf("KernelSupported(%q) = %v, want ok=%v", rel, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "openat2") {
			t.Errorf("KernelSupported(%q) does not name what is missing: %v", rel, err)
		}
	}
}
