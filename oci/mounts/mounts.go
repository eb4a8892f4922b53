// Package mounts builds an OCI container's root filesystem inside its mount
// namespace from config.json: root, mounts, linux.devices, rootfsPropagation,
// pivot_root, maskedPaths, readonlyPaths and root.readonly.
//
// Every destination is opened inside the root with openat2(RESOLVE_IN_ROOT)
// (sandbox/internal/inroot) and mounted on through /proc/self/fd/N, so a
// symlink in the rootfs (`etc -> /`) can never send a mount to the host.
// Flags are changed with mount_setattr, which sets only what was asked for:
// the flags the kernel locked on mounts from a more privileged namespace
// (nosuid, nodev, noexec of a host mount bound in a user namespace) stay.
package mounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/internal/inroot"
	"sandbox/internal/proc"
	"sandbox/rootfs"
)

// Check validates what this package will do, without touching anything
// (create calls it before any namespace exists). Each error names the field
// (`mounts[3].destination: ...`).
func Check(s *specs.Spec, rootfs string) error {
	if !filepath.IsAbs(rootfs) {
		return fmt.Errorf("root.path: %q is not an absolute path", rootfs)
	}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		f := fmt.Sprintf("mounts[%d]", i)
		if err := checkPath(m.Destination); err != nil {
			return fmt.Errorf("%s.destination: %w", f, err)
		}
		o, err := parseOptions(m.Options)
		if err != nil {
			return fmt.Errorf("%s.options: %w", f, err)
		}
		k, err := kind(m, o)
		if err != nil {
			return fmt.Errorf("%s.%w", f, err)
		}
		if k == "bind" && m.Source == "" {
			return fmt.Errorf("%s.source: a bind mount needs a source", f)
		}
		if o.copyUp && k != "tmpfs" {
			return fmt.Errorf("%s.options: tmpcopyup is for tmpfs only", f)
		}
		if len(m.UIDMappings)+len(m.GIDMappings) > 0 {
			return fmt.Errorf("%s.uidMappings: id-mapped mounts are not supported", f)
		}
	}
	l := s.Linux
	if l == nil {
		return nil
	}
	if p := l.RootfsPropagation; p != "" {
		if _, ok := propOpts[p]; !ok {
			return fmt.Errorf("linux.rootfsPropagation: %q is not one of private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable", p)
		}
	}
	for i, p := range l.MaskedPaths {
		if err := checkPath(p); err != nil {
			return fmt.Errorf("linux.maskedPaths[%d]: %w", i, err)
		}
	}
	for i, p := range l.ReadonlyPaths {
		if err := checkPath(p); err != nil {
			return fmt.Errorf("linux.readonlyPaths[%d]: %w", i, err)
		}
	}
	for i, d := range l.Devices {
		f := fmt.Sprintf("linux.devices[%d]", i)
		if err := checkPath(d.Path); err != nil {
			return fmt.Errorf("%s.path: %w", f, err)
		}
		if filepath.Clean(d.Path) == "/" {
			return fmt.Errorf("%s.path: \"/\"", f)
		}
		if _, err := deviceType(d.Type); err != nil {
			return fmt.Errorf("%s.type: %w", f, err)
		}
		if d.FileMode != nil && *d.FileMode&^os.FileMode(0o7777) != 0 {
			return fmt.Errorf("%s.fileMode: %o has bits beyond the permissions", f, uint32(*d.FileMode))
		}
	}
	return nil
}

// Setup runs in the container's init, in its new mount namespace: makes
// every mount private (then rootfsPropagation), binds rootfs (absolute host
// path) on itself, mounts s.Mounts inside it (destinations resolved inside
// rootfs, never through a symlink out of it), and creates linux.devices
// and the default devices (binds of the host's where mknod is refused).
// Bind sources are host paths (config.Load makes relative ones absolute,
// from the bundle).
func Setup(s *specs.Spec, rootfs string) error {
	if err := Check(s, rootfs); err != nil {
		return err
	}
	prop := uintptr(unix.MS_REC | unix.MS_PRIVATE)
	rp := ""
	if s.Linux != nil {
		rp = s.Linux.RootfsPropagation
	}
	if rp != "" && propOpts[rp]&unix.MS_UNBINDABLE == 0 {
		// (unbindable is applied by Finish: the root could not be bound.)
		prop = propOpts[rp] | unix.MS_REC
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("making / %s: %w", propName(rp), err)
	}
	if err := parentPrivate(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the root %s on itself: %w", rootfs, err)
	}
	fd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the root %s: %w", rootfs, err)
	}
	root := os.NewFile(uintptr(fd), rootfs)
	defer root.Close()
	userns := InUserNS()
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if err := mountOne(root, m, userns); err != nil {
			return fmt.Errorf("mounts[%d] (%s on %s): %w", i, m.Type, m.Destination, err)
		}
	}
	return devices(root, s, userns)
}

func propName(p string) string {
	if p == "" {
		return "rprivate"
	}
	return p
}

// parentPrivate makes the mount that holds rootfs private when it is
// shared: pivot_root refuses a new root whose parent mount is shared
// (rootfsPropagation shared or rshared leaves it so).
func parentPrivate(rootfs string) error {
	fd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the root %s: %w", rootfs, err)
	}
	defer unix.Close(fd)
	m, err := mountOf(fd)
	if err != nil {
		return err
	}
	if !strings.Contains(m.Optional, "shared:") {
		return nil
	}
	if err := unix.Mount("", m.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making %s (the mount holding the root) private for pivot_root: %w", m.Mountpoint, err)
	}
	return nil
}

func mountOne(root *os.File, m *specs.Mount, userns bool) error {
	o, err := parseOptions(m.Options)
	if err != nil {
		return err
	}
	k, err := kind(m, o)
	if err != nil {
		return err
	}
	if k == "bind" {
		return bind(root, m, o)
	}
	h, err := mkdirAll(root, m.Destination, 0o755)
	if err != nil {
		return fmt.Errorf("creating the mount point: %w", err)
	}
	below := -1
	if o.copyUp {
		// The directory as it is now, read after the tmpfs covers it.
		below, err = unix.Openat(int(h.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			h.Close()
			return fmt.Errorf("tmpcopyup: %w", err)
		}
		defer unix.Close(below)
	}
	target := inroot.ProcPath(h)
	flags := o.flags &^ (unix.MS_BIND | unix.MS_REC)
	if o.copyUp {
		flags &^= unix.MS_RDONLY // made read-only once filled
	}
	data := strings.Join(o.data, ",")
	source := m.Source
	if source == "" {
		source = k
	}
	switch k {
	case "proc":
		err = unix.Mount("proc", target, "proc", flags, data)
		if errors.Is(err, unix.EPERM) {
			err = procRefused(err)
		}
	case "sysfs":
		err = unix.Mount("sysfs", target, "sysfs", flags, data)
		if errors.Is(err, unix.EPERM) && userns {
			// A new sysfs needs a network namespace of our own; show the
			// host's instead, with the flags asked for (runc does so).
			err = bindFallback(root, "/sys", target, m.Destination, flags)
		}
	case "mqueue":
		err = unix.Mount("mqueue", target, "mqueue", flags, data)
		if errors.Is(err, unix.EPERM) && userns {
			// Without an IPC namespace of our own: the host's, as runc.
			err = bindFallback(root, "/dev/mqueue", target, m.Destination, flags)
		}
	case "cgroup", "cgroup2":
		err = mountCgroup(root, target, m.Destination, flags)
	default:
		err = unix.Mount(source, target, k, flags, data)
	}
	h.Close()
	if err != nil {
		return err
	}
	if o.copyUp {
		if err := copyUp(root, below, m.Destination); err != nil {
			return fmt.Errorf("tmpcopyup: %w", err)
		}
		if o.flags&unix.MS_RDONLY != 0 {
			if err := setAttr(root, m.Destination, unix.MOUNT_ATTR_RDONLY, 0, false); err != nil {
				return err
			}
		}
	}
	return finishMount(root, m.Destination, o)
}

// finishMount applies a mount's propagation and recursive options.
func finishMount(root *os.File, dest string, o *opts) error {
	if o.rset != 0 || o.rclr != 0 {
		if err := setAttr(root, dest, o.rset, o.rclr, true); err != nil {
			return err
		}
	}
	for _, p := range o.prop {
		h, err := inroot.Open(root, dest)
		if err != nil {
			return err
		}
		err = unix.Mount("", inroot.ProcPath(h), "", p, "")
		h.Close()
		if err != nil {
			return fmt.Errorf("propagation: %w", err)
		}
	}
	return nil
}

// bind binds m.Source (a host path) on m.Destination inside the root: a
// directory on a directory, anything else on a file made for it.
func bind(root *os.File, m *specs.Mount, o *opts) error {
	src, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	var h *inroot.Handle
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		h, err = mkdirAll(root, m.Destination, 0o755)
	} else {
		h, err = createFile(root, m.Destination)
	}
	if err != nil {
		return fmt.Errorf("creating the mount point: %w", err)
	}
	flags := uintptr(unix.MS_BIND)
	if o.rec() {
		flags |= unix.MS_REC
	}
	err = unix.Mount(inroot.ProcPath(fdOf(src)), inroot.ProcPath(h), "", flags, "")
	h.Close()
	if err != nil {
		return err
	}
	// The flags asked for are set on the new mount (and, for rbind, the
	// mounts below it: a read-only volume is read-only all the way down).
	set, clr := attrs(o.flags, o.clear, o.atime)
	if set != 0 {
		if err := setAttr(root, m.Destination, set, clr, o.rec()); err != nil {
			return err
		}
	}
	return finishMount(root, m.Destination, o)
}

type fdOf int

func (f fdOf) Fd() uintptr { return uintptr(f) }

// attrs converts mount(2) flags asked on and off to mount_setattr's.
func attrs(on, off uintptr, atime bool) (set, clr uint64) {
	pairs := []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
	}
	for _, p := range pairs {
		if on&p.ms != 0 {
			set |= p.attr
		}
		if off&p.ms != 0 {
			clr |= p.attr
		}
	}
	if atime {
		clr |= unix.MOUNT_ATTR__ATIME
		switch {
		case on&unix.MS_NOATIME != 0:
			set |= unix.MOUNT_ATTR_NOATIME
		case on&unix.MS_STRICTATIME != 0:
			set |= unix.MOUNT_ATTR_STRICTATIME
		default:
			set |= unix.MOUNT_ATTR_RELATIME
		}
	}
	return set, clr
}

// setAttr changes the attributes of the mount at dest (inside root).
func setAttr(root *os.File, dest string, set, clr uint64, recursive bool) error {
	h, err := inroot.Open(root, dest)
	if err != nil {
		return err
	}
	defer h.Close()
	return setAttrFd(int(h.Fd()), set, clr, recursive)
}

func setAttrFd(fd int, set, clr uint64, recursive bool) error {
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(fd, "", flags, &unix.MountAttr{Attr_set: set, Attr_clr: clr})
	if errors.Is(err, unix.ENOSYS) && set == unix.MOUNT_ATTR_RDONLY && clr == 0 {
		// Linux < 5.12: read-only by bind remounts that keep each
		// mount's flags.
		return rootfs.SetReadOnly(fd, "", recursive)
	}
	if err != nil {
		return fmt.Errorf("mount_setattr(%s): %w", describeAttrs(set, clr), err)
	}
	return nil
}

func describeAttrs(set, clr uint64) string {
	names := []struct {
		a uint64
		n string
	}{
		{unix.MOUNT_ATTR_RDONLY, "ro"}, {unix.MOUNT_ATTR_NOSUID, "nosuid"}, {unix.MOUNT_ATTR_NODEV, "nodev"},
		{unix.MOUNT_ATTR_NOEXEC, "noexec"}, {unix.MOUNT_ATTR_NODIRATIME, "nodiratime"}, {unix.MOUNT_ATTR_NOSYMFOLLOW, "nosymfollow"},
	}
	var out []string
	for _, x := range names {
		if set&x.a != 0 {
			out = append(out, x.n)
		}
		if clr&x.a != 0 && set&x.a == 0 {
			out = append(out, "no "+x.n)
		}
	}
	if clr&unix.MOUNT_ATTR__ATIME != 0 {
		out = append(out, "atime mode")
	}
	return strings.Join(out, ",")
}

// bindFallback binds the host's host (recursively) on target with the
// flags a new mount would have had.
func bindFallback(root *os.File, host, target, dest string, flags uintptr) error {
	if err := unix.Mount(host, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the host's %s: %w", host, err)
	}
	set, _ := attrs(flags, 0, false)
	if set == 0 {
		return nil
	}
	return setAttr(root, dest, set, 0, true)
}

// mountCgroup mounts the cgroup2 hierarchy (the container's own view in a
// cgroup namespace); where the kernel refuses (no cgroup namespace owned by
// our user namespace, or a v1/hybrid host) it binds the host's
// /sys/fs/cgroup with the flags asked for, as runc does rootless.
func mountCgroup(root *os.File, target, dest string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		err := unix.Mount("cgroup2", target, "cgroup2", flags, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	return bindFallback(root, "/sys/fs/cgroup", target, dest, flags|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
}

// procRefused explains a refused proc mount when the /proc we run under
// has masks (the kernel then refuses a new proc).
func procRefused(err error) error {
	data, rerr := proc.ReadFile("/proc/self/mountinfo", 4<<20)
	if rerr != nil {
		return err
	}
	if masked := rootfs.ProcMasks(string(data)); len(masked) > 0 {
		return &rootfs.ProcMaskedError{Masked: masked, Err: err}
	}
	return err
}

// Pivot makes rootfs the root (pivot_root) and changes to "/".
func Pivot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: opening /: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: opening %s: %w", rootfs, err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// pivot_root(".", "."): the old root ends up stacked on the new one,
	// then is detached, leaving no path back to the host.
	if perr := unix.PivotRoot(".", "."); perr != nil {
		if !errors.Is(perr, unix.EINVAL) {
			return fmt.Errorf("pivot_root: %w", perr)
		}
		// The current root is the initramfs rootfs: move and chroot,
		// as switch_root does; the old root stays covered.
		if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("pivot_root refused (%v) and moving the root failed: %w", perr, err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		return unix.Chdir("/")
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// Keep the unmount from reaching the host's mounts through propagation.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("pivot_root: making the old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("pivot_root: detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

// Finish runs after Pivot: readonlyPaths, maskedPaths, root.readonly, and
// rootfsPropagation on "/".
func Finish(s *specs.Spec) error {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /: %w", err)
	}
	root := os.NewFile(uintptr(fd), "/")
	defer root.Close()
	l := s.Linux
	if l == nil {
		l = &specs.Linux{}
	}
	for i, p := range l.ReadonlyPaths {
		if err := readonlyPath(root, p); err != nil {
			return fmt.Errorf("linux.readonlyPaths[%d] (%s): %w", i, p, err)
		}
	}
	for i, p := range l.MaskedPaths {
		if err := maskPath(root, p); err != nil {
			return fmt.Errorf("linux.maskedPaths[%d] (%s): %w", i, p, err)
		}
	}
	if s.Root != nil && s.Root.Readonly {
		// "/" alone: /proc, /dev and the volumes keep their own flags.
		if err := setAttrFd(fd, unix.MOUNT_ATTR_RDONLY, 0, false); err != nil {
			return fmt.Errorf("root.readonly: %w", err)
		}
	}
	if rp := l.RootfsPropagation; rp != "" {
		if err := unix.Mount("", "/", "", propOpts[rp], ""); err != nil {
			return fmt.Errorf("linux.rootfsPropagation: %w", err)
		}
	}
	return nil
}

// absent is a path that is not there to mask or protect: skipped, as runc.
func absent(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

func readonlyPath(root *os.File, p string) error {
	h, err := inroot.Open(root, p)
	if absent(err) {
		return nil
	}
	if err != nil {
		return err
	}
	self := inroot.ProcPath(h)
	err = unix.Mount(self, self, "", unix.MS_BIND|unix.MS_REC, "")
	h.Close()
	if err != nil {
		return fmt.Errorf("binding on itself: %w", err)
	}
	return setAttr(root, p, unix.MOUNT_ATTR_RDONLY, 0, true)
}

func maskPath(root *os.File, p string) error {
	h, st, err := openStat(root, p)
	if absent(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer h.Close()
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.Mount("tmpfs", inroot.ProcPath(h), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=0555")
	}
	null, nst, err := openStat(root, "/dev/null")
	if err != nil {
		return fmt.Errorf("masking a file takes the container's /dev/null: %w", err)
	}
	defer null.Close()
	if nst.Mode&unix.S_IFMT != unix.S_IFCHR || nst.Rdev != unix.Mkdev(1, 3) {
		return errors.New("masking a file takes the container's /dev/null, and it is not the null device")
	}
	return unix.Mount(inroot.ProcPath(null), inroot.ProcPath(h), "", unix.MS_BIND, "")
}
