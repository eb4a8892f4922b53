package idmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"sandbox/internal/hostpath"

	"golang.org/x/sys/unix"
)

// HelperError says why newuidmap/newgidmap cannot be used, and the fix.
type HelperError struct {
	Path    string // the helper as given
	Problem string // e.g. "newuidmap not found in PATH"
	Fix     string // command(s) that fix it
	Err     error  // underlying error, if any
}

func (e *HelperError) Error() string { return e.Problem + " (fix: " + e.Fix + ")" }
func (e *HelperError) Unwrap() error { return e.Err }

const installFix = "`apt-get install uidmap`, or your distribution's shadow-utils package"

// Capability bits (linux/capability.h).
const (
	capSetgid = 6
	capSetuid = 7
)

// CheckHelpers checks newuidmap and newgidmap from PATH. When both fail
// the error wraps both (Decide reports each).
func CheckHelpers() error {
	u, g := CheckHelper(UID.Helper()), CheckHelper(GID.Helper())
	if u != nil && g != nil {
		return fmt.Errorf("%w; %w", u, g) // one line
	}
	return errors.Join(u, g)
}

// CheckHelper reports whether the helper (a name looked up in PATH, or a
// path) can write maps for us: it must exist and be setuid root or carry
// the file capability cap_setuid (cap_setgid for a name containing "gid",
// i.e. newgidmap), on a filesystem not mounted nosuid, and this process
// must not have no_new_privs set, which disables both.
func CheckHelper(path string) error {
	name := filepath.Base(path)
	capBit, capName := uint(capSetuid), "cap_setuid"
	if strings.Contains(name, "gid") {
		capBit, capName = capSetgid, "cap_setgid"
	}
	full, err := hostpath.Look(path)
	if err != nil {
		problem := fmt.Sprintf("%s is not usable: %v", name, err)
		if errors.Is(err, exec.ErrNotFound) {
			problem = name + " not found in " + hostpath.Searched()
		}
		return &HelperError{Path: path, Err: err, Problem: problem, Fix: installFix}
	}
	var st unix.Stat_t
	if err := unix.Stat(full, &st); err != nil {
		return &HelperError{Path: path, Err: err,
			Problem: fmt.Sprintf("%s is not usable: stat %s: %v", name, full, err),
			Fix:     installFix}
	}
	var buf [64]byte
	n, xerr := unix.Getxattr(full, "security.capability", buf[:])
	var xattr []byte
	if xerr == nil {
		xattr = buf[:n]
	}
	if err := privileged(st.Mode, st.Uid, xattr, capBit); err != nil {
		fix := fmt.Sprintf("`chmod u+s %s` or `setcap %s+ep %s`", full, capName, full)
		if st.Uid != 0 {
			fix = fmt.Sprintf("`chown root %s && chmod u+s %s` or `setcap %s+ep %s`", full, full, capName, full)
		}
		return &HelperError{Path: path, Err: err,
			Problem: fmt.Sprintf("%s is neither setuid root nor has the %s file capability (%v)", full, capName, err),
			Fix:     fix}
	}
	var sfs unix.Statfs_t
	// ST_NOSUID has the value of MS_NOSUID; x/sys/unix does not export it.
	if err := unix.Statfs(full, &sfs); err == nil && int64(sfs.Flags)&unix.MS_NOSUID != 0 {
		return &HelperError{Path: path,
			Problem: fmt.Sprintf("%s is on a filesystem mounted nosuid, which ignores its privileges", full),
			Fix:     "remount that filesystem without nosuid, or install uidmap on one without it"}
	}
	if nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil && nnp == 1 {
		return &HelperError{Path: path,
			Problem: fmt.Sprintf("this process runs with no_new_privs, so %s cannot gain privileges", name),
			Fix:     "run sandbox outside NoNewPrivileges=yes / --security-opt no-new-privileges"}
	}
	return nil
}

// privileged decides from a file's mode, owner and security.capability
// xattr (nil if none) whether it runs with capability bit capBit.
func privileged(mode, uid uint32, xattr []byte, capBit uint) error {
	if mode&unix.S_ISUID != 0 && uid == 0 {
		return nil
	}
	if xattr == nil {
		return errors.New("no setuid bit, no file capabilities")
	}
	c, err := parseVFSCap(xattr)
	if err != nil {
		return err
	}
	if c.Version == 3 && c.RootID != 0 {
		// Namespaced file caps only apply inside the user namespace whose root is RootID.
		return fmt.Errorf("its file capabilities belong to the user namespace of host uid %d", c.RootID)
	}
	if c.Permitted&(1<<capBit) == 0 {
		return fmt.Errorf("permitted file capabilities %#x lack bit %d", c.Permitted, capBit)
	}
	// The effective flag is not needed: shadow's helpers raise the
	// permitted capability themselves.
	return nil
}

// fileCaps is the decoded struct vfs_cap_data / vfs_ns_cap_data (linux/capability.h).
type fileCaps struct {
	Version   int
	Permitted uint64
	Effective bool
	RootID    uint32 // version 3 only
}

const (
	vfsCapRevisionMask = 0xFF000000
	vfsCapFlagsEff     = 0x000001
)

// parseVFSCap decodes a security.capability xattr. It is little-endian:
// magic_etc, then {permitted, inheritable} u32 pairs (one for revision 1,
// two for 2 and 3), then rootid for revision 3. Sizes must match exactly,
// as the kernel requires.
func parseVFSCap(b []byte) (fileCaps, error) {
	if len(b) < 4 {
		return fileCaps{}, fmt.Errorf("security.capability xattr of %d bytes is too short", len(b))
	}
	le := binary.LittleEndian
	magic := le.Uint32(b)
	c := fileCaps{Effective: magic&vfsCapFlagsEff != 0}
	var want int
	switch magic & vfsCapRevisionMask {
	case 0x01000000:
		c.Version, want = 1, 12
	case 0x02000000:
		c.Version, want = 2, 20
	case 0x03000000:
		c.Version, want = 3, 24
	default:
		return fileCaps{}, fmt.Errorf("security.capability xattr has unknown revision %#x", magic&vfsCapRevisionMask)
	}
	if len(b) != want {
		return fileCaps{}, fmt.Errorf("security.capability xattr revision %d has %d bytes, want %d", c.Version, len(b), want)
	}
	c.Permitted = uint64(le.Uint32(b[4:]))
	if c.Version >= 2 {
		c.Permitted |= uint64(le.Uint32(b[12:])) << 32
	}
	if c.Version == 3 {
		c.RootID = le.Uint32(b[20:])
	}
	return c, nil
}
