package idmap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"sandbox/internal/hostpath"

	"golang.org/x/sys/unix"
)

// Apply writes the uid and gid maps of process pid, which must be in a
// new user namespace and not yet rely on its ids (typically blocked until
// Apply returns). viaHelpers runs newuidmap and newgidmap (for a non-root
// caller with subordinate ranges); otherwise the maps are written directly,
// which works for root, or for anyone mapping only their own uid and gid.
func Apply(ctx context.Context, pid int, uids, gids []Mapping, viaHelpers bool) error {
	a := applier{
		proc:          "/proc",
		newuidmap:     UID.Helper(),
		newgidmap:     GID.Helper(),
		denySetgroups: !Privileged(),
	}
	return a.apply(ctx, pid, uids, gids, viaHelpers)
}

// applier holds what Apply takes from the system, so tests can fake it.
type applier struct {
	proc                 string // procfs mount point
	newuidmap, newgidmap string // helper names or paths
	// denySetgroups: an unprivileged writer may only write gid_map after
	// setgroups is denied (kernel rule since 3.19).
	denySetgroups bool
}

func (a applier) apply(ctx context.Context, pid int, uids, gids []Mapping, viaHelpers bool) error {
	if len(uids) == 0 || len(gids) == 0 {
		return fmt.Errorf("writing id maps of pid %d: empty uid or gid map", pid)
	}
	if viaHelpers {
		return a.helpers(ctx, pid, uids, gids)
	}
	return a.direct(pid, uids, gids)
}

// helpers runs newuidmap and newgidmap concurrently: they are independent
// and each costs a fork+exec of a setuid binary.
func (a applier) helpers(ctx context.Context, pid int, uids, gids []Mapping) error {
	var wg sync.WaitGroup
	var uerr, gerr error
	wg.Go(func() { uerr = runHelper(ctx, a.newuidmap, HelperArgs(pid, uids)) })
	wg.Go(func() { gerr = runHelper(ctx, a.newgidmap, HelperArgs(pid, gids)) })
	wg.Wait()
	if uerr != nil && gerr != nil {
		return fmt.Errorf("%w; %w", uerr, gerr) // one line, for "sandbox: ..." messages
	}
	return errors.Join(uerr, gerr)
}

// maxHelperStderr bounds what is kept of a helper's stderr for the error.
const maxHelperStderr = 4 << 10

func runHelper(ctx context.Context, bin string, args []string) error {
	if full, err := hostpath.Look(bin); err == nil {
		bin = full // else exec says it is missing
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// stderr goes to a memfd, not a pipe: with a pipe, Wait also waits for
	// the copy to reach EOF, which a child the helper left (or a loaded
	// machine that does not schedule the copy) can delay past any
	// WaitDelay, failing a helper that succeeded. The exit status alone
	// decides; the memfd is read afterwards, bounded.
	stderr, err := memfd(filepath.Base(bin) + "-stderr")
	if err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	err = cmd.Run()
	if err == nil {
		return nil
	}
	what := bin + " " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%v)", what, ctx.Err(), err)
	}
	if msg := strings.TrimSpace(readStart(stderr, maxHelperStderr)); msg != "" {
		// Keep the error on one line.
		return fmt.Errorf("%s: %w: %s", what, err, strings.ReplaceAll(msg, "\n", "; "))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func memfd(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// readStart returns up to max bytes from the start of f.
func readStart(f *os.File, max int64) string {
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, max))
	return string(b)
}

func (a applier) direct(pid int, uids, gids []Mapping) error {
	dir := filepath.Join(a.proc, strconv.Itoa(pid))
	if a.denySetgroups {
		// A kernel without the setgroups file (< 3.19) has no such rule.
		if err := writeOnce(filepath.Join(dir, "setgroups"), "deny"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := writeOnce(filepath.Join(dir, "uid_map"), Format(uids)); err != nil {
		return err
	}
	return writeOnce(filepath.Join(dir, "gid_map"), Format(gids))
}

// writeOnce writes text with a single write(2): the kernel accepts a map
// only as one write at offset 0 and shorter than a page.
func writeOnce(path, text string) (err error) {
	shown := strings.TrimSuffix(text, "\n")
	if len(text) >= os.Getpagesize() {
		return fmt.Errorf("writing %s: %d bytes, the kernel takes less than %d (fix: merge subordinate ranges into fewer, larger ones)",
			path, len(text), os.Getpagesize())
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("writing %s %q: %w", path, shown, err)
	}
	defer func() {
		if cerr := unix.Close(fd); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", path, cerr)
		}
	}()
	n, err := unix.Write(fd, []byte(text))
	if err == nil && n != len(text) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("writing %s %q: %w", path, shown, err)
	}
	return nil
}
