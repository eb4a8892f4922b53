// Package fuseoverlay mounts overlay filesystems inside a user namespace:
// kernel overlayfs (with userxattr, as an unprivileged mounter needs) or
// fuse-overlayfs, and records which driver made a persistent upper.
package fuseoverlay

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Driver names an overlay implementation (or auto, the choice per mount).
type Driver string

// Drivers.
const (
	Auto   Driver = "auto"
	Kernel Driver = "kernel"
	Fuse   Driver = "fuse"
)

// ParseDriver checks a --overlay value.
func ParseDriver(s string) (Driver, error) {
	switch d := Driver(s); d {
	case "":
		return Auto, nil
	case Auto, Kernel, Fuse:
		return d, nil
	}
	return "", fmt.Errorf("--overlay %q: want auto, kernel or fuse", s)
}

// Name is the driver as messages name it.
func (d Driver) Name() string {
	if d == Fuse {
		return "fuse-overlayfs"
	}
	if d == Kernel {
		return "kernel overlayfs"
	}
	return string(d)
}

// Layers describes one overlay mount. Lower is ordered top first, as the
// kernel's lowerdir option is. Upper and Work are empty for a read-only
// overlay.
type Layers struct {
	Lower []string
	Upper string
	Work  string
}

// Options renders the kernel overlayfs mount data. Paths are escaped the way
// the kernel's option parser expects (backslash before ',' ':' '\').
func (l Layers) Options() (string, error) {
	if err := l.check(); err != nil {
		return "", err
	}
	esc := make([]string, len(l.Lower))
	for i, d := range l.Lower {
		esc[i] = escape(d)
	}
	var b strings.Builder
	b.WriteString("lowerdir=" + strings.Join(esc, ":"))
	if l.Upper != "" {
		b.WriteString(",upperdir=" + escape(l.Upper) + ",workdir=" + escape(l.Work))
	}
	// userxattr: an unprivileged mounter cannot write trusted.* xattrs.
	b.WriteString(",userxattr")
	return b.String(), nil
}

func (l Layers) check() error {
	if len(l.Lower) == 0 {
		return fmt.Errorf("overlay needs at least one lower layer")
	}
	if (l.Upper == "") != (l.Work == "") {
		return fmt.Errorf("overlay needs both an upper and a work directory, or neither")
	}
	if len(l.Lower) == 1 && l.Upper == "" {
		// The kernel refuses a single lower layer without an upper.
		return fmt.Errorf("a read-only overlay needs two lower layers or more")
	}
	return nil
}

// MountError says which overlay could not be mounted and why.
type MountError struct {
	Target string
	Data   string
	Err    error
}

func (e *MountError) Error() string {
	return fmt.Sprintf("mounting overlay on %s (%s): %v", e.Target, e.Data, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }

// MountKernel mounts kernel overlayfs at target.
func MountKernel(l Layers, target string) error {
	data, err := l.Options()
	if err != nil {
		return err
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return &MountError{Target: target, Data: data, Err: err}
	}
	return nil
}

// escape backslash-escapes the option separators in a path. A loop, not
// a strings.Replacer: building one costs more than a dozen paths' worth
// of copying, and init mounts a dozen overlays on every start.
func escape(p string) string {
	if !strings.ContainsAny(p, `\,:`) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '\\', ',', ':':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
