// Package inroot opens and creates paths inside a directory tree without
// ever leaving it: every lookup is openat2(2) with RESOLVE_IN_ROOT, so ".."
// and absolute symlinks are resolved as if the tree were "/" (a rootfs that
// holds `etc -> /` cannot make a mount land on the host).
package inroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// Handle is an O_PATH descriptor of a path inside the root; the caller
// closes it. A bare descriptor, not an *os.File: init takes ~130 of them
// to build a root, and each *os.File costs an fcntl and a cleanup.
type Handle struct{ fd int }

// Fd is the descriptor (-1 once closed).
func (h *Handle) Fd() uintptr { return uintptr(h.fd) }

// Close closes the descriptor; a second Close does nothing.
func (h *Handle) Close() error {
	if h.fd < 0 {
		return nil
	}
	fd := h.fd
	h.fd = -1
	return unix.Close(fd)
}

// Open returns an O_PATH handle for path (taken as relative to root).
func Open(root *os.File, path string) (*Handle, error) {
	rel := clean(path)
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: resolve,
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	return &Handle{fd}, nil
}

// Check is asked before anything is made in the directory dirfd (a
// missing directory of a path, or its file); an error stops the making.
type Check func(dirfd int) error

// MkdirAll creates path and its missing parents inside root and returns a
// handle to it. Existing components may be symlinks; they resolve inside root.
func MkdirAll(root *os.File, path string, mode os.FileMode) (*Handle, error) {
	return mkdirAll(root, path, mode, nil)
}

func mkdirAll(root *os.File, path string, mode os.FileMode, may Check) (*Handle, error) {
	rel := clean(path)
	if rel == "." {
		return Open(root, ".")
	}
	parts := strings.Split(rel, "/")
	// parent is the handle of parts[:i] as the walk resolved it (nil: the
	// root), kept for the mkdir of component i rather than looked up again.
	var parent *Handle
	defer func() {
		if parent != nil {
			parent.Close()
		}
	}()
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		h, err := Open(root, prefix)
		if err != nil {
			if !errors.Is(err, unix.ENOENT) {
				return nil, err
			}
			dir := int(root.Fd())
			if parent != nil {
				dir = parent.fd
			}
			if may != nil {
				if err := may(dir); err != nil {
					return nil, &os.PathError{Op: "mkdir", Path: "/" + prefix, Err: err}
				}
			}
			err = unix.Mkdirat(dir, parts[i], uint32(mode.Perm()))
			if err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, &os.PathError{Op: "mkdir", Path: "/" + prefix, Err: err}
			}
			h, err = Open(root, prefix)
			if err != nil {
				// EEXIST followed by ENOENT: a symlink is in the way whose target
				// does not exist inside the root. Refused, never followed out.
				return nil, fmt.Errorf("creating /%s: a symlink there points to a path missing inside the root: %w", prefix, err)
			}
		}
		if i == len(parts)-1 {
			return h, nil
		}
		if parent != nil {
			parent.Close()
		}
		parent = h
	}
	return nil, fmt.Errorf("creating %s: empty path", path)
}

// CreateFile makes sure a regular file exists at path (parents created) and
// returns an O_PATH handle to it; used as a mount point for file binds.
func CreateFile(root *os.File, path string) (*Handle, error) {
	return createFile(root, path, 0, nil)
}

// CreateFileChecked is CreateFile that asks may before it makes anything,
// wherever the path's symlinks lead.
func CreateFileChecked(root *os.File, path string, may Check) (*Handle, error) {
	return createFile(root, path, 0, may)
}

func createFile(root *os.File, path string, depth int, may Check) (*Handle, error) {
	if h, err := Open(root, path); err == nil {
		return h, nil
	}
	rel := clean(path)
	parent, err := mkdirAll(root, filepath.Dir(rel), 0o755, may)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	// Asked only where a file is to be made: a name that exists (a
	// dangling symlink, below) makes nothing here.
	var st unix.Stat_t
	err = unix.Fstatat(int(parent.Fd()), filepath.Base(rel), &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		if may != nil {
			if err := may(int(parent.Fd())); err != nil {
				return nil, &os.PathError{Op: "create", Path: path, Err: err}
			}
		}
		fd, err := unix.Openat(int(parent.Fd()), filepath.Base(rel),
			unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, &os.PathError{Op: "create", Path: path, Err: err}
		}
		if err == nil {
			unix.Close(fd)
			return Open(root, path)
		}
	} else if err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	// EEXIST: maybe a dangling symlink (/etc/resolv.conf ->
	// ../run/systemd/resolve/stub-resolv.conf with /run empty inside): the
	// file is made where it points, inside the root.
	h, openErr := Open(root, path)
	if openErr == nil || !errors.Is(openErr, unix.ENOENT) || depth >= maxLinks {
		return h, openErr
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(parent.Fd()), filepath.Base(rel), buf)
	if err != nil {
		return nil, openErr
	}
	target := string(buf[:n])
	if !filepath.IsAbs(target) {
		target = filepath.Join("/", filepath.Dir(rel), target)
	}
	return createFile(root, target, depth+1, may)
}

// maxLinks bounds the symlinks CreateFile follows (as the kernel's 40).
const maxLinks = 40

// ProcPath is the magic-link path of an open handle, usable as a mount
// source or target: the kernel uses the resolved object, not a path that
// could be swapped underneath.
func ProcPath(f interface{ Fd() uintptr }) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

func clean(path string) string {
	rel := strings.TrimLeft(filepath.Clean("/"+path), "/")
	if rel == "" {
		return "."
	}
	return rel
}
