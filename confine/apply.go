package confine

import (
	"errors"
	"fmt"

	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"
)

// BoundCaps drops from the bounding set every capability not in keep (up to
// last). Root inside then gets only those at exec; nothing can regain the
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
// (setuid bits and file capabilities are ignored).
func NoNewPrivs() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
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
	if err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("joining a new session keyring: %w", err)
	}
	return nil
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
	abi, _ := landlockABI()
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

func landlockABI() (int, error) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */)
	if errno != 0 {
		return 0, errno
	}
	return int(v), nil
}
