package hostcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/confine"
	"sandbox/idmap"
	"sandbox/internal/hostpath"
	"sandbox/internal/kernel"
	"sandbox/netns/driver"

	"github.com/godbus/dbus/v5"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Gather reads the facts of this host for the calling user; the live
// probes (ProbeNamespaces, ProbeRun) and NetDrivers are separate.
func Gather(user string, uid, gid uint32) Facts {
	f := Facts{User: user, UID: uid, GID: gid}
	f.Kernel, _ = kernel.Release()
	f.MaxUserNS = readTrim("/proc/sys/user/max_user_namespaces")
	f.UnprivUserNSClone = readTrim("/proc/sys/kernel/unprivileged_userns_clone")
	f.AppArmorRestrict = readTrim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
	f.LegacyTIOCSTI = readTrim("/proc/sys/dev/tty/legacy_tiocsti")
	f.Subuid = gatherSubids(idmap.UID, "/etc/subuid", "getsubids", user, uid)
	f.Subgid = gatherSubids(idmap.GID, "/etc/subgid", "getsubids", user, uid)
	f.Newuidmap, f.Newgidmap = gatherHelper(idmap.UID.Helper()), gatherHelper(idmap.GID.Helper())
	f.FuseOverlayfs, _ = hostpath.Look("fuse-overlayfs")
	f.Tun = device("/dev/net/tun")
	f.Fuse = device("/dev/fuse")
	if ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter("/")); err == nil && len(ms) > 0 {
		f.RootFSType = ms[len(ms)-1].FSType
	}
	f.LandlockABI = confine.LandlockABI()
	f.Seccomp = seccompAvailable()
	f.Arch = runtime.GOARCH
	f.Cgroup = gatherCgroup(int(uid))
	f.Nested = gatherNested()
	f.Registry = GatherRegistry(os.Getenv)
	return f
}

// gatherSubids reads one kind of subordinate ids from file (every entry:
// the caller's, by name or by uid, and the other users', for overlaps)
// and from getsubids when it is installed.
func gatherSubids(kind idmap.Kind, file, getsubids, user string, uid uint32) SubidFacts {
	s := SubidFacts{File: file}
	text, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		s.FileErr = fmt.Errorf("reading subordinate ids: %w", err)
	default:
		s.Own, s.FileErr = idmap.ParseSubids(bytes.NewReader(text), file, user, uid)
		s.Others = otherEntries(string(text), file, user, uid)
	}
	if _, err := hostpath.Look(getsubids); err == nil {
		s.Getsubids = true
		s.NSS, _, s.NSSErr = idmap.Source{Getsubids: getsubids}.Subids(kind, user, uid)
	}
	return s
}

// otherEntries are the entries of subordinate-id file text that are
// neither user's nor uid's. Another user's malformed entry is not ours to
// judge: it is left out. Each line is parsed alone (linear in the file).
func otherEntries(text, file, user string, uid uint32) []OwnedRange {
	return idmap.OthersIn(text, file, user, uid)
}

func gatherHelper(name string) HelperFacts {
	h := HelperFacts{Name: name}
	path, err := hostpath.Look(name)
	if err != nil {
		return h
	}
	h.Path = path
	var st unix.Stat_t
	if unix.Stat(path, &st) == nil {
		h.Setuid = st.Mode&unix.S_ISUID != 0 && st.Uid == 0
	}
	if _, err := unix.Getxattr(path, "security.capability", nil); err == nil {
		h.FileCaps = true
	}
	h.Err = idmap.CheckHelper(path)
	return h
}

func gatherCgroup(uid int) CgroupFacts {
	var c CgroupFacts
	if addr, err := cgroupdelegate.UserBusAddress(os.Getenv, uid); err != nil {
		c.UserBusErr = err
	} else {
		c.UserBus = addr
		c.Systemd, c.Manager, c.UserBusErr = systemdManager(addr)
	}
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
	self, err := os.ReadFile("/proc/self/cgroup")
	if err == nil {
		c.Base, err = m.Base(string(self))
	}
	if err != nil {
		c.Err = err
		return c
	}
	// The same judgment as run's (cgroup.go), with the same question to
	// the user manager when the cgroup does not say.
	d := cgroupdelegate.JudgeDelegation(c.Base, uid, func(unit string) (bool, error) {
		if c.UserBus == "" || c.UserBusErr != nil {
			return false, errors.Join(c.UserBusErr, errors.New("no user bus to ask"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
		defer cancel()
		return cgroupdelegate.UnitDelegated(ctx, c.UserBus, unit)
	})
	c.Delegated, c.Why = d.Delegated, d.Why
	c.Available, _ = cgroupdelegate.List(c.Base, "cgroup.controllers")
	if procs, err := cgroupdelegate.Procs(c.Base); err == nil && c.Base != m.Point {
		for _, p := range procs {
			if p != os.Getpid() {
				c.Foreign = append(c.Foreign, p)
			}
		}
	}
	if c.Manager != "" {
		if dir, err := m.Dir(c.Manager); err == nil {
			c.ScopeControllers, _ = cgroupdelegate.List(dir, "cgroup.controllers")
		}
	}
	return c
}

// busTimeout bounds the user bus check: a stuck bus must not stall check.
const busTimeout = 5 * time.Second

// systemdManager asks the bus at addr for the systemd manager's version
// and its cgroup (where its transient scopes go): it answers only if the
// bus is reachable and systemd is on it.
func systemdManager(addr string) (version, cgroup string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	get := func(name string) (string, error) {
		var v dbus.Variant
		err := conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").CallWithContext(ctx,
			"org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.systemd1.Manager", name).Store(&v)
		s, _ := v.Value().(string)
		return s, err
	}
	if version, err = get("Version"); err != nil {
		return "", "", fmt.Errorf("no systemd manager on it: %w", err)
	}
	cgroup, _ = get("ControlGroup") // best effort: check then names no controllers
	return version, cgroup, nil
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
	d.Exists, d.Mode, d.UID = true, st.Mode&0o7777, st.Uid
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

// NetDrivers says which user-mode network drivers are installed here;
// haveNetstack: the builtin driver's helper is available.
func NetDrivers(haveNetstack bool) []NetDriver {
	probe := driver.RealHost(haveNetstack)
	probe.TunUsable = func() error { return nil } // judged once, on the tun line
	var out []NetDriver
	for _, m := range driver.Drivers {
		out = append(out, NetDriver{Name: string(m), Err: probe.Usable(m)})
	}
	return out
}
