package spec

import (
	"fmt"
	"os"
	"path/filepath"

	"sandbox/cgroupdelegate"
	"sandbox/rootfs"

	"sandbox/journal"

	"golang.org/x/sys/unix"
)

// The sandbox's ephemeral writable storage (--ephemeral, --ephemeral-size):
// the root skeleton, every ephemeral upper layer and every writable tmpfs
// (/tmp, /run, /dev, /dev/shm, the homes, --tmpfs) live in one staging area,
// so one budget bounds what a sandbox can write outside its binds.
const (
	EphemeralMemory = "memory" // a tmpfs of --ephemeral-size (the default)
	EphemeralDisk   = "disk"   // a directory under the user's cache directory
)

// Defaults of the memory mode: a quarter of RAM, at most 8 GiB, and at
// most half of --memory (the tmpfs's pages are charged to the sandbox's
// cgroup: a full tmpfs then says ENOSPC before the OOM killer acts).
const (
	ephemeralRAMDivisor = 4
	ephemeralCap        = 8 << 30
	ephemeralMin        = 1 << 20
	// One inode per 2 KiB of the size (at least ephemeralMinInodes): every
	// file with data takes a page of the size anyway, so this leaves room for
	// as many directories, links and empty files, and bounds the kernel
	// memory their inodes take (~1 KiB each) to about half the size.
	ephemeralBytesPerInode = 2048
	ephemeralMinInodes     = 8192
)

// ephemeralConfig resolves --ephemeral and --ephemeral-size. The disk
// mode's directory is made by Run (Prepare changes nothing on the host).
func ephemeralConfig(opts Options, s *Spec) (rootfs.Ephemeral, error) {
	var eph rootfs.Ephemeral
	switch orDefault(opts.Ephemeral, EphemeralMemory) {
	case EphemeralMemory:
		size, err := ephemeralSize(opts.EphemeralSize, s.Resources.Limits.Memory)
		if err != nil {
			return eph, err
		}
		eph.Size = size
		eph.Inodes = max(size/ephemeralBytesPerInode, ephemeralMinInodes)
	case EphemeralDisk:
		if opts.EphemeralSize != "" {
			return eph, journal.Usagef("--ephemeral-size %s: sizes --ephemeral=memory only; --ephemeral=disk is bounded by the free space of the file system holding %s",
				opts.EphemeralSize, ephemeralBaseHint())
		}
		base, err := EphemeralBase()
		if err != nil {
			return eph, journal.Usagef("--ephemeral=disk: %v", err)
		}
		s.EphemeralBase = base
	default:
		return eph, journal.Usagef("--ephemeral=%s: use memory or disk", opts.Ephemeral)
	}
	return eph, nil
}

// ephemeralSize is --ephemeral-size, or the default for a sandbox whose
// memory limit is memLimit (0: none), rounded up to whole pages.
func ephemeralSize(flag string, memLimit int64) (int64, error) {
	var size int64
	if flag != "" {
		n, err := cgroupdelegate.ParseSize(flag)
		if err != nil {
			return 0, journal.Usagef("--ephemeral-size %s: %v", flag, err)
		}
		if n < ephemeralMin {
			return 0, journal.Usagef("--ephemeral-size %s: must be at least 1M", flag)
		}
		size = n
	} else {
		size = DefaultEphemeralSize(TotalRAM(), memLimit)
	}
	page := int64(os.Getpagesize())
	return (size + page - 1) / page * page, nil
}

// DefaultEphemeralSize is the memory mode's default size on a host with
// ram bytes of memory, for a sandbox limited to memLimit bytes (0: none).
func DefaultEphemeralSize(ram, memLimit int64) int64 {
	size := min(ram/ephemeralRAMDivisor, ephemeralCap)
	if memLimit > 0 {
		size = min(size, memLimit/2)
	}
	return max(size&^(1<<20-1), ephemeralMin) // whole MiB, for the eye
}

// TotalRAM is the host's memory in bytes.
func TotalRAM() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return ephemeralCap * ephemeralRAMDivisor // unknown: the cap
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// EphemeralBase is where --ephemeral=disk directories go:
// $XDG_CACHE_HOME/sandbox/ephemeral, else ~/.cache/sandbox/ephemeral.
func EphemeralBase() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the ephemeral data: %w", err)
	}
	if !filepath.IsAbs(d) {
		// $HOME/.cache with a relative HOME: below whatever the working
		// directory is.
		return "", fmt.Errorf("no cache directory for the ephemeral data: $HOME %q is not an absolute path (set HOME or XDG_CACHE_HOME)", os.Getenv("HOME"))
	}
	return filepath.Join(d, "sandbox", "ephemeral"), nil
}

func ephemeralBaseHint() string {
	if b, err := EphemeralBase(); err == nil {
		return b
	}
	return "$XDG_CACHE_HOME/sandbox/ephemeral"
}
