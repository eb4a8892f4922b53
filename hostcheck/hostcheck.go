// Package hostcheck diagnoses whether this host can run sandboxes for the
// calling user: one line per link of the chain (kernel, user namespaces,
// subordinate ids, id-map helpers, overlayfs, devices, network, confinement,
// cgroups), each OK, WARN or FAIL with the fix. Reading the host (Gather and
// the live probes) is kept apart from judging it (Facts → Results), so every
// judgement is tested over made-up facts.
package hostcheck

import (
	"fmt"
	"runtime"
	"strings"

	"sandbox/idmap"
	"sandbox/internal/kernel"
	"sandbox/netns/driver"
	"sandbox/seccomp"
)

// Level is how bad a result is.
type Level string

// Levels. A FAIL whose Blocks is set means `sandbox run` with its defaults
// will not work; a FAIL without it is a broken link that run falls back
// from (e.g. newuidmap installed without its privileges: run maps only the
// caller). WARN: run's defaults work; a flag or a degraded default does not.
const (
	OK   Level = "OK"
	Warn Level = "WARN"
	Fail Level = "FAIL"
)

// Result is one line of the report.
type Result struct {
	ID      string `json:"id"`
	Status  Level  `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
	// Blocks: this FAIL stops `sandbox run` with its defaults.
	Blocks bool `json:"blocks_run"`
}

func ok(id, msg string) Result        { return Result{ID: id, Status: OK, Message: msg} }
func warn(id, msg, fix string) Result { return Result{ID: id, Status: Warn, Message: msg, Fix: fix} }

// fail is a FAIL that stops run's defaults.
func fail(id, msg, fix string) Result {
	return Result{ID: id, Status: Fail, Message: msg, Fix: fix, Blocks: true}
}

// broken is a FAIL that run's defaults fall back from.
func broken(id, msg, fix string) Result { return Result{ID: id, Status: Fail, Message: msg, Fix: fix} }

// Facts are what Gather and the probes read from the host; "" or nil where absent.
type Facts struct {
	User     string
	UID, GID uint32
	Exe      string // this binary (AppArmor profiles are per path)
	Kernel   string // uname release
	// MaxUserNS is user.max_user_namespaces.
	MaxUserNS string
	// UnprivUserNSClone is Debian's kernel.unprivileged_userns_clone ("" if the kernel has none).
	UnprivUserNSClone string
	// AppArmorRestrict is Ubuntu's kernel.apparmor_restrict_unprivileged_userns ("" if absent).
	AppArmorRestrict string
	NS               NSProbe // the live namespace probe
	Subuid, Subgid   SubidFacts
	Newuidmap        HelperFacts
	Newgidmap        HelperFacts
	FuseOverlayfs    string // path of fuse-overlayfs, "" if not installed
	RootFSType       string // type of the mount at / ("rootfs" on an initramfs)
	Tun, Fuse        DevAccess
	NetDrivers       []NetDriver
	Seccomp          bool
	Arch             string // GOARCH of this binary ("": runtime.GOARCH)
	LandlockABI      int
	Cgroup           CgroupFacts
	LegacyTIOCSTI    string // dev.tty.legacy_tiocsti ("" if absent)
	Run              RunProbe

	// Nested is the user namespace check runs in.
	Nested NestedFacts
	// Registry: the credentials and proxy image pulls use.
	Registry RegistryFacts
}

// NetDriver is whether one user-mode network driver is installed here
// (/dev/net/tun, which each needs, is a line of its own).
type NetDriver struct {
	Name string
	Err  error // what is missing; nil: installed
	// Probed: a trial `run --net=NAME -- true` ran; Trial is its error.
	Probed bool
	Trial  error
}

// netInstall says how to install a driver.
func netInstall(driver string) string {
	switch driver {
	case "slirp4netns":
		return "sudo apt-get install slirp4netns util-linux iproute2"
	case "pasta":
		return "sudo apt-get install passt"
	case "builtin":
		return "build sandbox with scripts/build.sh, which embeds sandbox-netstack"
	}
	return ""
}

// DevAccess is whether a device node can be opened read-write.
type DevAccess struct {
	Path   string
	Exists bool
	Mode   uint32 // permission bits
	UID    uint32 // owner
	Err    error  // from opening it; nil: usable
}

// Judge turns facts into results, in a fixed order.
func Judge(f Facts) []Result {
	root := f.UID == 0
	out := []Result{judgeKernel(f.Kernel)}
	out = append(out, judgeUserNS(f)...)
	subuid := judgeSubids(idmap.UID, f.Subuid, f.User, f.UID, f.UID, root)
	subgid := judgeSubids(idmap.GID, f.Subgid, f.User, f.UID, f.GID, root)
	if root && f.Nested.Nested && f.Nested.Privileged {
		subuid = ok("subuid", fmt.Sprintf("root writes its maps itself, with the %d uids this user namespace maps (see nested)", total(f.Nested.UIDs)))
		subgid = ok("subgid", fmt.Sprintf("root writes its maps itself, with the %d gids this user namespace maps (see nested)", total(f.Nested.GIDs)))
	}
	out = append(out, judgeNested(f.Nested))
	out = append(out,
		subuid,
		subgid,
		judgeHelper(f.Newuidmap, root),
		judgeHelper(f.Newgidmap, root),
		judgeOverlay(f.NS, f.Kernel, f.FuseOverlayfs != "" && f.Fuse.Exists && f.Fuse.Err == nil),
		judgeFuseOverlayfs(f.FuseOverlayfs, f.Fuse),
		judgePivot(f.NS, f.RootFSType),
		judgeDevice("tun", f.Tun, "tun", "every user-mode network driver needs it: run falls back to --net=none (no network)"),
		judgeDevice("fuse", f.Fuse, "fuse", "FUSE filesystems (fuse-overlayfs) need it"),
	)
	out = append(out, judgeNet(f.NetDrivers, f.Tun)...)
	out = append(out, judgeArch(f.Arch), judgeSeccomp(f.Seccomp), judgeLandlock(f.LandlockABI))
	out = append(out, judgeCgroup(f.Cgroup, f.User)...)
	out = append(out, judgeTIOCSTI(f.LegacyTIOCSTI), judgeRun(f.Run))
	out = append(out, judgeRegistryAuth(f.Registry), judgeProxy(f.Registry))
	return out
}

// Failed says whether any result stops run's defaults.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Blocks {
			return true
		}
	}
	return false
}

// Summary is the last line of the text report.
func Summary(rs []Result) string {
	n := map[Level]int{}
	for _, r := range rs {
		n[r.Status]++
	}
	counts := fmt.Sprintf("%d OK, %d WARN, %d FAIL", n[OK], n[Warn], n[Fail])
	if Failed(rs) {
		return counts + ": `sandbox run` cannot work with its defaults here; fix the FAIL lines first"
	}
	if n[Fail] > 0 {
		return counts + ": `sandbox run` works with its defaults, falling back where a line says so"
	}
	return counts + ": `sandbox run` works with its defaults here"
}

// MinKernel is the oldest kernel sandbox supports (and is tested on:
// Debian 11's 5.10).
const MinKernel = "5.10"

// tooOld names what a kernel before MinKernel lacks.
const tooOld = ", the oldest sandbox supports: run needs openat2 (5.6), close_range (5.9) and clone3 into a cgroup (5.7), " +
	"and is tested on 5.10 and later"

// KernelSupported is nil on MinKernel or later (and on a release it cannot
// read: the run then says what fails), else an error naming what is missing.
func KernelSupported(release string) error {
	if ok, err := atLeast(release, 5, 10); err == nil && !ok {
		return fmt.Errorf("Linux %s is older than %s%s; upgrade the kernel", release, MinKernel, tooOld)
	}
	return nil
}

func judgeKernel(release string) Result {
	// 5.10 is the oldest supported; overlayfs in a user namespace needs
	// 5.11 (before, every overlay is fuse-overlayfs); mount_setattr is 5.12
	// (before, read-only is a bind remount).
	ok510, err := atLeast(release, 5, 10)
	ok511, _ := atLeast(release, 5, 11)
	ok512, _ := atLeast(release, 5, 12)
	switch {
	case err != nil:
		return warn("kernel", fmt.Sprintf("cannot read the version %q: %v (sandbox needs %s or later)", release, err, MinKernel),
			"make sure the kernel is "+MinKernel+" or later (uname -r)")
	case !ok510:
		return fail("kernel", "Linux "+release+" is older than "+MinKernel+tooOld,
			"upgrade the kernel to "+MinKernel+" or later (5.11+ for kernel overlayfs)")
	case !ok511:
		return warn("kernel", "Linux "+release+": before 5.11 a user namespace cannot mount overlayfs, so every overlay is "+
			"fuse-overlayfs (--overlay=auto; slower, see the fuse-overlayfs line); read-only mounts are bind remounts (no mount_setattr before 5.12)",
			"Linux 5.11 or later for kernel overlayfs; until then keep fuse-overlayfs installed")
	case !ok512:
		return ok("kernel", "Linux "+release+" (before 5.12: read-only mounts are bind remounts, no mount_setattr)")
	}
	return ok("kernel", "Linux "+release)
}

// judgeNet: each driver in the order --net=auto tries them, then the one
// it picks.
func judgeNet(ds []NetDriver, tun DevAccess) []Result {
	tunOK := tun.Exists && tun.Err == nil
	var out []Result
	var auto string
	for _, d := range ds {
		id := "net." + d.Name
		switch {
		case d.Err != nil:
			out = append(out, warn(id, "not usable (only --net="+d.Name+" needs it): "+d.Err.Error(), netInstall(d.Name)))
		case !tunOK:
			out = append(out, warn(id, "installed, but not usable without /dev/net/tun", "see the tun line"))
		case d.Probed && d.Trial != nil:
			out = append(out, warn(id, "installed, but a trial `sandbox run --net="+d.Name+" -- true` failed: "+d.Trial.Error(),
				"`sandbox run -v --net="+d.Name+" -- true` shows each step"))
		case !d.Probed:
			out = append(out, ok(id, "found, not probed"))
			if auto == "" {
				auto = d.Name
			}
		default:
			out = append(out, ok(id, "usable: a trial `sandbox run --net="+d.Name+" -- true` worked"))
			if auto == "" {
				auto = d.Name
			}
		}
	}
	switch {
	case len(ds) == 0:
	case auto != "":
		out = append(out, ok("net.auto", "--net=auto uses "+auto))
	default:
		out = append(out, warn("net.auto", "no driver is usable: run falls back to --net=none (no network) with a warning",
			"see the tun and net.* lines above"))
	}
	if len(ds) > 0 {
		out = append(out, judgeEgress(ds, tunOK))
	}
	return out
}

// judgeEgress: an egress policy (--allow-host, --allow-cidr) needs the
// driver that enforces it; without it run refuses a policy (125), so this
// is a warning, not a failure of run itself.
func judgeEgress(ds []NetDriver, tunOK bool) Result {
	const id, name = "net.egress", string(driver.Enforcing)
	why := "--net=" + name + " is not among the drivers"
	for _, d := range ds {
		if d.Name != name {
			continue
		}
		switch {
		case d.Err != nil:
			why = "--net=" + name + " is not usable: " + d.Err.Error()
		case !tunOK:
			why = "/dev/net/tun is not usable"
		case d.Probed && d.Trial != nil:
			why = "a trial `sandbox run --net=" + name + " -- true` failed"
		default:
			return ok(id, "an egress policy (--allow-host, --allow-cidr) can be enforced: --net="+name+"'s stack, outside the sandbox, filters every connection and lookup")
		}
	}
	return warn(id, "an egress policy (--allow-host, --allow-cidr) cannot be enforced here, so run refuses one: "+why,
		"see the tun and net."+name+" lines above")
}

func judgeSeccomp(have bool) Result {
	if have {
		return ok("seccomp", "available: run's default filter is applied")
	}
	return fail("seccomp", "the kernel has no seccomp filter support: run's default filter cannot be installed",
		"a kernel with CONFIG_SECCOMP_FILTER, or run with --seccomp=unconfined")
}

// judgeArch: run's default seccomp filter needs this architecture's
// system-call tables.
func judgeArch(arch string) Result {
	if arch == "" {
		arch = runtime.GOARCH
	}
	list := strings.Join(seccomp.SupportedArchs(), ", ")
	if seccomp.Supported(arch) {
		return ok("arch", arch+": run's seccomp filters compile for it (supported: "+list+")")
	}
	return fail("arch", arch+": no system-call tables for this architecture, so run's default seccomp filter cannot be built (supported: "+list+")",
		"run with --seccomp=unconfined ("+seccomp.UnconfinedCost+"), or use a build for a supported architecture")
}

func judgeLandlock(abi int) Result {
	if abi > 0 {
		return ok("landlock", fmt.Sprintf("ABI %d (for --landlock)", abi))
	}
	return warn("landlock", "not available: --landlock would not restrict anything",
		"a kernel with CONFIG_SECURITY_LANDLOCK and landlock in its lsm= list")
}

func judgeTIOCSTI(v string) Result {
	// The sandbox blocks TIOCSTI itself; the sysctl only says how exposed
	// other programs on the host are.
	switch v {
	case "1":
		return ok("tiocsti", "dev.tty.legacy_tiocsti=1 (legacy TIOCSTI allowed on this host); the sandbox blocks it itself (own session or pty, seccomp)")
	case "0":
		return ok("tiocsti", "dev.tty.legacy_tiocsti=0: TIOCSTI needs CAP_SYS_ADMIN on this host; the sandbox blocks it too")
	}
	return ok("tiocsti", "no dev.tty.legacy_tiocsti (kernel before 6.2); the sandbox blocks TIOCSTI itself (own session or pty, seccomp)")
}

// sysctlFix says how to set a sysctl now and at every boot.
func sysctlFix(key, value string) string {
	return fmt.Sprintf("sudo sysctl -w %s=%s; to keep it: echo %s=%s | sudo tee /etc/sysctl.d/90-sandbox.conf", key, value, key, value)
}

func orNA(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// RunningAtLeast: the running kernel is major.minor or later (true when
// its release cannot be read). It is kernel.AtLeast.
func RunningAtLeast(major, minor int) bool { return kernel.AtLeast(major, minor) }

// atLeast compares a kernel release ("6.18.44-fc-v769", "5.11-rc1") with
// major.minor.
func atLeast(release string, major, minor int) (bool, error) {
	v, err := kernel.Parse(release)
	if err != nil {
		return false, err
	}
	return v.AtLeast(major, minor), nil
}
