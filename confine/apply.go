package confine

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"
)

// allThreads makes a system call on every thread of the process (each call
// stops the world: ~0.2 ms). Used for no_new_privs only; builds with cgo
// cannot do it (ENOTSUP) and fall back to the calling thread.
//
// Capability sets, the bounding set and no_new_privs are per thread. The
// caller (init) locks itself to one OS thread before any of this and forks
// the payload from that same thread, so per-thread calls reach the payload.
func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if errno == unix.ENOTSUP {
		_, _, errno = unix.RawSyscall(trap, a1, a2, a3)
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// BoundCaps drops from the bounding set every capability not in keep (up to
// last), on the calling thread: the caller must be locked to its OS thread
// and start the payload from it. Root inside then gets only those at exec; nothing can regain the
// others, not even a setuid binary or a file capability.
func BoundCaps(keep []int, last int) error {
	k := map[int]bool{}
	for _, c := range keep {
		k[c] = true
	}
	for c := 0; c <= last; c++ {
		if k[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				continue // not known to this kernel
			}
			return fmt.Errorf("dropping %s from the bounding set: %w", CapName(c), err)
		}
	}
	return nil
}

// NoNewPrivs sets no_new_privs: execve never grants privileges again
// (setuid bits and file capabilities are ignored). tsync says a seccomp
// filter follows with SECCOMP_FILTER_FLAG_TSYNC, which gives no_new_privs
// to every other thread with the filter (kernel/seccomp.c,
// seccomp_sync_threads): then it is set on the calling thread alone, and
// the world is not stopped to reach the others (~1 ms for init's ten or so).
func NoNewPrivs(tsync bool) error {
	var err error
	if tsync {
		err = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	} else {
		err = allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	}
	if err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return nil
}

// DropInherited empties the ambient and inheritable capability sets of the
// calling (locked) thread. A
// process that kept its capabilities across an exec through them would
// otherwise pass every one to a payload running as a non-root uid; with
// them clear, exec gives capabilities only to uid 0 inside.
func DropInherited() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// NewSessionKeyring gives the sandbox an empty anonymous session keyring,
// so the caller's session keys (kerberos tickets, …) are out of reach.
func NewSessionKeyring() error {
	// A NULL name makes an anonymous keyring; a named one could join an
	// existing keyring of that name.
	_, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
	var err error
	if errno != 0 {
		err = errno
	}
	if errors.Is(err, unix.EPERM) && keyringOutOfReach() {
		// Nested in a sandbox or container whose seccomp filter denies
		// keyctl: that filter binds the payload too.
		return nil
	}
	if err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("joining a new session keyring: %w", err)
	}
	return nil
}

// keyringOutOfReach tells whether keyctl cannot even name the current
// session keyring.
func keyringOutOfReach() bool {
	sessionKeyring := int32(unix.KEY_SPEC_SESSION_KEYRING)
	_, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(uint32(sessionKeyring)), 0)
	return errno == unix.EPERM || errno == unix.ENOSYS
}

// LandlockRules are the paths the payload may write; everything else in the
// sandbox's root is read-only and executable for it.
type LandlockRules struct {
	WritableDirs  []string
	WritableFiles []string
}

// Landlock restricts the calling process (all its threads) and its future
// children. It is best effort on older kernels: it returns the ABI version
// used (0: Landlock unavailable, nothing restricted).
func Landlock(r LandlockRules) (int, error) {
	abi := LandlockABI()
	if abi == 0 {
		return 0, nil
	}
	rules := []landlock.Rule{
		landlock.RODirs("/"),
		landlock.RWDirs(r.WritableDirs...).IgnoreIfMissing(),
		landlock.RWFiles(r.WritableFiles...).IgnoreIfMissing(),
	}
	if err := landlock.V7.BestEffort().RestrictPaths(rules...); err != nil {
		return abi, fmt.Errorf("landlock: %w", err)
	}
	return abi, nil
}

// LandlockABI is the kernel's Landlock ABI version, 0 when unavailable.
func LandlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */)
	if errno != 0 {
		return 0
	}
	return int(v)
}
