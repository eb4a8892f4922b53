// Package state keeps the record of a user's named sandboxes: one directory
// per sandbox under the user's runtime directory, holding a lock that the
// supervising `sandbox run` process holds for its whole life, the record
// (state.json), the exec socket and, for detached runs, the log.
//
// A sandbox is running exactly while its lock is held. The kernel drops a
// flock when its holder dies, even by SIGKILL, so a record whose lock is
// free but that says "running" was left by a killed run: it is stale and
// the next command that reads it removes it. One whose record cannot be
// read (records are replaced whole, so only a hand or a disk garbles one)
// is kept with its log, as ended with its status unknown.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/internal/hostdir"
)

// Files inside a sandbox's directory.
const (
	lockFile   = "lock"
	recordFile = "state.json"
	// SocketFile is where the sandbox's init accepts `sandbox exec`.
	SocketFile = "exec.sock"
	// LogFile holds a detached sandbox's output; OldLogFile what the
	// relay rotated out of it (parent.LogMax), through LogTemp and
	// OldLogTemp, so that LogFile always exists.
	LogFile    = "log"
	OldLogFile = "log.1"
	LogTemp    = "log.new"
	OldLogTemp = "log.1.new"
	// NetDir is the network driver's (parent.startNetwork).
	NetDir = "net"
)

// ownNames are all a run puts in its directory: a directory holding
// anything else is not a sandbox's, and is never claimed, listed or
// removed (the image store or an --ephemeral=disk base can share the
// state directory when XDG_DATA_HOME or XDG_CACHE_HOME is
// XDG_RUNTIME_DIR; their directories have valid names).
var ownNames = map[string]bool{lockFile: true, recordFile: true, recordFile + ".tmp": true, SocketFile: true,
	LogFile: true, OldLogFile: true, LogTemp: true, OldLogTemp: true, NetDir: true}

// foreign names an entry of dir that no run makes, or says "" when all
// are a run's (or dir is gone). It reads at most a directory's worth of
// a run's names and one more.
func foreign(dir string) string {
	f, err := os.Open(dir)
	if err != nil {
		return ""
	}
	defer f.Close()
	names, _ := f.Readdirnames(len(ownNames) + 1)
	for _, n := range names {
		if !ownNames[n] {
			return n
		}
	}
	if len(names) > len(ownNames) {
		return names[len(names)-1]
	}
	return ""
}

// Statuses of a record.
const (
	Starting = "starting"
	Running  = "running"
	Exited   = "exited"
)

// Info is the record of one sandbox (state.json).
type Info struct {
	Name string `json:"name"`
	// Pid is the supervising `sandbox run` process, PidStart its start
	// time (clock ticks after boot).
	Pid      int    `json:"pid"`
	PidStart uint64 `json:"pid_start,omitempty"`
	// InitPid is sandbox-init (PID 1 inside) as the host sees it, and
	// InitStart its start time in clock ticks after boot (against pid reuse).
	InitPid   int    `json:"init_pid,omitempty"`
	InitStart uint64 `json:"init_start,omitempty"`
	// PayloadPid is the command's pid inside the sandbox.
	PayloadPid int       `json:"payload_pid,omitempty"`
	Command    []string  `json:"command"`
	Created    time.Time `json:"created,omitzero"`
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

// ValidName checks a sandbox name: it becomes a directory name, so only
// letters, digits, '_', '.', '-', not starting with a punctuation mark.
func ValidName(name string) error {
	if !validName(name) {
		return fmt.Errorf("invalid sandbox name %q: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// validName is ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$, by hand: a compiled
// regexp with that repetition cost ~1 ms of package initialisation on
// every start of the CLI.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// BaseDir returns (creating it) the directory of the caller's sandboxes:
// $XDG_RUNTIME_DIR/sandbox (a per-user tmpfs), else /tmp/sandbox-UID. Wherever
// it is, it must be a directory of the caller's that no one else can write,
// below directories only the caller or root can change (or sticky ones, as
// /tmp): else another user could rename or replace a running sandbox's state.
// Past this check paths below it cannot be swapped by anyone else.
func BaseDir() (string, error) {
	uid := os.Getuid()
	if d := os.Getenv("XDG_RUNTIME_DIR"); runtimeDir(d) {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			return "", fmt.Errorf("the state directory: XDG_RUNTIME_DIR %s: %w", d, err)
		}
		if err := securePath(real, uid); err != nil {
			return "", fmt.Errorf("the state directory's parent %w; fix that, or set XDG_RUNTIME_DIR to a private directory of yours (mode 0700)", err)
		}
		base := filepath.Join(real, "sandbox")
		if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("creating the state directory: %w", err)
		}
		if err := checkPrivate(base, uid, 0o022); err != nil {
			return "", fmt.Errorf("the state directory %w: chmod go-w %s if it is yours, else remove it", err, base)
		}
		return base, nil
	}
	base := tmpBase(uid)
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating the state directory: %w (set XDG_RUNTIME_DIR to a private directory)", err)
	}
	// /tmp is shared: anyone could have made it first, or planted a link.
	if err := securePath("/tmp", uid); err != nil {
		return "", fmt.Errorf("the state directory's parent %w; set XDG_RUNTIME_DIR to a private directory of yours (mode 0700)", err)
	}
	if err := checkPrivate(base, uid, 0o077); err != nil {
		// Not "remove it": it holds the records and logs of every
		// sandbox of the caller's.
		return "", fmt.Errorf("the state directory %w: chmod 0700 %s if it is yours, or set XDG_RUNTIME_DIR to a private directory of yours", err, base)
	}
	return base, nil
}

// BasePath is where BaseDir is, found without creating or checking
// anything: for the planner, which must not share it with a sandbox.
func BasePath() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); runtimeDir(d) {
		if real, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(real, "sandbox")
		}
	}
	return tmpBase(os.Getuid())
}

// BasePaths are BasePath first, then the other places the caller's
// sandboxes' state may be kept from another session (one with
// XDG_RUNTIME_DIR set, or without): /tmp/sandbox-UID and
// /run/user/UID/sandbox, each once.
func BasePaths() []string {
	out := []string{BasePath()}
	for _, p := range []string{tmpBase(os.Getuid()), filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "sandbox")} {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// runtimeDir says whether d, XDG_RUNTIME_DIR's value, is a directory to
// keep the state in.
func runtimeDir(d string) bool {
	if d == "" || !filepath.IsAbs(d) {
		return false
	}
	fi, err := os.Stat(d)
	return err == nil && fi.IsDir()
}

func tmpBase(uid int) string { return filepath.Join("/tmp", "sandbox-"+strconv.Itoa(uid)) }

// PrivateDir makes dir (if need be) and checks it is a directory of the
// caller's that no one else may enter: for what sandbox keeps beside the
// records in the state directory (the profile decoder's answers).
func PrivateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return checkPrivate(dir, os.Getuid(), 0o077)
}

// checkPrivate says whether p (not followed if a symlink) is a directory
// of uid's without any of the mode bits in deny.
func checkPrivate(p string, uid int, deny uint32) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != uid || st.Mode&deny != 0 {
		return fmt.Errorf("%s is not a private directory of yours (%s, owner uid %d, mode %04o; want a directory of uid %d that others cannot write)",
			p, hostdir.FileType(st.Mode), st.Uid, st.Mode&0o7777, uid)
	}
	return nil
}

// securePath checks p and each directory above it: owned by uid or root,
// and writable by no one else unless sticky (whose entries only their
// owners can rename or remove).
func securePath(p string, uid int) error {
	r, err := hostdir.Check(p, uid, false)
	switch {
	case err != nil:
		return err
	case r != nil && r.OtherOwner:
		return fmt.Errorf("%s: that user could replace your sandboxes' state", r)
	case r != nil:
		return fmt.Errorf("%s: they could replace your sandboxes' state", r)
	}
	return nil
}

// ErrForeign: a directory of the state holds what no run makes.
var ErrForeign = errors.New("not a sandbox's directory")

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
	for range 10 {
		// A directory made here is empty: foreign content is looked for
		// only in one that was there (off the start's path for a new
		// name).
		err := os.Mkdir(dir, 0o700)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
		made := err == nil
		if err := checkPrivate(dir, os.Getuid(), 0o022); errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("the state of sandbox %s: %w; remove it", name, err)
		}
		if !made {
			if n := foreign(dir); n != "" {
				return nil, fmt.Errorf("sandbox name %q: %s holds %q, which no sandbox makes: it is not a sandbox's; choose another --name", name, dir, n)
			}
		}
		f, err := openLock(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("opening the lock of sandbox %s: %w", name, err)
		}
		locked, err := lockOrWait(f, dir)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking sandbox %s: %w", name, err)
		}
		if !locked {
			held := sameFile(f, filepath.Join(dir, lockFile))
			f.Close()
			if held {
				return nil, fmt.Errorf("sandbox name %q: %w by a running sandbox (sandbox ps lists them; choose another --name)", name, ErrInUse)
			}
			continue
		}
		if !sameFile(f, filepath.Join(dir, lockFile)) {
			f.Close() // removed by a sweep meanwhile: start over
			continue
		}
		if !made {
			// A record in a directory we did not make: its lock may have
			// been removed or replaced by hand while its sandbox ran.
			if b, err := readRecord(dir); err == nil {
				var old Info
				if json.Unmarshal(b, &old) == nil && old.PidStart != 0 && SameProcess(old.Pid, old.PidStart) {
					f.Close()
					return nil, fmt.Errorf("sandbox name %q: %w by a running sandbox whose lock was changed by hand (its supervisor, pid %d, runs; sandbox stop %s ends it)", name, ErrInUse, old.Pid, name)
				}
			}
		}
		// What an ended run left (its log, socket, record) goes now.
		for _, n := range []string{recordFile, SocketFile, LogFile, OldLogFile, LogTemp, OldLogTemp} {
			os.Remove(filepath.Join(dir, n))
		}
		return &Handle{Dir: dir, lock: f, Info: Info{Name: name, Status: Starting}}, nil
	}
	return nil, fmt.Errorf("sandbox name %q: its directory keeps vanishing (another command is removing it); try again", name)
}

// lockOrWait takes f's lock. Commands that read a record hold it for a
// moment; a holder with no record yet is either a claim a moment old or a
// command sweeping a dead run's directory (it holds the lock while it
// removes it): wait a little (50 ms; 250 ms without a record) for it to
// let go or finish. false: still held.
func lockOrWait(f *os.File, dir string) (bool, error) {
	for i := 0; ; i++ {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return false, err
		}
		_, rerr := os.Lstat(filepath.Join(dir, recordFile))
		if (rerr == nil && i >= 10) || i >= 50 || !sameFile(f, filepath.Join(dir, lockFile)) {
			return false, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sweep removes a sandbox directory whose lock the caller holds: renamed
// away first (a name is then either whole or absent, never half removed),
// then removed. A sweep killed half way leaves a .rm- directory that List
// removes. A directory holding anything a run does not make is left as it
// is (ErrForeign).
func sweep(dir string) error {
	if n := foreign(dir); n != "" {
		return fmt.Errorf("%w: %s holds %q", ErrForeign, dir, n)
	}
	gone := filepath.Join(filepath.Dir(dir), fmt.Sprintf("%s%s-%d-%d", removingPrefix, filepath.Base(dir), os.Getpid(), time.Now().UnixNano()))
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(gone)
}

// removingPrefix starts the name of a directory being removed (never a
// valid sandbox name).
const removingPrefix = ".rm-"

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
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err == nil {
		_, err = f.Write(append(b, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
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
		return sweep(h.Dir)
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
		if strings.HasPrefix(d.Name(), removingPrefix) {
			os.RemoveAll(filepath.Join(base, d.Name())) // a killed sweep's
			continue
		}
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
	lock := filepath.Join(dir, lockFile)
	f, err := openLock(lock, os.O_RDONLY)
	made := false
	if errors.Is(err, os.ErrNotExist) {
		// A directory without its lock: a claim a moment old (its lock
		// follows its mkdir), or what a killed removal left. Take a lock
		// ourselves: a claimant that meets it waits while we decide.
		if fi, serr := os.Lstat(dir); serr != nil || !fi.IsDir() || young(fi) || foreign(dir) != "" {
			return Entry{}, false, nil
		}
		f, err = openLock(lock, os.O_RDWR|os.O_CREATE)
		if errors.Is(err, os.ErrNotExist) {
			return Entry{}, false, nil
		}
		made = true
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("opening the lock of %s: %w", dir, err)
	}
	defer f.Close()
	if err := checkPrivate(dir, os.Getuid(), 0o022); err != nil {
		return Entry{}, false, fmt.Errorf("the state of a sandbox: %w; remove it", err)
	}
	live := false
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		live = true
	} else if err != nil {
		return Entry{}, false, fmt.Errorf("checking the lock of %s: %w", dir, err)
	}
	e := Entry{Dir: dir, Live: live}
	b, err := readRecord(dir)
	missing := errors.Is(err, os.ErrNotExist)
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
	case err != nil && !missing:
		// A record there but unreadable (changed by hand, a disk's
		// error; records are replaced whole, by rename): kept with its
		// log, as ended with a status unknown, for `sandbox logs` and
		// `sandbox rm`, rather than swept as a killed run's. (Only a
		// detached run's record outlives it.)
		e.Info = Info{Name: filepath.Base(dir), Status: Exited, Detached: true}
		return e, true, nil
	}
	if err == nil && e.PidStart != 0 && SameProcess(e.Pid, e.PidStart) {
		// Its supervisor runs, though its lock is not held: the lock was
		// removed or replaced by hand. Listed as running, never swept
		// (before, ps removed a running sandbox's record and log).
		e.Live = true
		return e, true, nil
	}
	if err == nil && e.Detached && sameFile(f, lock) {
		// A detached run whose supervisor was killed (SIGKILL, the OOM
		// killer): its log is all that is left of it, and it is the
		// user's. Kept as ended with its status unknown, like an
		// unreadable record, until sandbox rm (before, swept with it).
		os.Remove(filepath.Join(dir, SocketFile))
		e.Status, e.ExitStatus, e.Live = Exited, nil, false
		if e.Ended.IsZero() {
			e.Ended = time.Now()
		}
		if werr := writeRecord(dir, e.Info); werr == nil {
			return e, true, nil
		}
	}
	// We hold the lock of a run that died without ending: stale. Without
	// a record it may also be a claim between its lock's creation and
	// its flock: left alone while the lock is young.
	if fi, serr := f.Stat(); serr == nil && (err == nil || made || !young(fi)) && sameFile(f, lock) {
		sweep(dir)
	}
	return Entry{}, false, nil
}

// young: changed within the last 2 s (a claim is never slower than that
// between its mkdir, its lock and its record).
func young(fi os.FileInfo) bool { return time.Since(fi.ModTime()) < 2*time.Second }

// openLock opens the lock p (flag: O_RDONLY, or O_RDWR|O_CREATE), never
// through a symlink, and only if it is a regular file: a FIFO put in its
// place hung every command that met it (open(2) waits for a writer), a
// directory was taken for a lock. Without the Go runtime's poller: for a
// regular file os.OpenFile made four fcntl calls and a refused epoll_ctl,
// and the first one of a `sandbox ps` created the poller itself.
func openLock(p string, flag int) (*os.File, error) {
	fd, err := unix.Open(p, flag|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file: remove it (a sandbox's lock is one)", p)
	}
	unix.SetNonblock(fd, false) // so that os.NewFile leaves it to blocking calls
	return os.NewFile(uintptr(fd), p), nil
}

// readRecord reads dir's record, never through a symlink, at most 1 MiB.
// Non-blocking (a FIFO put in its place cannot hang the reader) and read
// with read(2) itself: an O_NONBLOCK *os.File is offered to the poller.
func readRecord(dir string) ([]byte, error) {
	p := filepath.Join(dir, recordFile)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	const limit = 1 << 20
	b := make([]byte, 0, min(max(st.Size+1, 512), limit))
	for len(b) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):min(cap(b), limit)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	return b, nil
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
	f, err := openLock(filepath.Join(e.Dir, lockFile), os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("removing sandbox %s: %w", name, err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("sandbox %s was started again meanwhile; stop it first (sandbox stop %s)", name, name)
	}
	if !sameFile(f, filepath.Join(e.Dir, lockFile)) {
		return nil // removed meanwhile
	}
	return sweep(e.Dir)
}

// Running reports whether the sandbox's supervisor still holds the lock,
// or, its lock changed by hand, still runs (pid and start time).
func (e Entry) Running() bool {
	f, err := openLock(filepath.Join(e.Dir, lockFile), os.O_RDONLY)
	if err == nil {
		defer f.Close()
		if errors.Is(unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK) {
			return true
		}
	}
	return e.PidStart != 0 && SameProcess(e.Pid, e.PidStart)
}

func sameFile(f *os.File, p string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(p)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}
