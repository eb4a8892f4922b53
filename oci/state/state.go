// Package state keeps the containers' records under the runtime's --root:
// one directory per container id, its record, its lock, and the OCI state
// document (`state`).
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/oci/cgroups"
)

// Container is one container's record (<root>/<id>/state.json).
type Container struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Pid         int               `json:"pid"`       // init's pid (the container's process once started)
	PidStart    uint64            `json:"pid_start"` // its start time (/proc/PID/stat field 22): a reused pid is not ours
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Cgroup      *cgroups.Manager  `json:"cgroup,omitempty"`
	Rootless    bool              `json:"rootless,omitempty"`
	// Owner is the uid that created the container (list's OWNER).
	Owner int `json:"owner"`
	// Dir is the container's directory (not stored).
	Dir string `json:"-"`
}

// File names inside a container's directory.
const (
	RecordFile = "state.json"
	FifoFile   = "exec.fifo"   // present while created: init blocks opening it
	ConfigFile = "config.json" // the spec as create read it (hooks, resources)
	// CreatingFile is present while create builds the container.
	CreatingFile = "creating"
	lockFile     = "lock"
)

// maxRecord bounds what Load reads.
const maxRecord = 1 << 20

var idRE = regexp.MustCompile(`^[\w+-][\w+.-]*$`)

// CheckID says whether id is a valid container id (runc's rule).
func CheckID(id string) error {
	if len(id) > 1024 || !idRE.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("invalid container id %q (want ^[\\w+-][\\w+.-]*$, at most 1024 characters)", id)
	}
	return nil
}

// OpenRoot makes sure root exists (0700, created if missing) and is not
// writable by others: whoever could write it could forge records that
// later commands act on.
func OpenRoot(root string) error {
	if root == "" {
		return errors.New("state root: empty path")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("state root: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return fmt.Errorf("state root: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("state root %s: not a directory", root)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("state root %s is writable by others (mode %04o): refusing it", root, st.Mode&0o7777)
	}
	return nil
}

// Create claims <root>/<id> for a new container; it is an error when the
// id is taken.
func Create(root, id string) (*Container, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	if err := OpenRoot(root); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("container %q already exists", id)
		}
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(dir, CreatingFile), nil, 0o600); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	return &Container{ID: id, Dir: dir, Created: time.Now().UTC(), Owner: os.Geteuid()}, nil
}

// MarkCreated marks the end of create: the container is created (or, its
// exec fifo gone, running) from now on.
func (c *Container) MarkCreated() error {
	if err := os.Remove(filepath.Join(c.Dir, CreatingFile)); err != nil {
		return fmt.Errorf("container %q: %w", c.ID, err)
	}
	return nil
}

// Load reads the record of id under root; an unknown id is an error that
// says so (`container "x" does not exist`).
func Load(root, id string) (*Container, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	f, err := os.Open(filepath.Join(dir, RecordFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("container %q does not exist", id)
		}
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	defer f.Close()
	var c Container
	dec := json.NewDecoder(&limited{f, maxRecord})
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("container %q: reading its record: %w", id, err)
	}
	if c.ID != id {
		return nil, fmt.Errorf("container %q: its record names %q", id, c.ID)
	}
	c.Dir = dir
	return &c, nil
}

type limited struct {
	f *os.File
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("record larger than 1 MiB")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// Save writes the record atomically (temporary file, rename).
func (c *Container) Save() error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("container %q: %w", c.ID, err)
	}
	return WriteAtomic(filepath.Join(c.Dir, RecordFile), data, 0o600)
}

// WriteAtomic writes data to path through a temporary file in the same
// directory and a rename, so a reader sees the old or the new content.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Remove deletes the container's directory.
func (c *Container) Remove() error {
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("container %q: removing its state: %w", c.ID, err)
	}
	return nil
}

// List reads every record under root (a missing root is an empty list);
// directories without a readable record (a create under way) are left out.
func List(root string) ([]*Container, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing %s: %w", root, err)
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() || CheckID(e.Name()) != nil {
			continue
		}
		c, err := Load(root, e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// StartTime is field 22 of /proc/PID/stat (0 when the process is gone).
func StartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	// After ") " come field 3 (state) onwards: field 22 is index 19.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive tells whether the record's process still runs (same pid, same
// start time, not a zombie).
func (c *Container) Alive() bool {
	if c.Pid <= 0 {
		return false
	}
	st, err := StartTime(c.Pid)
	if err != nil || st != c.PidStart {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
		return false
	}
	return true
}

// Status is the container's OCI status: creating, created, running,
// paused or stopped.
func (c *Container) Status() (specs.ContainerState, error) {
	if c.Pid == 0 {
		return specs.StateCreating, nil
	}
	if !c.Alive() {
		return specs.StateStopped, nil
	}
	if _, err := os.Lstat(filepath.Join(c.Dir, CreatingFile)); err == nil {
		return specs.StateCreating, nil
	}
	if _, err := os.Lstat(filepath.Join(c.Dir, FifoFile)); err == nil {
		return specs.StateCreated, nil
	}
	if c.Cgroup != nil && c.Cgroup.Path != "" {
		// A cgroup that cannot be read (gone, or no freezer) is not paused.
		if frozen, err := c.Cgroup.Frozen(); err == nil && frozen {
			return StatePaused, nil
		}
	}
	return specs.StateRunning, nil
}

// State is the OCI state document of the container.
func (c *Container) State() (*specs.State, error) {
	st, err := c.Status()
	if err != nil {
		return nil, err
	}
	s := &specs.State{
		Version:     specs.Version,
		ID:          c.ID,
		Status:      st,
		Bundle:      c.Bundle,
		Annotations: c.Annotations,
	}
	if st != specs.StateStopped {
		s.Pid = c.Pid
	}
	return s, nil
}

// lockWait bounds how long a command waits for another one's lock.
var lockWait = 10 * time.Second

// Lock takes the container's lock for a command that changes it.
func (c *Container) Lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(c.Dir, lockFile), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("container %q: lock: %w", c.ID, err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("container %q: lock: %w", c.ID, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("container %q: another command holds its lock (waited %v)", c.ID, lockWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StatePaused is runc's status of a frozen container (runtime-spec names
// no constant for it).
const StatePaused specs.ContainerState = "paused"
