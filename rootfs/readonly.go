package rootfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// noMountSetattr is set once mount_setattr(2) said ENOSYS (Linux < 5.12):
// from then on read-only is done by bind remounts.
var noMountSetattr atomic.Bool

// ReadOnlyMethod says how mounts are made read-only in this process:
// "mount_setattr", or "bind remount" on kernels before 5.12.
func ReadOnlyMethod() string {
	if noMountSetattr.Load() {
		return "bind remount"
	}
	return "mount_setattr"
}

// setReadOnly makes the mount at dirfd/p (and, recursive, every mount below
// it) read-only. mount_setattr changes only the read-only flag, so the flags
// the kernel locked on mounts inherited from the host stay as they are;
// before 5.12 a bind remount does the same when it repeats every flag the
// mount has (a locked one left out is EPERM).
func setReadOnly(dirfd int, p string, recursive bool) error {
	if !noMountSetattr.Load() {
		flags := 0
		if p == "" {
			flags |= unix.AT_EMPTY_PATH
		}
		if recursive {
			flags |= unix.AT_RECURSIVE
		}
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		err := unix.MountSetattr(dirfd, p, uint(flags), attr)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("mount_setattr read-only: %w", err)
		}
		noMountSetattr.Store(true)
	}
	return remountReadOnly(dirfd, p, recursive)
}

// remountReadOnly is setReadOnly by MS_REMOUNT|MS_BIND|MS_RDONLY, each
// mount with the flags mountinfo shows for it; recursive: the mount's
// subtree too, parents first.
func remountReadOnly(dirfd int, p string, recursive bool) error {
	flags := unix.O_PATH | unix.O_CLOEXEC
	if p == "" {
		p = "."
		flags |= unix.O_DIRECTORY
	}
	fd, err := unix.Openat(dirfd, p, flags, 0)
	if err != nil && p == "." {
		// dirfd may be a file's handle: use it as it is.
		fd, err = unix.Dup(dirfd)
	}
	if err != nil {
		return fmt.Errorf("opening the mount to make read-only: %w", err)
	}
	defer unix.Close(fd)
	id, err := mountID(fd)
	if err != nil {
		return fmt.Errorf("read-only bind remount: %w", err)
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return fmt.Errorf("read-only bind remount: reading mountinfo: %w", err)
	}
	top, below := subtree(mounts, id)
	if top == nil {
		return fmt.Errorf("read-only bind remount: mount %d is not in /proc/self/mountinfo", id)
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount("", self, "", remountFlags(top.Options), ""); err != nil {
		return fmt.Errorf("read-only bind remount of %s: %w", top.Mountpoint, err)
	}
	if !recursive {
		return nil
	}
	for _, m := range below {
		err := unix.Mount("", m.Mountpoint, "", remountFlags(m.Options), "")
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOENT) {
			// Below a directory this user cannot search (or gone): no
			// path of the sandbox reaches it either.
			continue
		}
		if err != nil {
			return fmt.Errorf("read-only bind remount of %s: %w", m.Mountpoint, err)
		}
	}
	return nil
}

// mountID is the id of the mount fd is on: statx's (Linux 5.8+), else
// fdinfo's mnt_id (3.15+).
func mountID(fd int) (int, error) {
	var stx unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx) == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		return int(stx.Mnt_id), nil
	}
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, fmt.Errorf("reading a mount id: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("reading a mount id: no mnt_id in fdinfo")
}

// subtree finds mount id and every mount below it, parents before their
// children (mountinfo lists a mount after its parent, except after a
// move: ordering by depth is kept by the walk).
func subtree(mounts []*mountinfo.Info, id int) (*mountinfo.Info, []*mountinfo.Info) {
	var top *mountinfo.Info
	children := map[int][]*mountinfo.Info{}
	for _, m := range mounts {
		if m.ID == id {
			top = m
		}
		if m.ID != m.Parent {
			children[m.Parent] = append(children[m.Parent], m)
		}
	}
	if top == nil {
		return nil, nil
	}
	var out []*mountinfo.Info
	queue := []int{id}
	seen := map[int]bool{id: true}
	for len(queue) > 0 && len(out) <= len(mounts) {
		for _, c := range children[queue[0]] {
			if !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, c)
				queue = append(queue, c.ID)
			}
		}
		queue = queue[1:]
	}
	return top, out
}

// remountFlags are a read-only bind remount's flags that keep a mount's
// per-mount options (mountinfo's field 6): the kernel refuses to drop a
// flag it locked, and an atime mode left out would be changed to relatime.
func remountFlags(options string) uintptr {
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY)
	atime := uintptr(unix.MS_STRICTATIME)
	for _, o := range strings.Split(options, ",") {
		switch o {
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "noexec":
			flags |= unix.MS_NOEXEC
		case "nodiratime":
			flags |= unix.MS_NODIRATIME
		case "nosymfollow":
			flags |= unix.MS_NOSYMFOLLOW
		case "noatime":
			atime = unix.MS_NOATIME
		case "relatime":
			atime = unix.MS_RELATIME
		}
	}
	return flags | atime
}

// SetReadOnly makes the mount at dirfd/p read-only (recursive: with every
// mount below it) keeping the flags the kernel locked; for oci/mounts.
func SetReadOnly(dirfd int, p string, recursive bool) error {
	return setReadOnly(dirfd, p, recursive)
}
