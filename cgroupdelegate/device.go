package cgroupdelegate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SysDevices resolves --io-max devices on a host: a path must be a block
// device node, MAJ:MIN must appear under Sys/dev/block, and a partition
// is refused with its disk named (io.max applies to whole disks only).
type SysDevices struct {
	Sys  string                           // /sys
	Stat func(string, *unix.Stat_t) error // unix.Stat
}

// HostDevices is SysDevices for this host.
func HostDevices() SysDevices { return SysDevices{Sys: "/sys", Stat: unix.Stat} }

// Resolve returns the device numbers of dev.
func (d SysDevices) Resolve(dev string) (uint32, uint32, error) {
	var major, minor uint32
	if strings.HasPrefix(dev, "/") {
		var st unix.Stat_t
		if err := d.Stat(dev, &st); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", dev, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return 0, 0, fmt.Errorf("%s is not a block device", dev)
		}
		major, minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	} else {
		ma, mi, _ := strings.Cut(dev, ":")
		a, err1 := strconv.ParseUint(ma, 10, 32)
		b, err2 := strconv.ParseUint(mi, 10, 32)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("%q is neither a block device path nor MAJ:MIN", dev)
		}
		major, minor = uint32(a), uint32(b)
	}
	node := filepath.Join(d.Sys, "dev", "block", fmt.Sprintf("%d:%d", major, minor))
	if _, err := os.Stat(node); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, 0, fmt.Errorf("no block device %d:%d on this host (see lsblk)", major, minor)
		}
		return 0, 0, err
	}
	if _, err := os.Stat(filepath.Join(node, "partition")); err == nil {
		disk := "its disk"
		// node/.. is resolved by the kernel after the symlink: the disk.
		if b, err := os.ReadFile(node + "/../dev"); err == nil {
			disk = "its disk " + strings.TrimSpace(string(b))
		}
		return 0, 0, fmt.Errorf("%s (%d:%d) is a partition; io.max limits whole disks: use %s", dev, major, minor, disk)
	}
	return major, minor, nil
}
