package hostcheck

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// judgeUserNS gives one line per user-namespace sysctl the kernel has,
// then the live probe's verdict.
func judgeUserNS(f Facts) []Result {
	var out []Result
	probeErr := f.NS.UserNS
	if probeErr == nil {
		probeErr = f.NS.Caps
	}
	switch f.MaxUserNS {
	case "0":
		out = append(out, fail("userns.max", "user.max_user_namespaces=0: no user namespaces can be created",
			sysctlFix("user.max_user_namespaces", "15000")))
	case "":
		if probeErr == nil {
			out = append(out, ok("userns.max", "user.max_user_namespaces is unreadable; the probe created a user namespace anyway"))
		} else {
			out = append(out, warn("userns.max", "user.max_user_namespaces is unreadable (a kernel without CONFIG_USER_NS?)",
				"a kernel with CONFIG_USER_NS=y"))
		}
	default:
		out = append(out, ok("userns.max", "user.max_user_namespaces="+f.MaxUserNS))
	}
	switch f.UnprivUserNSClone {
	case "":
		// Only Debian's older kernels have this switch.
	case "0":
		out = append(out, fail("userns.clone", "kernel.unprivileged_userns_clone=0: only root may create user namespaces",
			sysctlFix("kernel.unprivileged_userns_clone", "1")))
	default:
		out = append(out, ok("userns.clone", "kernel.unprivileged_userns_clone="+f.UnprivUserNSClone))
	}
	switch f.AppArmorRestrict {
	case "":
	case "1":
		const what = "kernel.apparmor_restrict_unprivileged_userns=1 (Ubuntu 24.04+)"
		switch {
		case errors.Is(probeErr, ErrNotProbed):
			out = append(out, warn("userns.apparmor",
				what+"; the probe did not run, so whether this binary's user namespaces keep their capabilities is unknown", appArmorFix(f.Exe)))
		case probeErr == nil:
			out = append(out, warn("userns.apparmor",
				what+", but this binary's user namespaces keep their capabilities (an AppArmor profile allows "+f.Exe+"); a copy at another path gets none",
				"run sandbox from the path its AppArmor profile names ("+f.Exe+"), or "+sysctlFix("kernel.apparmor_restrict_unprivileged_userns", "0")))
		default:
			out = append(out, fail("userns.apparmor",
				what+": AppArmor gives an unconfined program's user namespaces no capabilities, so run cannot mount (probe: "+probeErr.Error()+")",
				appArmorFix(f.Exe)))
		}
	default:
		out = append(out, ok("userns.apparmor", "kernel.apparmor_restrict_unprivileged_userns="+f.AppArmorRestrict))
	}
	out = append(out, judgeNSProbe(f))
	return out
}

// judgeNSProbe says whether the probe could create a user namespace and
// use its capabilities there.
func judgeNSProbe(f Facts) Result {
	explained := f.MaxUserNS == "0" || f.UnprivUserNSClone == "0" || f.AppArmorRestrict == "1"
	switch {
	case errors.Is(f.NS.UserNS, ErrNotProbed):
		return warn("userns", "probe: "+f.NS.UserNS.Error(), "set TMPDIR to a writable directory and run check from the sandbox binary itself")
	case f.NS.UserNS != nil:
		fix := "inside a container or another sandbox, allow nested user namespaces (sandbox run --allow-nested-userns; docker --security-opt seccomp=unconfined); else look for an LSM denial in dmesg"
		if explained {
			fix = "see the userns.* lines above"
		}
		return fail("userns", "probe: "+f.NS.UserNS.Error(), fix)
	case f.NS.Caps != nil:
		fix := "an LSM (AppArmor, SELinux) or a seccomp filter denies mounts in user namespaces: look in dmesg or the audit log; inside another sandbox or container, allow mounts (sandbox run --seccomp=unconfined)"
		if f.AppArmorRestrict == "1" {
			fix = "see the userns.apparmor line above"
		}
		return fail("userns", "probe: a user namespace is created, but its root cannot use its capabilities there: "+f.NS.Caps.Error(), fix)
	}
	return ok("userns", fmt.Sprintf("probe: created a user and mount namespace (only you mapped) and mounted a tmpfs in it (%v)", f.NS.Took))
}

// appArmorFix is Ubuntu's way to let one program use user namespaces.
func appArmorFix(exe string) string {
	path := exe
	if strings.ContainsAny(path, " \t") {
		path = `"` + path + `"`
	}
	return fmt.Sprintf("an AppArmor profile allowing user namespaces for %s: printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\n"+
		"profile sandbox %s flags=(unconfined) {\\n  userns,\\n}\\n' | sudo tee /etc/apparmor.d/sandbox && "+
		"sudo apparmor_parser -r /etc/apparmor.d/sandbox; or, for every program, %s",
		exe, path, sysctlFix("kernel.apparmor_restrict_unprivileged_userns", "0"))
}

// judgeOverlay is the probe's kernel overlayfs round trip; fuseOK: auto's
// fuse-overlayfs fallback can stand in.
func judgeOverlay(ns NSProbe, release string, fuseOK bool) Result {
	err := ns.Overlay
	switch {
	case ns.UserNS != nil || ns.Caps != nil || errors.Is(err, ErrNotProbed):
		return warn("overlayfs", "not probed: no user namespace with capabilities (see the userns line)", "see the userns line")
	case err == nil:
		return ok("overlayfs", "probe: kernel overlayfs (userxattr) mounts in a user namespace; copy-up and whiteouts work")
	}
	fix := "Linux 5.11 or later with overlayfs (CONFIG_OVERLAY_FS); look in dmesg for the kernel's reason"
	switch {
	case errors.Is(err, unix.ENODEV):
		fix = "sudo modprobe overlay (a kernel with CONFIG_OVERLAY_FS)"
	case errors.Is(err, unix.EINVAL):
		fix = "Linux 5.11 or later (userxattr, overlayfs in user namespaces); dmesg says which option it refused"
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		if ok511, verr := atLeast(release, 5, 11); verr == nil && !ok511 {
			msg := "probe: kernel overlayfs in a user namespace refused (" + err.Error() + "): Linux " + release +
				" is older than 5.11, which first lets a user namespace mount overlayfs"
			if fuseOK {
				return broken("overlayfs", msg+"; --overlay=auto (the default) uses fuse-overlayfs for every overlay",
					"Linux 5.11 or later for kernel overlayfs (faster)")
			}
			return fail("overlayfs", msg+", and fuse-overlayfs cannot stand in (see the fuse-overlayfs line)",
				"sudo apt-get install fuse-overlayfs (and /dev/fuse 0666), or Linux 5.11 or later")
		}
		fix = "an LSM (AppArmor, SELinux) denies the overlay mount: look in dmesg or the audit log"
	}
	return fail("overlayfs", "probe: kernel overlayfs in a user namespace failed (run builds its root from overlays): "+err.Error(), fix)
}

// judgeFuseOverlayfs says whether `run --overlay=fuse` (and auto's
// fallback) can work: the binary, and a /dev/fuse the caller can open.
func judgeFuseOverlayfs(path string, dev DevAccess) Result {
	if path == "" {
		return warn("fuse-overlayfs", "not installed: --overlay=fuse cannot work, and --overlay=auto has no fallback where the kernel refuses overlayfs",
			"sudo apt-get install fuse-overlayfs (Fedora: sudo dnf install fuse-overlayfs)")
	}
	if !dev.Exists || dev.Err != nil {
		return warn("fuse-overlayfs", "installed at "+path+", but "+dev.Path+" cannot be opened (see the fuse line): --overlay=fuse cannot work",
			"sudo modprobe fuse; sudo chmod 0666 /dev/fuse")
	}
	return ok("fuse-overlayfs", "installed at "+path+" and "+dev.Path+" opens: --overlay=fuse works (and stands in where the kernel refuses overlayfs)")
}

// judgePivot is the probe's pivot_root into a tmpfs; unprobed, the type
// of / says what to expect.
func judgePivot(ns NSProbe, rootFSType string) Result {
	initramfs := rootFSType == "rootfs" || rootFSType == "ramfs"
	err := ns.Pivot
	switch {
	case ns.UserNS != nil || ns.Caps != nil || errors.Is(err, ErrNotProbed):
		if initramfs {
			return warn("pivot_root", "not probed; / is an initramfs ("+rootFSType+"), where pivot_root is refused: run would use MS_MOVE+chroot",
				"none needed; pivot_root works from a real root filesystem (switch_root out of the initramfs)")
		}
		return warn("pivot_root", "not probed (see the userns line); / is "+orNA(rootFSType), "see the userns line")
	case err == nil:
		return ok("pivot_root", "probe: pivot_root into a new root works (/ is "+orNA(rootFSType)+")")
	case errors.Is(err, unix.EINVAL):
		return warn("pivot_root", "probe: pivot_root is refused ("+err.Error()+"; / is "+orNA(rootFSType)+"): run falls back to MS_MOVE+chroot",
			"none needed; pivot_root works from a real root filesystem (switch_root out of the initramfs)")
	}
	return fail("pivot_root", "probe: pivot_root failed: "+err.Error(), "look in dmesg for an LSM denial")
}
