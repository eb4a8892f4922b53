package hostcheck

import (
	"errors"
	"os"
	"strings"

	"sandbox/cgroupdelegate"
	"sandbox/confine"
	"sandbox/idmap"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Gather reads the facts of this host for the calling user.
func Gather(user string, uid uint32) Facts {
	f := Facts{User: user, UID: uid}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	f.MaxUserNS = readTrim("/proc/sys/user/max_user_namespaces")
	f.UnprivUserNSClone = readTrim("/proc/sys/kernel/unprivileged_userns_clone")
	f.AppArmorRestrict = readTrim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
	f.LegacyTIOCSTI = readTrim("/proc/sys/dev/tty/legacy_tiocsti")
	if uid != 0 {
		src := idmap.DefaultSource()
		var err error
		if f.UIDRanges, _, err = src.Subids(idmap.UID, user, uid); err != nil {
			f.SubidErr = err
		}
		if f.GIDRanges, _, err = src.Subids(idmap.GID, user, uid); err != nil && f.SubidErr == nil {
			f.SubidErr = err
		}
		for _, h := range []string{"newuidmap", "newgidmap"} {
			f.HelperErrs = append(f.HelperErrs, idmap.CheckHelper(h))
		}
	}
	f.Tun = device("/dev/net/tun")
	f.Fuse = device("/dev/fuse")
	if ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter("/")); err == nil && len(ms) > 0 {
		f.RootFSType = ms[len(ms)-1].FSType
	}
	f.LandlockABI = confine.LandlockABI()
	f.Seccomp = seccompAvailable()
	f.Cgroup = gatherCgroup(int(uid))
	return f
}

func gatherCgroup(uid int) CgroupFacts {
	var c CgroupFacts
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2", "cgroup"))
	if err != nil {
		c.Err = err
		return c
	}
	m, err := cgroupdelegate.FindMount(infos)
	if err != nil {
		return c
	}
	c.Mount, c.V1 = m.Point, m.V1
	c.Root, _ = cgroupdelegate.List(m.Point, "cgroup.controllers")
	c.UserBus, _ = cgroupdelegate.UserBusAddress(os.Getenv, uid)
	self, err := os.ReadFile("/proc/self/cgroup")
	if err == nil {
		c.Base, err = m.Base(string(self))
	}
	if err != nil {
		c.Err = err
		return c
	}
	c.Delegated = cgroupdelegate.Writable(c.Base)
	c.Available, _ = cgroupdelegate.List(c.Base, "cgroup.controllers")
	return c
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func device(p string) DevAccess {
	d := DevAccess{Path: p}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return d
	}
	d.Exists, d.Mode = true, st.Mode&0o7777
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		d.Err = err
		return d
	}
	unix.Close(fd)
	return d
}

// seccompAvailable asks the kernel whether filter mode exists:
// PR_GET_SECCOMP fails with EINVAL on kernels without seccomp.
func seccompAvailable() bool {
	_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return !errors.Is(err, unix.EINVAL)
}
