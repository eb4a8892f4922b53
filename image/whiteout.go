package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Whiteouts as layers carry them (OCI image spec) and as kernel overlayfs
// reads them in a lower layer mounted with userxattr
// (Documentation/filesystems/overlayfs.rst): a removed NAME is a 0:0
// character device NAME (mknod of a whiteout needs no privilege since
// Linux 5.8), an opaque directory has the xattr user.overlay.opaque=y.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = "user.overlay.opaque"
)

// whiteout converts the entry base in dir when it is a whiteout; handled
// says it was one.
func whiteout(dir, base string) (handled bool, err error) {
	if base == opaqueMarker {
		if err := unix.Lsetxattr(dir, opaqueXattr, []byte("y"), 0); err != nil {
			return true, fmt.Errorf("marking %s opaque (xattr %s): %w", dir, opaqueXattr, err)
		}
		return true, nil
	}
	name, ok := strings.CutPrefix(base, whiteoutPrefix)
	if !ok {
		return false, nil
	}
	if strings.HasPrefix(name, whiteoutPrefix) {
		return true, nil // aufs metadata (.wh..wh.plnk, .wh..wh.aufs) of old docker images: nothing to see
	}
	if name == "" || name == "." || name == ".." {
		return true, &UnsafeError{filepath.Join(dir, base), "not a valid whiteout"}
	}
	target := filepath.Join(dir, name)
	if err := os.RemoveAll(target); err != nil {
		return true, fmt.Errorf("whiteout %s: %w", target, err)
	}
	if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
		return true, fmt.Errorf("whiteout %s (mknod of a 0:0 character device, allowed without privilege since Linux 5.8): %w", target, err)
	}
	return true, nil
}
