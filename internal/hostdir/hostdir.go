// Package hostdir judges the host directories sandbox keeps or reads its
// own things in (its state, a persistent --upper, a --rootfs or --layer):
// whether a user other than the caller, or root, could change what is in
// them.
package hostdir

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Risk is a directory another user could change.
type Risk struct {
	Path       string
	Owner      int
	Mode       uint32
	OtherOwner bool // owned by another user; else writable by others, not sticky
}

func (r *Risk) String() string {
	if r.OtherOwner {
		return fmt.Sprintf("%s belongs to uid %d", r.Path, r.Owner)
	}
	return fmt.Sprintf("%s is writable by others (mode %04o, not sticky)", r.Path, r.Mode&0o7777)
}

// Check looks at p and each directory above it: each must be owned by uid
// or root and writable by no one else unless sticky (whose entries only
// their owners can rename or remove). It returns the first that is not,
// or nil; an error when a path is not a directory or cannot be read. With
// missing, a part of p that does not exist yet is skipped (the directory
// that will hold it decides).
func Check(p string, uid int, missing bool) (*Risk, error) {
	for {
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		switch {
		case err != nil && missing && os.IsNotExist(err) && p != "/":
		case err != nil:
			return nil, fmt.Errorf("%s: %w", p, err)
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return nil, fmt.Errorf("%s is %s, not a directory", p, FileType(st.Mode))
		case int(st.Uid) != uid && st.Uid != 0 && !outsideOwner(int(st.Uid)):
			return &Risk{Path: p, Owner: int(st.Uid), Mode: st.Mode, OtherOwner: true}, nil
		case st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
			return &Risk{Path: p, Owner: int(st.Uid), Mode: st.Mode}, nil
		}
		if p == "/" {
			return nil, nil
		}
		p = filepath.Dir(p)
	}
}

// outsideOwner: in a user namespace other than the host's (inside a
// container, or another sandbox), a directory of an id the namespace does
// not map shows as the overflow uid: the host's root owns / there. It is
// trusted as root is: no one inside the namespace can act as it.
func outsideOwner(owner int) bool {
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(owner) {
		return false
	}
	m, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && strings.Join(strings.Fields(string(m)), " ") != "0 0 4294967295"
}

// FileType names the type of a file mode for messages.
func FileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFREG:
		return "a file"
	}
	return "not a directory"
}
