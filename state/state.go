// Package state keeps the record of a user's named sandboxes: one directory
// per sandbox under the user's runtime directory, holding a lock that the
// supervising `sandbox run` process holds for its whole life, the record
// (state.json), the exec socket and, for detached runs, the log.
//
// A sandbox is running exactly while its lock is held. The kernel drops a
// flock when its holder dies, even by SIGKILL, so a record whose lock is
// free but that says "running" was left by a killed run: it is stale and
// the next command that reads it removes it.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Files inside a sandbox's directory.
const (
	lockFile   = "lock"
	recordFile = "state.json"
	// SocketFile is where the sandbox's init accepts `sandbox exec`.
	SocketFile = "exec.sock"
	// LogFile holds a detached sandbox's output.
	LogFile = "log"
)

// Statuses of a record.
const (
	Starting = "starting"
	Running  = "running"
	Exited   = "exited"
)

// Info is the record of one sandbox (state.json).
type Info struct {
	Name string `json:"name"`
	// Pid is the supervising `sandbox run` process.
	Pid int `json:"pid"`
	// InitPid is sandbox-init (PID 1 inside) as the host sees it, and
	// InitStart its start time in clock ticks after boot (against pid reuse).
	InitPid   int    `json:"init_pid,omitempty"`
	InitStart uint64 `json:"init_start,omitempty"`
	// PayloadPid is the command's pid inside the sandbox.
	PayloadPid int       `json:"payload_pid,omitempty"`
	Command    []string  `json:"command"`
	Created    time.Time `json:"created"`
	Hostname   string    `json:"hostname"`
	Root       string    `json:"root"` // "host" or the --rootfs directory
	Upper      string    `json:"upper,omitempty"`
	Net        string    `json:"net"`
	Limits     []string  `json:"limits,omitempty"` // cgroup files written, as FILE=VALUE
	Cgroup     string    `json:"cgroup,omitempty"` // the sandbox's cgroup directory on the host
	Detached   bool      `json:"detached,omitempty"`
	Status     string    `json:"status"`
	ExitStatus *int      `json:"exit_status,omitempty"`
	Ended      time.Time `json:"ended,omitzero"`
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidName checks a sandbox name: it becomes a directory name, so only
// letters, digits, '_', '.', '-', not starting with a punctuation mark.
func ValidName(name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("invalid sandbox name %q: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// BaseDir returns (creating it) the directory of the caller's sandboxes:
// $XDG_RUNTIME_DIR/sandbox (a per-user tmpfs), else /tmp/sandbox-UID, which
// must then be a private directory of the caller's own.
func BaseDir() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			base := filepath.Join(d, "sandbox")
			if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return "", fmt.Errorf("creating the state directory: %w", err)
			}
			return base, nil
		}
	}
	uid := os.Getuid()
	base := filepath.Join("/tmp", "sandbox-"+strconv.Itoa(uid))
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating the state directory: %w (set XDG_RUNTIME_DIR to a private directory)", err)
	}
	// /tmp is shared: anyone could have made it first, or planted a link.
	var st unix.Stat_t
	if err := unix.Lstat(base, &st); err != nil {
		return "", fmt.Errorf("checking the state directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != uid || st.Mode&0o077 != 0 {
		return "", fmt.Errorf("the state directory %s is not a private directory of yours (uid %d, mode 0700): "+
			"remove it, or set XDG_RUNTIME_DIR to a private directory", base, uid)
	}
	return base, nil
}

// ErrInUse: the name belongs to a running sandbox.
var ErrInUse = errors.New("in use")

// Handle is a claimed sandbox directory; its lock is held until Release.
type Handle struct {
	Dir  string
	Info Info
	lock *os.File
}

// Claim takes the name for a new sandbox. A running sandbox of that name
// is ErrInUse; the record of an ended one (or a stale one) is replaced.
func Claim(name string) (*Handle, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	base, err := BaseDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, name)
	// A few rounds: a concurrent sweep may remove the directory between
	// our open and our lock.
	for range 5 {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
		f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("opening the lock of sandbox %s: %w", name, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("sandbox name %q: %w by a running sandbox (sandbox ps lists them; choose another --name)", name, ErrInUse)
			}
			return nil, fmt.Errorf("locking sandbox %s: %w", name, err)
		}
		if !sameFile(f, filepath.Join(dir, lockFile)) {
			f.Close() // removed by a sweep meanwhile: start over
			continue
		}
		// What an ended run left (its log, socket, record) goes now.
		for _, n := range []string{recordFile, SocketFile, LogFile} {
			os.Remove(filepath.Join(dir, n))
		}
		return &Handle{Dir: dir, lock: f, Info: Info{Name: name, Status: Starting}}, nil
	}
	return nil, fmt.Errorf("sandbox name %q: its directory keeps vanishing (another command is removing it); try again", name)
}

// Adopt takes over a handle whose lock was inherited as fd (a detached
// sandbox's supervisor, started by the command that claimed the name).
func Adopt(name string, fd int) (*Handle, error) {
	base, err := BaseDir()
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), lockFile)
	dir := filepath.Join(base, name)
	if !sameFile(f, filepath.Join(dir, lockFile)) {
		f.Close()
		return nil, fmt.Errorf("the inherited lock is not that of sandbox %s", name)
	}
	unix.CloseOnExec(fd)
	return &Handle{Dir: dir, lock: f, Info: Info{Name: name, Status: Starting}}, nil
}

// LockFile is the held lock, to pass to a detached supervisor.
func (h *Handle) LockFile() *os.File { return h.lock }

// Path returns the path of a file in the sandbox's directory.
func (h *Handle) Path(name string) string { return filepath.Join(h.Dir, name) }

// Write stores the record atomically (readers never see half of it).
func (h *Handle) Write() error {
	return writeRecord(h.Dir, h.Info)
}

func writeRecord(dir string, info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the sandbox record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, recordFile)); err != nil {
		return fmt.Errorf("writing the sandbox record: %w", err)
	}
	return nil
}

// Finish ends the handle: a foreground sandbox's directory is removed; a
// detached one keeps its record (now exited, with the status) and log
// until `sandbox rm` or the next run of that name.
func (h *Handle) Finish(status int) error {
	defer h.lock.Close()
	if !h.Info.Detached {
		return os.RemoveAll(h.Dir)
	}
	os.Remove(h.Path(SocketFile))
	h.Info.Status = Exited
	h.Info.ExitStatus = &status
	h.Info.Ended = time.Now()
	return h.Write()
}

// Entry is a sandbox found on disk.
type Entry struct {
	Info
	Dir string `json:"-"`
	// Live: its supervisor holds the lock.
	Live bool `json:"-"`
}

// ErrNotFound: no sandbox of that name.
var ErrNotFound = errors.New("no such sandbox")

// Lookup reads one sandbox's record, removing it if stale.
func Lookup(name string) (Entry, error) {
	if err := ValidName(name); err != nil {
		return Entry{}, err
	}
	base, err := BaseDir()
	if err != nil {
		return Entry{}, err
	}
	e, ok, err := read(filepath.Join(base, name))
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return Entry{}, fmt.Errorf("%w named %q (sandbox ps -a lists yours)", ErrNotFound, name)
	}
	return e, nil
}

// List returns every sandbox of the caller, sorted by creation; stale
// records are removed on the way.
func List() ([]Entry, error) {
	base, err := BaseDir()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", base, err)
	}
	var out []Entry
	for _, d := range ents {
		if !d.IsDir() || ValidName(d.Name()) != nil {
			continue
		}
		e, ok, err := read(filepath.Join(base, d.Name()))
		if err != nil || !ok {
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// read loads dir's record and tells whether its owner is alive; a record
// of a dead owner that did not end properly is removed (ok false).
func read(dir string) (Entry, bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("opening the lock of %s: %w", dir, err)
	}
	defer f.Close()
	live := false
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		live = true
	} else if err != nil {
		return Entry{}, false, fmt.Errorf("checking the lock of %s: %w", dir, err)
	}
	e := Entry{Dir: dir, Live: live}
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err == nil {
		err = json.Unmarshal(b, &e.Info)
	}
	switch {
	case live && err != nil:
		// Claimed a moment ago: the record is not written yet.
		e.Info = Info{Name: filepath.Base(dir), Status: Starting}
		return e, true, nil
	case live:
		return e, true, nil
	case err == nil && e.Status == Exited:
		return e, true, nil
	}
	// We hold the lock of a run that died without ending: stale.
	os.RemoveAll(dir)
	return Entry{}, false, nil
}

// Remove deletes an ended sandbox's directory.
func Remove(name string) error {
	e, err := Lookup(name)
	if err != nil {
		return err
	}
	if e.Live {
		return fmt.Errorf("sandbox %s is running; stop it first (sandbox stop %s)", name, name)
	}
	return os.RemoveAll(e.Dir)
}

// Running reports whether the sandbox's supervisor still holds the lock.
func (e Entry) Running() bool {
	f, err := os.OpenFile(filepath.Join(e.Dir, lockFile), os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK)
}

func sameFile(f *os.File, p string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(p)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}
