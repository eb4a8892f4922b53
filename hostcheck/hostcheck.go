// Package hostcheck diagnoses whether this host can run sandboxes for the
// calling user: one line per link of the chain (kernel, user namespaces,
// subordinate ids, id-map helpers, devices, confinement features), each
// OK, WARN or FAIL with the fix. Reading the host is kept apart from
// judging it (Facts → Results), so the judging is tested over fixtures.
package hostcheck

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"sandbox/idmap"
)

// Level is how bad a result is.
type Level string

// Levels. FAIL means `sandbox run` with its defaults will not work.
const (
	OK   Level = "OK"
	Warn Level = "WARN"
	Fail Level = "FAIL"
)

// Result is one line of the report.
type Result struct {
	Name   string `json:"name"`
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Facts are what Gather read from the host; "" or nil where absent.
type Facts struct {
	User      string
	UID       uint32
	Kernel    string // uname release
	MaxUserNS string // /proc/sys/user/max_user_namespaces
	// UnprivUserNSClone is Debian's kernel.unprivileged_userns_clone ("" if the kernel has none).
	UnprivUserNSClone string
	// AppArmorRestrict is Ubuntu's kernel.apparmor_restrict_unprivileged_userns ("" if absent).
	AppArmorRestrict string
	UIDRanges        []idmap.Range
	GIDRanges        []idmap.Range
	SubidErr         error
	HelperErrs       []error // from idmap.CheckHelper, one per helper, nil entries when fine
	Tun, Fuse        DevAccess
	RootFSType       string // type of the mount at / ("rootfs" on an initramfs)
	LandlockABI      int
	Seccomp          bool
	LegacyTIOCSTI    string // /proc/sys/dev/tty/legacy_tiocsti ("" if absent)
	Cgroup           CgroupFacts
}

// CgroupFacts are what resource limits (--memory, --cpus, …) need.
type CgroupFacts struct {
	Mount     string            // the cgroup2 mount point, "" if none
	V1        map[string]string // controllers cgroup v1 holds → its mount point
	Base      string            // the caller's cgroup directory (sandboxes go below it)
	Delegated bool              // Base is writable by the caller
	Root      []string          // controllers cgroup v2 has (the mount root's cgroup.controllers)
	Available []string          // controllers of Base
	UserBus   string            // address of the systemd user bus, "" if none
	Err       error             // why Base is unknown
}

// DevAccess is whether a device node can be opened read-write.
type DevAccess struct {
	Path   string
	Exists bool
	Mode   uint32 // permission bits
	Err    error  // from opening it; nil: usable
}

// Judge turns facts into results, in a fixed order.
func Judge(f Facts) []Result {
	var out []Result
	add := func(name string, l Level, detail, fix string) {
		out = append(out, Result{name, l, detail, fix})
	}

	// Kernel: overlayfs in a user namespace needs 5.11.
	if ok, err := atLeast(f.Kernel, 5, 11); err != nil {
		add("kernel", Warn, fmt.Sprintf("cannot read the version %q: %v", f.Kernel, err), "")
	} else if !ok {
		add("kernel", Fail, "Linux "+f.Kernel+": overlayfs in a user namespace needs 5.11 or later", "upgrade the kernel")
	} else {
		add("kernel", OK, "Linux "+f.Kernel, "")
	}

	// User namespaces.
	switch {
	case f.MaxUserNS == "0":
		add("user namespaces", Fail, "user.max_user_namespaces is 0", "sysctl -w user.max_user_namespaces=15000")
	case f.UnprivUserNSClone == "0":
		add("user namespaces", Fail, "kernel.unprivileged_userns_clone is 0", "sysctl -w kernel.unprivileged_userns_clone=1")
	case f.AppArmorRestrict == "1":
		add("user namespaces", Fail, "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)",
			"sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile allowing userns for the sandbox binary")
	default:
		add("user namespaces", OK, "unprivileged user namespaces allowed (max "+orNA(f.MaxUserNS)+")", "")
	}

	// Subordinate ids and helpers: without them, run falls back to a
	// single mapping (a warning, not a failure).
	fix := fmt.Sprintf("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s", f.User)
	switch {
	case f.UID == 0:
		add("subordinate ids", OK, "root writes its maps itself (root's entries or ids 1000000000-1000065535)", "")
	case f.SubidErr != nil:
		add("subordinate ids", Warn, f.SubidErr.Error()+"; run maps only your own uid", "")
	case len(f.UIDRanges) == 0 || len(f.GIDRanges) == 0:
		add("subordinate ids", Warn, "no /etc/subuid or /etc/subgid entry for "+f.User+"; run maps only your own uid", fix)
	default:
		n, m := total(f.UIDRanges), total(f.GIDRanges)
		if _, err := idmap.Plan(0, f.UID, f.UIDRanges, idmap.Full); err != nil {
			add("subordinate ids", Fail, err.Error(), "")
		} else if n < 65536 || m < 65536 {
			add("subordinate ids", Warn, fmt.Sprintf("%d uids, %d gids: fewer than 65536 (many images need 65536)", n, m), fix)
		} else {
			add("subordinate ids", OK, fmt.Sprintf("%d uids (%s), %d gids", n, rangesString(f.UIDRanges), m), "")
		}
	}
	if f.UID != 0 {
		var bad []string
		var fixes []string
		for _, err := range f.HelperErrs {
			if err == nil {
				continue
			}
			bad = append(bad, err.Error())
			if he, ok := err.(*idmap.HelperError); ok {
				fixes = append(fixes, he.Fix)
			}
		}
		if len(bad) > 0 {
			add("newuidmap/newgidmap", Warn, strings.Join(bad, "; ")+"; run maps only your own uid", strings.Join(fixes, "; "))
		} else {
			add("newuidmap/newgidmap", OK, "present and setuid root (or with file capabilities)", "")
		}
	}

	// pivot_root: refused on an initramfs root; run falls back to MS_MOVE+chroot.
	if f.RootFSType == "rootfs" || f.RootFSType == "ramfs" {
		add("pivot_root", Warn, "/ is an initramfs ("+f.RootFSType+"): pivot_root is refused; run uses MS_MOVE+chroot instead", "")
	} else {
		add("pivot_root", OK, "/ is "+orNA(f.RootFSType), "")
	}

	// Devices for the later network and fuse drivers: a 0600 node is the
	// common misconfiguration (distributions ship 0666).
	for _, d := range []DevAccess{f.Tun, f.Fuse} {
		name := d.Path
		switch {
		case !d.Exists:
			add(name, Warn, "missing", "modprobe "+map[string]string{"/dev/net/tun": "tun", "/dev/fuse": "fuse"}[d.Path])
		case d.Err != nil:
			add(name, Warn, fmt.Sprintf("not accessible (mode %04o): %v", d.Mode, d.Err),
				fmt.Sprintf("sudo chmod 0666 %s (the distribution default)", d.Path))
		default:
			add(name, OK, fmt.Sprintf("read-write (mode %04o)", d.Mode), "")
		}
	}

	// Confinement features.
	if f.Seccomp {
		add("seccomp", OK, "available: the default filter is applied", "")
	} else {
		add("seccomp", Fail, "the kernel has no seccomp filter support; run's default filter cannot be installed",
			"a kernel with CONFIG_SECCOMP_FILTER, or run with --seccomp=unconfined")
	}
	if f.LandlockABI > 0 {
		add("landlock", OK, fmt.Sprintf("ABI %d (for --landlock)", f.LandlockABI), "")
	} else {
		add("landlock", Warn, "not available: --landlock would not restrict anything", "a kernel with CONFIG_SECURITY_LANDLOCK and landlock in lsm=")
	}
	out = append(out, judgeCgroup(f.Cgroup, f.User)...)
	switch f.LegacyTIOCSTI {
	case "1":
		add("TIOCSTI", OK, "legacy TIOCSTI is enabled on this host; the sandbox blocks it itself (own session or pty, seccomp)", "")
	default:
		add("TIOCSTI", OK, "legacy TIOCSTI disabled or absent", "")
	}
	return out
}

// limitControllers are the controllers of run's limit flags.
var limitControllers = map[string]string{
	"cpu": "--cpus, --cpu-weight", "io": "--io-weight, --io-max", "memory": "--memory, --memory-swap", "pids": "--pids",
}

// judgeCgroup says where cgroup v2 is, whether the caller's cgroup is
// delegated and which limit controllers it has. Only WARN: run's
// defaults need no cgroup.
func judgeCgroup(c CgroupFacts, user string) []Result {
	var out []Result
	add := func(name string, l Level, detail, fix string) {
		out = append(out, Result{name, l, detail, fix})
	}
	if c.Mount == "" {
		add("cgroup v2", Warn, "not mounted (cgroup v1 only): resource limits (--memory, --cpus, --pids, --io-*) cannot be applied",
			"boot with systemd.unified_cgroup_hierarchy=1")
		return out
	}
	var held []string
	for _, ctrl := range []string{"cpu", "io", "memory", "pids"} {
		v1 := ctrl
		if ctrl == "io" {
			v1 = "blkio"
		}
		if c.V1[v1] != "" {
			held = append(held, ctrl)
		}
	}
	if len(held) > 0 {
		add("cgroup v2", Warn, fmt.Sprintf("at %s, hybrid layout: cgroup v1 holds %s", c.Mount, strings.Join(held, ", ")),
			"boot with systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all for limits on these")
	} else {
		add("cgroup v2", OK, fmt.Sprintf("at %s (controllers: %s)", c.Mount, orNA(strings.Join(c.Root, " "))), "")
	}
	delegateFix := "run under `systemd-run --user --scope -p Delegate=yes sandbox run …`; without a user manager: sudo loginctl enable-linger " + user
	switch {
	case c.Err != nil:
		add("cgroup delegation", Warn, c.Err.Error(), "")
		return out
	case c.Delegated:
		add("cgroup delegation", OK, fmt.Sprintf("your cgroup %s is delegated to you: each sandbox gets its own cgroup below it", c.Base), "")
	case c.UserBus != "":
		add("cgroup delegation", OK, fmt.Sprintf("your cgroup %s is not delegated; runs with limits ask the systemd user manager (%s) for a delegated scope", c.Base, c.UserBus), "")
	default:
		add("cgroup delegation", Warn, fmt.Sprintf("your cgroup %s is not delegated to you and there is no systemd user bus: limits cannot be applied", c.Base), delegateFix)
	}
	have := c.Root
	if c.Delegated {
		have = c.Available
	}
	var missing, fixes []string
	for _, ctrl := range []string{"cpu", "io", "memory", "pids"} {
		if slices.Contains(have, ctrl) {
			continue
		}
		switch {
		case slices.Contains(held, ctrl):
			missing = append(missing, fmt.Sprintf("%s (%s; held by cgroup v1)", ctrl, limitControllers[ctrl]))
		case !slices.Contains(c.Root, ctrl):
			missing = append(missing, fmt.Sprintf("%s (%s; not in this kernel's cgroup v2)", ctrl, limitControllers[ctrl]))
		default:
			missing = append(missing, fmt.Sprintf("%s (%s; not delegated to %s)", ctrl, limitControllers[ctrl], c.Base))
			fixes = append(fixes, ctrl)
		}
	}
	switch {
	case len(missing) == 0:
		add("cgroup controllers", OK, "cpu io memory pids: every limit flag can be applied", "")
	case len(fixes) > 0:
		add("cgroup controllers", Warn, "unavailable: "+strings.Join(missing, ", "),
			"systemd: the drop-in /etc/systemd/system/user@.service.d/delegate.conf with [Service] Delegate=cpu cpuset io memory pids, then systemctl daemon-reload and log in again")
	default:
		add("cgroup controllers", Warn, "unavailable: "+strings.Join(missing, ", "), "")
	}
	return out
}

// Failed says whether any result stops run's defaults.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Level == Fail {
			return true
		}
	}
	return false
}

func total(rs []idmap.Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += uint64(r.Count)
	}
	return n
}

func rangesString(rs []idmap.Range) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, ",")
}

func orNA(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// atLeast compares a kernel release ("6.18.44-fc-v769", "5.11-rc1") with
// major.minor.
func atLeast(release string, major, minor int) (bool, error) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false, fmt.Errorf("no major.minor")
	}
	ma, err := leadingInt(parts[0])
	if err != nil {
		return false, err
	}
	mi, err := leadingInt(parts[1])
	if err != nil {
		return false, err
	}
	return ma > major || ma == major && mi >= minor, nil
}

func leadingInt(s string) (int, error) {
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(s)
	}
	return strconv.Atoi(s[:end])
}
