package cgroupdelegate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/internal/proc"
	"sandbox/internal/userfile"
)

// Leaf is the child cgroup Evacuate moves a cgroup's processes into, so
// that the cgroup may enable controllers for its children (the kernel's
// "no internal processes" rule). A caller found in a Leaf uses its parent.
const Leaf = "sandbox-leaf"

// Owner is the `sandbox` process that created a cgroup: its pid and start
// time (clock ticks after boot), so that a reused pid is not taken for it.
type Owner struct {
	PID   int
	Start uint64
}

// Name is the cgroup's name: sandbox-<pid>-<start>.
func (o Owner) Name() string { return fmt.Sprintf("sandbox-%d-%d", o.PID, o.Start) }

// ParseName reads the owner from a name made by Name.
func ParseName(name string) (Owner, bool) {
	rest, ok := strings.CutPrefix(name, "sandbox-")
	p, s, ok2 := strings.Cut(rest, "-")
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil || pid <= 0 || strconv.Itoa(pid) != p {
		return Owner{}, false
	}
	return Owner{pid, start}, true
}

// ProcessOwner reads pid's identity from procRoot (/proc); pid "self" is
// the caller.
func ProcessOwner(procRoot, pid string) (Owner, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, pid, "stat"))
	if err != nil {
		return Owner{}, err
	}
	f, err := proc.StatFields(b)
	var o Owner
	if err != nil {
		return o, fmt.Errorf("%s/%s/stat: unexpected format", procRoot, pid)
	}
	if s := string(f[0]); s == "Z" || s == "X" {
		return o, fmt.Errorf("process %s has exited", pid)
	}
	o.Start, err = strconv.ParseUint(string(f[22-3]), 10, 64)
	if err == nil {
		o.PID, err = strconv.Atoi(strings.Fields(string(b))[0])
	}
	return o, err
}

// Alive says whether the owner still runs (same pid, same start time).
func (o Owner) Alive(procRoot string) bool {
	now, err := ProcessOwner(procRoot, strconv.Itoa(o.PID))
	return err == nil && now == o
}

// Writable says whether the caller may use dir as a delegated cgroup:
// create children in it, move processes through it, enable controllers.
func Writable(dir string) bool {
	return unix.Access(dir, unix.W_OK|unix.X_OK) == nil &&
		unix.Access(filepath.Join(dir, "cgroup.procs"), unix.W_OK) == nil &&
		unix.Access(filepath.Join(dir, "cgroup.subtree_control"), unix.W_OK) == nil
}

// List reads a space-separated interface file (cgroup.controllers, …).
func List(dir, file string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	return strings.Fields(string(b)), err
}

// Procs lists the processes in the cgroup itself (not its children).
func Procs(dir string) ([]int, error) {
	words, err := List(dir, "cgroup.procs")
	var pids []int
	for _, w := range words {
		if pid, err := strconv.Atoi(w); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, err
}

// ForeignError: a cgroup holds processes this one did not start (the
// caller's shell, say), which Evacuate never moves.
type ForeignError struct {
	Dir  string
	PIDs []int
}

func (e *ForeignError) Error() string {
	return fmt.Sprintf("%s also holds processes sandbox did not start (%v), which it does not move", e.Dir, e.PIDs)
}

// Evacuate moves sandbox's own processes (ours: the caller, and the
// foreground `run -d` waiting for its supervisor) from dir into dir/Leaf,
// so that dir may enable controllers for its children (the kernel's "no
// internal processes" rule). It moves no other process: when dir holds
// others, it returns a *ForeignError and leaves everything as it was.
func Evacuate(dir string, ours ...int) error {
	pids, err := Procs(dir)
	if err != nil {
		return fmt.Errorf("reading %s/cgroup.procs: %w", dir, err)
	}
	var foreign []int
	for _, pid := range pids {
		if !slices.Contains(ours, pid) {
			foreign = append(foreign, pid)
		}
	}
	if len(foreign) > 0 {
		return &ForeignError{dir, foreign}
	}
	if len(pids) == 0 {
		return nil
	}
	leaf := filepath.Join(dir, Leaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", leaf, err)
	}
	for _, pid := range pids {
		if err := writeFile(leaf, "cgroup.procs", strconv.Itoa(pid)); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("moving process %d from %s to %s: %w", pid, dir, leaf, err)
		}
	}
	return nil
}

// Enable turns on controllers for dir's children, one at a time (one
// write with several fails whole if one is not available).
func Enable(dir string, controllers []string) error {
	on, err := List(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	for _, c := range controllers {
		if slices.Contains(on, c) {
			continue
		}
		if err := writeFile(dir, "cgroup.subtree_control", "+"+c); err != nil {
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("enabling the %s controller in %s: it still holds processes (no internal processes rule): %w", c, dir, err)
			}
			return fmt.Errorf("enabling the %s controller in %s: %w", c, dir, err)
		}
	}
	return nil
}

// Apply writes the limits into the cgroup; implied writes whose file
// does not exist are returned as skipped.
func Apply(dir string, ws []Write) (skipped []Write, err error) {
	for _, w := range ws {
		if err := writeFile(dir, w.File, w.Value); err != nil {
			if w.Implied && errors.Is(err, os.ErrNotExist) {
				skipped = append(skipped, w)
				continue
			}
			return skipped, fmt.Errorf("%s: writing %q to %s: %w", w.Flag, w.Value, filepath.Join(dir, w.File), err)
		}
	}
	return skipped, nil
}

// Kill kills every process in the cgroup and its children: cgroup.kill
// (Linux 5.14), else SIGKILL to each listed process, frozen meanwhile
// where cgroup.freeze exists so that none can fork away.
func Kill(dir string) error {
	err := writeFile(dir, "cgroup.kill", "1")
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return killEach(dir)
}

// killEach is Kill without cgroup.kill.
func killEach(dir string) error {
	froze := writeFile(dir, "cgroup.freeze", "1") == nil
	defer func() {
		if froze {
			writeFile(dir, "cgroup.freeze", "0")
		}
	}()
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for round := 0; round < 50; round++ {
		left := 0
		for _, d := range dirs {
			pids, _ := Procs(d)
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
			left += len(pids)
		}
		if left == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("processes in %s survive SIGKILL", dir)
}

// Remove removes the cgroup and its children, depth first, waiting a
// little for killed processes to leave.
func Remove(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := time.Millisecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || delay > 256*time.Millisecond {
			return fmt.Errorf("removing cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay *= 2
	}
}

// CleanStale kills and removes the sandbox-<pid>-<start> cgroups in dir
// whose owner is gone (a `sandbox` that was SIGKILLed); it returns those
// it removed.
func CleanStale(dir, procRoot string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		o, ok := ParseName(e.Name())
		if !ok || !e.IsDir() || o.Alive(procRoot) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := Kill(p); err != nil {
			errs = append(errs, fmt.Errorf("killing stale cgroup %s: %w", p, err))
			continue
		}
		if err := Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// Key reads "key N" from a flat-keyed file (memory.events, pids.events).
func Key(dir, file, key string) (int64, error) {
	b, err := userfile.ReadNoFollow(filepath.Join(dir, file), maxInterfaceFile)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == key {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %q", filepath.Join(dir, file), key)
}

// maxInterfaceFile bounds a read of a cgroup's interface file (cpu.stat,
// memory.events: well under 4 KiB): the directory may come from a record
// its user can edit, pointing at /dev/zero or a FIFO.
const maxInterfaceFile = 64 << 10

// ReadInterface reads dir/file, a cgroup interface file: a regular file,
// not through a symlink, at most 64 KiB, without blocking.
func ReadInterface(dir, file string) ([]byte, error) {
	return userfile.ReadNoFollow(filepath.Join(dir, file), maxInterfaceFile)
}

// WriteFile writes value to the existing interface file dir/file.
func WriteFile(dir, file, value string) error { return writeFile(dir, file, value) }

// writeFile writes an existing interface file (never creates one: a
// missing file means a missing feature).
func writeFile(dir, file, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
