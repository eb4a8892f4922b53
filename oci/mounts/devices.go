package mounts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/internal/inroot"
	"sandbox/internal/proc"
)

func u32(v uint32) *uint32 { return &v }

var rw = os.FileMode(0o666)

// defaultDevices are made in every container whose /dev is not a bind (as
// runc and the runtime spec's "default devices" say).
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &rw, UID: u32(0), GID: u32(0)},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5, FileMode: &rw, UID: u32(0), GID: u32(0)},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7, FileMode: &rw, UID: u32(0), GID: u32(0)},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8, FileMode: &rw, UID: u32(0), GID: u32(0)},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9, FileMode: &rw, UID: u32(0), GID: u32(0)},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0, FileMode: &rw, UID: u32(0), GID: u32(0)},
}

func deviceType(t string) (uint32, error) {
	switch t {
	case "c", "u":
		return unix.S_IFCHR, nil
	case "b":
		return unix.S_IFBLK, nil
	case "p":
		return unix.S_IFIFO, nil
	}
	return 0, fmt.Errorf("%q is not one of c, u, b, p", t)
}

// InUserNS says whether this process is in a user namespace other than the
// initial one (whose uid_map maps all of 0..2^32-2).
func InUserNS() bool {
	data, err := proc.ReadFile("/proc/self/uid_map", 64<<10)
	if err != nil {
		return true // unknown: take the way that works in both
	}
	f := strings.Fields(string(data))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// devices makes linux.devices and the default devices, the /dev symlinks
// and /dev/ptmx, unless /dev is a bind mount: then the devices asked for
// must be there already (nothing is made in a directory of the host's).
func devices(root *os.File, s *specs.Spec, userns bool) error {
	var list []specs.LinuxDevice
	if s.Linux != nil {
		list = s.Linux.Devices
	}
	devBind := -1
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if filepath.Clean(m.Destination) != "/dev" {
			continue
		}
		devBind = -1
		if o, err := parseOptions(m.Options); err == nil {
			if k, _ := kind(m, o); k == "bind" {
				devBind = i
			}
		}
	}
	if devBind >= 0 {
		for i, d := range list {
			if err := present(root, d); err != nil {
				return fmt.Errorf("linux.devices[%d] (%s): /dev is a bind mount (mounts[%d]), where no device is made: %w", i, d.Path, devBind, err)
			}
		}
		return nil
	}
	seen := map[string]bool{}
	for i, d := range list {
		if err := makeDevice(root, d, userns); err != nil {
			return fmt.Errorf("linux.devices[%d] (%s): %w", i, d.Path, err)
		}
		seen[filepath.Clean(d.Path)] = true
	}
	for _, d := range defaultDevices {
		if seen[d.Path] {
			continue
		}
		if err := makeDevice(root, d, userns); err != nil {
			return fmt.Errorf("default device %s: %w", d.Path, err)
		}
	}
	return devLinks(root)
}

func present(root *os.File, d specs.LinuxDevice) error {
	h, st, err := openStat(root, d.Path)
	if err != nil {
		return err
	}
	h.Close()
	return sameDevice(st, d)
}

// openStat opens p inside root and stats what it opened.
func openStat(root *os.File, p string) (*inroot.Handle, *unix.Stat_t, error) {
	h, err := inroot.Open(root, p)
	if err != nil {
		return nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		h.Close()
		return nil, nil, err
	}
	return h, &st, nil
}

func sameDevice(st *unix.Stat_t, d specs.LinuxDevice) error {
	typ, err := deviceType(d.Type)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != typ || (typ != unix.S_IFIFO && st.Rdev != unix.Mkdev(uint32(d.Major), uint32(d.Minor))) {
		return fmt.Errorf("not the device %s %d:%d", d.Type, d.Major, d.Minor)
	}
	return nil
}

// makeDevice makes d by mknod, or, in a user namespace (where mknod of
// devices is refused), by binding the host's node of the same path.
func makeDevice(root *os.File, d specs.LinuxDevice, userns bool) error {
	if !userns {
		err := mknod(root, d)
		if !errors.Is(err, unix.EPERM) {
			return err
		}
	}
	return bindDevice(root, d)
}

func mknod(root *os.File, d specs.LinuxDevice) error {
	typ, err := deviceType(d.Type)
	if err != nil {
		return err
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm()) | uint32(*d.FileMode)&0o7000
	}
	parent, err := mkdirAll(root, filepath.Dir(d.Path), 0o755)
	if err != nil {
		return err
	}
	defer parent.Close()
	dir, name := int(parent.Fd()), filepath.Base(d.Path)
	dev := int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	err = unix.Mknodat(dir, name, typ|mode, dev)
	if errors.Is(err, unix.EEXIST) {
		// Whatever the rootfs had there is replaced (not a directory).
		if err := unix.Unlinkat(dir, name, 0); err != nil {
			return fmt.Errorf("replacing what is there: %w", err)
		}
		err = unix.Mknodat(dir, name, typ|mode, dev)
	}
	if err != nil {
		return err
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// mknod's mode went through the umask.
	if err := unix.Fchmodat(dir, name, mode, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

func bindDevice(root *os.File, d specs.LinuxDevice) error {
	src, err := unix.Open(d.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mknod is refused in a user namespace and the host's node cannot be bound: %w", err)
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	if err := sameDevice(&st, d); err != nil {
		return fmt.Errorf("the host's %s, to bind in a user namespace, is %w", d.Path, err)
	}
	h, err := createFile(root, d.Path)
	if err != nil {
		return err
	}
	defer h.Close()
	return unix.Mount(inroot.ProcPath(fdOf(src)), inroot.ProcPath(h), "", unix.MS_BIND, "")
}

// devLinks makes /dev/fd, stdin, stdout, stderr, core and /dev/ptmx ->
// pts/ptmx (the container's devpts instance).
func devLinks(root *os.File) error {
	dev, err := inroot.MkdirAll(root, "/dev", 0o755)
	if err != nil {
		return err
	}
	defer dev.Close()
	links := [][2]string{
		{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
		{"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"core", "/proc/kcore"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[1], int(dev.Fd()), l[0]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("/dev/%s: %w", l[0], err)
		}
	}
	if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("/dev/ptmx: %w", err)
	}
	if err := unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx"); err != nil {
		return fmt.Errorf("/dev/ptmx: %w", err)
	}
	return nil
}

// mountOf is the mountinfo entry of the mount fd is on.
func mountOf(fd int) (*mountinfo.Info, error) {
	data, err := proc.ReadFile("/proc/self/fdinfo/"+strconv.Itoa(fd), 64<<10)
	if err != nil {
		return nil, err
	}
	id := -1
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			id, err = strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("fdinfo mnt_id: %w", err)
			}
		}
	}
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) { return m.ID != id, m.ID == id })
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("mount %d is not in /proc/self/mountinfo", id)
	}
	return ms[0], nil
}

// Copy-up bounds: a tmpfs over a directory starts with a copy of it, as
// long as the directory is of a reasonable size.
const (
	maxCopyDepth   = 64
	maxCopyEntries = 1 << 16
)

// copyUp copies the directory below (an fd opened before the tmpfs covered
// it) into the tmpfs now at dest. Nothing is followed: every name is opened
// with O_NOFOLLOW relative to its parent's descriptor.
func copyUp(root *os.File, below int, dest string) error {
	h, err := inroot.Open(root, dest)
	if err != nil {
		return err
	}
	defer h.Close()
	n := 0
	if err := copyDir(below, int(h.Fd()), 0, &n); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(below, &st); err != nil {
		return err
	}
	return copyOwner(int(h.Fd()), "", &st)
}

func copyOwner(dir int, name string, st *unix.Stat_t) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fchownat(dir, name, int(st.Uid), int(st.Gid), flags); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	if name == "" {
		return unix.Chmod("/proc/self/fd/"+strconv.Itoa(dir), st.Mode&0o7777)
	}
	return unix.Fchmodat(dir, name, st.Mode&0o7777, 0)
}

func copyDir(src, dst, depth int, n *int) error {
	if depth > maxCopyDepth {
		return fmt.Errorf("more than %d directories deep", maxCopyDepth)
	}
	d, err := unix.Dup(src)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(d), "")
	names, err := f.Readdirnames(maxCopyEntries + 1 - *n)
	f.Close()
	if err != nil && err != io.EOF {
		return err
	}
	*n += len(names)
	if *n > maxCopyEntries {
		return fmt.Errorf("more than %d entries", maxCopyEntries)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dst, name, 0o700); err != nil {
				return err
			}
			s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			t, err := unix.Openat(dst, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				unix.Close(s)
				return err
			}
			err = copyDir(s, t, depth+1, n)
			unix.Close(s)
			unix.Close(t)
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := copyFile(src, dst, name); err != nil {
				return err
			}
		case unix.S_IFLNK:
			buf := make([]byte, unix.PathMax)
			l, err := unix.Readlinkat(src, name, buf)
			if err != nil {
				return err
			}
			if err := unix.Symlinkat(string(buf[:l]), dst, name); err != nil {
				return err
			}
		default:
			continue // devices, fifos, sockets: not copied
		}
		if err := copyOwner(dst, name, &st); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst int, name string) error {
	s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	sf := os.NewFile(uintptr(s), name)
	defer sf.Close()
	t, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	tf := os.NewFile(uintptr(t), name)
	_, err = io.Copy(tf, sf)
	if cerr := tf.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxLinks bounds the dangling symlinks mkdirAll follows (the kernel's 40).
const maxLinks = 40

// mkdirAll is inroot.MkdirAll that also goes through a symlink whose
// target is missing inside the root, by making that target first (inside
// the root: `evil -> /tmp/hostdir` makes <root>/tmp/hostdir), as runc does
// for a mount destination. It never makes anything outside the root.
func mkdirAll(root *os.File, p string, mode os.FileMode) (*inroot.Handle, error) {
	return mkdirAllDepth(root, p, mode, 0)
}

func mkdirAllDepth(root *os.File, p string, mode os.FileMode, depth int) (*inroot.Handle, error) {
	h, err := inroot.MkdirAll(root, p, mode)
	if err == nil || depth >= maxLinks {
		return h, err
	}
	parts := strings.Split(strings.Trim(filepath.Clean("/"+p), "/"), "/")
	for i := range parts {
		prefix := "/" + strings.Join(parts[:i+1], "/")
		if ph, perr := inroot.Open(root, prefix); perr == nil {
			ph.Close()
			continue
		}
		parent, perr := inroot.Open(root, "/"+strings.Join(parts[:i], "/"))
		if perr != nil {
			return nil, err
		}
		buf := make([]byte, unix.PathMax)
		n, rerr := unix.Readlinkat(int(parent.Fd()), parts[i], buf)
		parent.Close()
		if rerr != nil {
			return nil, err // not a symlink: the first error says why
		}
		target := string(buf[:n])
		if !filepath.IsAbs(target) {
			target = "/" + strings.Join(parts[:i], "/") + "/" + target
		}
		th, terr := mkdirAllDepth(root, target, 0o755, depth+1)
		if terr != nil {
			return nil, terr
		}
		th.Close()
		return mkdirAllDepth(root, p, mode, depth+1)
	}
	return nil, err
}

// createFile is inroot.CreateFile whose parents may go through dangling
// symlinks (see mkdirAll).
func createFile(root *os.File, p string) (*inroot.Handle, error) {
	parent, err := mkdirAll(root, filepath.Dir(filepath.Clean("/"+p)), 0o755)
	if err != nil {
		return nil, err
	}
	parent.Close()
	return inroot.CreateFile(root, p)
}
