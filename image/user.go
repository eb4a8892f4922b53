package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// User is the identity an image's User (USER[:GROUP]) stands for.
type User struct {
	UID, GID uint32
	Home     string // from the image's /etc/passwd; "" when it has no entry
}

// ErrNoUser is a user or group name the image's own files do not have.
var ErrNoUser = errors.New("not in the image")

// maxUserFile bounds /etc/passwd and /etc/group as read from an image.
const maxUserFile = 4 << 20

// maxSymlinks bounds the symlinks followed in one lookup (the kernel's 40).
const maxSymlinks = 40

// LookupUser resolves USER[:GROUP] the way runc does for an image's User,
// in the image's own /etc/passwd and /etc/group, read from its layer
// directories (bottom first, as Resolve returns them) as the overlay shows
// them: never the host's files. A numeric USER needs no entry (its group is
// then 0, its Home ""); a name must have one. A numeric GROUP needs none; a
// name must be in /etc/group. An empty USER is uid 0 and reads nothing.
// A numeric USER whose /etc/passwd cannot be read (a loop, a directory, too
// big) is taken as having no entry, as runc does.
func LookupUser(layers []string, user, group string) (User, error) {
	var u User
	if user != "" {
		id, numeric := parseID(user)
		ents, err := readIDFile(layers, "/etc/passwd", func(f []string) bool {
			if numeric {
				n, ok := parseID(f[2])
				return ok && n == id
			}
			return f[0] == user
		})
		switch {
		case err == nil:
			uid, ok1 := parseID(ents[2])
			gid, ok2 := parseID(ents[3])
			if !ok1 || !ok2 {
				return u, fmt.Errorf("user %q: its /etc/passwd entry has no valid uid and gid", user)
			}
			u = User{UID: uid, GID: gid, Home: ents[5]}
		case numeric: // no entry, or a file that cannot be read: the ids need none (as runc)
			u.UID = id
		case errors.Is(err, ErrNoUser):
			return u, fmt.Errorf("user %q: %w's /etc/passwd", user, ErrNoUser)
		default:
			return u, err
		}
	}
	if group == "" {
		return u, nil
	}
	if id, numeric := parseID(group); numeric {
		u.GID = id
		return u, nil
	}
	ents, err := readIDFile(layers, "/etc/group", func(f []string) bool { return f[0] == group })
	if errors.Is(err, ErrNoUser) {
		return u, fmt.Errorf("group %q: %w's /etc/group", group, ErrNoUser)
	}
	if err != nil {
		return u, err
	}
	gid, ok := parseID(ents[2])
	if !ok {
		return u, fmt.Errorf("group %q: its /etc/group entry has no valid gid", group)
	}
	u.GID = gid
	return u, nil
}

// parseID reads a uid or gid: decimal, below 2^32-1 (which is -1, "no id").
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil && n < 1<<32-1
}

// readIDFile returns the fields of the first line of the image's file p
// (passwd: 7 fields, group: 4) that match; ErrNoUser when none does or the
// image has no such file. Comment and malformed lines are skipped.
func readIDFile(layers []string, p string, match func([]string) bool) ([]string, error) {
	min := 4
	if p == "/etc/passwd" {
		min = 7
	}
	b, err := readInLayers(layers, p, maxUserFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoUser
	}
	if err != nil {
		return nil, fmt.Errorf("reading the image's %s: %w", p, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxUserFile)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) >= min && match(f) {
			return f, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the image's %s: %w", p, err)
	}
	return nil, ErrNoUser
}

// readInLayers reads the regular file at the absolute path p as the
// overlay of layers (bottom first) shows it, at most max bytes.
func readInLayers(layers []string, p string, max int64) ([]byte, error) {
	top := make([]string, len(layers))
	for i, l := range layers {
		top[len(layers)-1-i] = l
	}
	for range maxSymlinks + 1 {
		layer, rel, next, err := walkLayers(top, p)
		if err != nil {
			return nil, err
		}
		if next != "" {
			p = next
			continue
		}
		return readBeneath(layer, rel, max)
	}
	return nil, fmt.Errorf("%s: %w", p, unix.ELOOP)
}

// walkLayers looks p up component by component through layers (top
// first) as overlayfs does: the topmost entry of a name decides; a 0:0
// character device (whiteout) hides the name below it; directories merge
// down to the first opaque one or the first non-directory. It returns the
// layer and relative path of the file, or, when a component is a symlink,
// the path to look up instead (resolved as if the image were "/").
func walkLayers(top []string, p string) (layer, rel, next string, err error) {
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	if clean == "" {
		return "", "", "", fmt.Errorf("/: %w", unix.EISDIR)
	}
	comps := strings.Split(clean, "/")
	cands := top
	for i := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		last := i == len(comps)-1
		var below []string
		found := false
	layers:
		for _, l := range cands {
			full := filepath.Join(l, prefix)
			var st unix.Stat_t
			if err := unix.Lstat(full, &st); errors.Is(err, unix.ENOENT) {
				continue
			} else if err != nil {
				return "", "", "", fmt.Errorf("/%s: %w", prefix, err)
			}
			kind := st.Mode & unix.S_IFMT
			if found { // a lower layer: merged only while it is a directory
				if kind != unix.S_IFDIR {
					break
				}
				below = append(below, l)
				if opaque(full) {
					break
				}
				continue
			}
			found = true
			switch {
			case kind == unix.S_IFCHR && st.Rdev == 0:
				return "", "", "", fmt.Errorf("/%s: %w", prefix, fs.ErrNotExist) // a whiteout
			case kind == unix.S_IFLNK:
				target, err := os.Readlink(full)
				if err != nil {
					return "", "", "", fmt.Errorf("/%s: %w", prefix, err)
				}
				if !strings.HasPrefix(target, "/") {
					target = path.Join("/", path.Dir("/"+prefix), target)
				}
				return "", "", path.Join("/", target, strings.Join(comps[i+1:], "/")), nil
			case kind == unix.S_IFDIR:
				if last {
					return "", "", "", fmt.Errorf("/%s: %w", prefix, unix.EISDIR)
				}
				below = append(below, l)
				if opaque(full) {
					break layers
				}
			case last:
				return l, prefix, "", nil
			default:
				return "", "", "", fmt.Errorf("/%s: %w", prefix, fs.ErrNotExist) // not a directory
			}
		}
		if !found {
			return "", "", "", fmt.Errorf("/%s: %w", prefix, fs.ErrNotExist)
		}
		cands = below
	}
	return "", "", "", fmt.Errorf("/%s: %w", clean, fs.ErrNotExist) // not reached: the last component returns
}

// opaque says the layer directory hides the lower layers' entries.
func opaque(dir string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(dir, opaqueXattr, b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

// readBeneath reads the regular file rel inside dir, at most max bytes,
// without following any symlink (walkLayers has resolved them).
func readBeneath(dir, rel string, max int64) ([]byte, error) {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening layer %s: %w", filepath.Base(dir), err)
	}
	defer unix.Close(d)
	fd, err := unix.Openat2(d, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("/%s: not a regular file", rel)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", rel, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("/%s: over %d bytes", rel, max)
	}
	return b, nil
}
