package sandbox

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/confine"
	"sandbox/idmap"
	"sandbox/rootfs"
	"sandbox/userns"

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
			return eph, usagef("--ephemeral-size %s: sizes --ephemeral=memory only; --ephemeral=disk is bounded by the free space of the file system holding %s",
				opts.EphemeralSize, ephemeralBaseHint())
		}
		base, err := EphemeralBase()
		if err != nil {
			return eph, usagef("--ephemeral=disk: %v", err)
		}
		s.ephemeralBase = base
	default:
		return eph, usagef("--ephemeral=%s: use memory or disk", opts.Ephemeral)
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
			return 0, usagef("--ephemeral-size %s: %v", flag, err)
		}
		if n < ephemeralMin {
			return 0, usagef("--ephemeral-size %s: must be at least 1M", flag)
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
	return filepath.Join(d, "sandbox", "ephemeral"), nil
}

func ephemeralBaseHint() string {
	if b, err := EphemeralBase(); err == nil {
		return b
	}
	return "$XDG_CACHE_HOME/sandbox/ephemeral"
}

// ephemeralName is NAME-<8 hex digits>, a run's directory in the base.
var ephemeralName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}-[0-9a-f]{8}$`)

// ephemeralDir is a run's --ephemeral=disk directory, flock'ed while the
// run lives: a directory whose lock is free belongs to a run that is gone.
type ephemeralDir struct {
	path string
	lock *os.File
}

// privateBase creates (0700) and checks the base directory: a real
// directory of the caller's, writable by no one else.
func privateBase(base string) error {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", base, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(base, &st); err != nil {
		return fmt.Errorf("checking %s: %w", base, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Getuid() || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is not a directory of yours that only you can write (uid %d, mode 0700): remove it or fix its owner and mode",
			base, os.Getuid())
	}
	return nil
}

// makeEphemeralDir creates and locks base/NAME-XXXXXXXX, mode 0700.
func makeEphemeralDir(base, name string) (*ephemeralDir, error) {
	if err := privateBase(base); err != nil {
		return nil, err
	}
	b := make([]byte, 4)
	// A few rounds: a sweep may take a directory made a moment ago for a
	// dead run's, and remove it before we lock it.
	for range 5 {
		if _, err := unix.Getrandom(b, 0); err != nil {
			return nil, fmt.Errorf("naming the ephemeral directory: %w", err)
		}
		p := filepath.Join(base, name+"-"+hex.EncodeToString(b))
		if err := os.Mkdir(p, 0o700); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return nil, fmt.Errorf("creating %s: %w", p, err)
		}
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", p, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil || !sameDir(f, p) {
			f.Close()
			continue
		}
		if err := os.Chmod(p, 0o700); err != nil { // whatever the umask
			f.Close()
			return nil, err
		}
		return &ephemeralDir{path: p, lock: f}, nil
	}
	return nil, fmt.Errorf("creating an ephemeral directory in %s: it keeps vanishing (another command is removing it); try again", base)
}

func sameDir(f *os.File, p string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(p)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// remove deletes the directory and everything in it, then lets go of it.
// The run is over: no process of it is left to write there.
func (d *ephemeralDir) remove() error {
	defer d.lock.Close()
	return removeEphemeral(filepath.Dir(d.path), []string{filepath.Base(d.path)})
}

// removeEphemeral removes base/NAME for each name: as the caller where it
// can, and what is left (files of the sandbox's other ids, which the
// caller cannot remove) as root of a user namespace with the caller's
// mapping, as image unpacking does.
func removeEphemeral(base string, names []string) error {
	var left []string
	for _, n := range names {
		if os.RemoveAll(filepath.Join(base, n)) != nil {
			left = append(left, n)
		}
	}
	if len(left) == 0 {
		return nil
	}
	if err := runCleaner(base, left); err != nil {
		return fmt.Errorf("removing the ephemeral directories %v in %s: %w", left, base, err)
	}
	return nil
}

// SweepEphemeral removes the --ephemeral=disk directories of runs that
// ended without removing theirs (`sandbox` was SIGKILLed): those whose lock
// is free. Any sandbox command may call it; without stale ones it costs a
// directory listing.
func SweepEphemeral() error {
	base, err := EphemeralBase()
	if err != nil {
		return nil
	}
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil // none made yet
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() || !ephemeralName.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(base, e.Name())
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil || !sameDir(f, p) {
			f.Close() // a live run's, or gone meanwhile
			continue
		}
		defer f.Close() // held until removed
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil
	}
	return removeEphemeral(base, names)
}

// CleanArg0 is argv[0] of the re-executed remover of ephemeral
// directories; main hands such a process to CleanChild.
const CleanArg0 = "sandbox-clean"

// cleanTimeout bounds one removal (gigabytes of small files take a while).
const cleanTimeout = 10 * time.Minute

// runCleaner starts CleanArg0 in a new user namespace with the caller's
// mapping (full where possible) to remove base/NAME for each name.
func runCleaner(base string, names []string) error {
	uid, gid := os.Getuid(), os.Getgid()
	me, err := currentUser()
	if err != nil {
		return err
	}
	maps, err := idmap.DefaultSource().Prepare(idmap.Auto, me.name, uint32(uid), uint32(gid), 0, 0)
	if err != nil {
		return err
	}
	last, err := confine.LastCap()
	if err != nil {
		return err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer goW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		goR.Close()
		return err
	}
	defer errR.Close()
	c, err := userns.Start(userns.Options{
		Path: "/proc/self/exe", Args: append([]string{CleanArg0, base}, names...), Env: []string{},
		Cloneflags: syscall.CLONE_NEWUSER, LastCap: last, Stdin: goR, Stdout: devnull, Stderr: errW,
	})
	goR.Close()
	errW.Close()
	if err != nil {
		return fmt.Errorf("starting the remover in a user namespace: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = idmap.Apply(ctx, c.Pid, maps.UIDs, maps.GIDs, maps.ViaHelpers)
	cancel()
	if err != nil {
		unix.Kill(c.Pid, unix.SIGKILL)
		c.Wait()
		return fmt.Errorf("writing the remover's id maps: %w", err)
	}
	// Both maps are written: go (its rights over a file need the file's
	// uid and gid mapped).
	goW.Write([]byte{'\n'})
	goW.Close()
	timer := time.AfterFunc(cleanTimeout, func() { unix.Kill(c.Pid, unix.SIGKILL) })
	defer timer.Stop()
	msg, _ := io.ReadAll(io.LimitReader(errR, 4096))
	ws, err := c.Wait()
	if err != nil {
		return err
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		if m := bytes.TrimSpace(msg); len(m) > 0 {
			return errors.New(string(m))
		}
		return fmt.Errorf("the remover ended with %v", ws)
	}
	return nil
}

// CleanChild is the remover in its user namespace, root over the caller's
// ids: argv is CleanArg0 BASE NAME...; it waits for its id maps (the
// parent writes them after the start and then sends one byte on stdin),
// then removes each BASE/NAME that is an ephemeral directory of the
// caller's.
func CleanChild() int {
	if len(os.Args) < 3 {
		fmt.Fprintf(os.Stderr, "%s: usage: BASE NAME...\n", CleanArg0)
		return 2
	}
	if n, _ := os.Stdin.Read(make([]byte, 1)); n != 1 {
		fmt.Fprintf(os.Stderr, "%s: no go-ahead (the id maps were not written)\n", CleanArg0)
		return 1
	}
	base := os.Args[1]
	status := 0
	for _, n := range os.Args[2:] {
		if err := cleanOne(base, n); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
			status = 1
		}
	}
	return status
}

// cleanOne removes base/name: only a real directory (not a link) named as
// the runs name theirs and owned by the caller. RemoveAll never follows a
// symbolic link, so nothing outside it goes.
func cleanOne(base, name string) error {
	if !ephemeralName.MatchString(name) {
		return fmt.Errorf("%s: not an ephemeral directory's name", name)
	}
	p := filepath.Join(base, name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s: not a directory of yours; left alone", p)
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}

// makeEphemeral creates the run's --ephemeral=disk directory and points the
// plan (and the report) at it.
func makeEphemeral(s *Spec) (*ephemeralDir, error) {
	if s.ephemeralBase == "" {
		return nil, nil
	}
	d, err := makeEphemeralDir(s.ephemeralBase, s.Name)
	if err != nil {
		return nil, err
	}
	s.Plan.Ephemeral.Dir = d.path
	if s.Report != nil && s.Report.Root != nil && s.Report.Root.Ephemeral != nil {
		s.Report.Root.Ephemeral.Dir = d.path
	}
	s.ensureLog().Step("created the ephemeral directory %s", d.path)
	return d, nil
}

// removeEphemeral removes the run's directory once init is gone, then
// sweeps those of runs that were killed before they could.
func dropEphemeral(d *ephemeralDir, lg *Logger) {
	if d != nil {
		if err := d.remove(); err != nil {
			lg.Warn("sandbox: warning: " + err.Error())
		} else {
			lg.Step("removed the ephemeral directory %s", d.path)
		}
	}
	if err := SweepEphemeral(); err != nil {
		lg.Warn("sandbox: warning: " + err.Error())
	}
}
