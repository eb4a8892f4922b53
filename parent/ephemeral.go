package parent

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"sandbox/confine"
	"sandbox/idmap"
	"sandbox/state"
	"sandbox/userns"

	"sandbox/journal"
	"sandbox/spec"

	"golang.org/x/sys/unix"
)

// ephemeralName says whether name is NAME-<8 hex digits> with NAME a
// sandbox's name: a run's directory in the base. (Checked by hand: the
// regexp cost ~1 ms of package initialisation at every start.)
func ephemeralName(name string) bool {
	n := len(name) - 9
	if n < 1 || name[n] != '-' {
		return false
	}
	for _, c := range name[n+1:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return state.ValidName(name[:n]) == nil
}

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
	base, err := spec.EphemeralBase()
	if err != nil {
		return nil
	}
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil // none made yet
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() || !ephemeralName(e.Name()) {
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
	me, err := spec.CurrentUser()
	if err != nil {
		return err
	}
	maps, err := idmap.DefaultSource().Prepare(idmap.Auto, me.Name, uint32(uid), uint32(gid), 0, 0)
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
	if !ephemeralName(name) {
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
func makeEphemeral(s *spec.Spec) (*ephemeralDir, error) {
	if s.EphemeralBase == "" {
		return nil, nil
	}
	d, err := makeEphemeralDir(s.EphemeralBase, s.Name)
	if err != nil {
		return nil, err
	}
	s.Plan.Ephemeral.Dir = d.path
	if s.Report != nil && s.Report.Root != nil && s.Report.Root.Ephemeral != nil {
		s.Report.Root.Ephemeral.Dir = d.path
	}
	s.EnsureLog().Step("created the ephemeral directory %s", d.path)
	return d, nil
}

// dropEphemeral removes the run's directory once init is gone, then
// sweeps those of runs that were killed before they could.
func dropEphemeral(d *ephemeralDir, lg *journal.Logger) {
	if d != nil {
		if err := d.remove(); err != nil {
			lg.Warn(err.Error())
		} else {
			lg.Step("removed the ephemeral directory %s", d.path)
		}
	}
	if err := SweepEphemeral(); err != nil {
		lg.Warn(err.Error())
	}
}
