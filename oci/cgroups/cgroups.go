// Package cgroups places an OCI container in its cgroup (v2) and applies
// linux.resources: create, move a process in, set, update, freeze/thaw,
// list its processes, kill and remove. Where no cgroup can be had (rootless
// on a hybrid or v1 host) it does what runc does there: limits are skipped,
// the reason is kept for the log, never a crash.
//
// Where the cgroup goes (linux.cgroupsPath, runc's cgroup v2 meaning):
//   - absolute: that path of the cgroup2 hierarchy (as the caller's
//     /proc/self/cgroup shows it), below the cgroup2 mount;
//   - relative: below the caller's own cgroup;
//   - empty: the caller's cgroup/sandbox-oci-<id> (runc takes the parent of
//     its own cgroup; a child is what a delegated, rootless caller may make);
//   - --systemd-cgroup: "slice:prefix:name", a transient prefix-name.scope
//     in slice (Delegate=yes) asked of systemd over D-Bus: the system bus
//     as root, the user bus rootless; empty is system.slice (root) or
//     user.slice (rootless) : sandbox-oci : <id>. The limits systemd
//     manages on a unit's own cgroup (MemoryMax, MemoryLow, MemorySwapMax,
//     TasksMax, CPUWeight, CPUQuota…) are also given as the scope's
//     properties, so that a daemon-reload keeps them.
//
// Conversions follow runc on cgroup v2: cpu.shares → cpu.weight, quota and
// period → cpu.max, memory.swap (memory+swap) → memory.swap.max = swap −
// limit, blockIO.weight → io.bfq.weight (else io.weight, rescaled),
// throttle devices → io.max, pids, cpuset, hugetlb.<size>.max, rdma.max,
// and linux.resources.unified last (keys: files of cgroup v2 controllers,
// no "/" or ".."). Fields only cgroup v1 has (kernel memory, swappiness,
// disableOOMKiller, real-time CPU, leaf weights, network) are errors
// naming the field; so is a limit whose controller cannot be enabled.
// Device rules: as root a cgroup device program (BPF) enforces them after
// runc's default devices; rootless they are accepted (see devices.go).
//
// Rootless: a cgroup that cannot be created or entered is skipped (Skipped
// says why, Path is "") when no limit was asked for, or on a hybrid or a
// cgroup v1 host (v1 holds the controllers: runc's v1 rootless behaviour);
// on a hybrid host whose cgroup v2 can be had, the cgroup is kept and the
// limits whose controller is missing from cgroup v2 are skipped too and
// said in Skipped. On a pure cgroup v2 host a limit asked for and not
// applicable is an error, as in runc. As root every failure is an error;
// with no limits a cgroup is still made on a hybrid host, so that pause
// (cgroup.freeze) and kill --all (cgroup.kill) work; a host without
// cgroup2 is an error as root (device rules could not be enforced).
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/cgroupdelegate"
)

// Options is how the runtime was invoked.
type Options struct {
	Systemd  bool // --systemd-cgroup: cgroupsPath is "slice:prefix:name"
	Rootless bool // not root in the initial user namespace
}

// Manager is one container's cgroup; it is stored in the container's
// record (JSON) so that later commands (update, pause, delete) find it.
type Manager struct {
	Path string `json:"path,omitempty"` // absolute directory of the cgroup; "" when skipped
	// Skipped says what was skipped and why: the whole cgroup (Path is "")
	// or, rootless on a hybrid host, the limits cgroup v2 cannot hold there.
	// "" when nothing was.
	Skipped string `json:"skipped,omitempty"`
	Systemd bool   `json:"systemd,omitempty"`

	// Mount is the cgroup2 mount point the cgroup lives under.
	Mount    string `json:"mount,omitempty"`
	Rootless bool   `json:"rootless,omitempty"`
	// Unit and Slice are the transient scope and its slice (Systemd).
	Unit  string `json:"unit,omitempty"`
	Slice string `json:"slice,omitempty"`
	// Devices are the device rules enforced since Apply (as root), which
	// update cannot change.
	Devices []specs.LinuxDeviceCgroup `json:"devices,omitempty"`

	mnt    *cgroupdelegate.Mount // nil until needed, then read from the host
	v1Only bool                  // rootless on a host without cgroup2 (New)
}

// ErrNoCgroup is wrapped by the operations that need the container's
// cgroup when it has none (Skipped).
var ErrNoCgroup = errors.New("the container has no cgroup of its own")

// waitBound bounds every wait of this package (freezing, emptying).
const waitBound = 5 * time.Second

// host is what New reads from the system.
type host struct {
	mnt        cgroupdelegate.Mount
	procCgroup string // the text of /proc/self/cgroup
}

func loadHost() (host, error) {
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		return host{}, fmt.Errorf("reading the mount table: %w", err)
	}
	mnt, err := cgroupdelegate.FindMount(infos)
	if err != nil {
		return host{}, err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return host{}, err
	}
	return host{mnt, string(b)}, nil
}

// New decides the container's cgroup from linux.cgroupsPath and checks
// linux.resources (pure: errors name the field).
func New(id, cgroupsPath string, r *specs.LinuxResources, o Options) (*Manager, error) {
	if _, err := plan(r); err != nil {
		return nil, err
	}
	h, err := loadHost()
	if err != nil {
		if o.Rootless {
			// A cgroup v1 host: runc's rootless skips the cgroup and the
			// limits there.
			return &Manager{Skipped: "no cgroup v2 hierarchy (" + err.Error() + "), no cgroup and no limits, as runc does rootless on a cgroup v1 host", Rootless: true, v1Only: true}, nil
		}
		return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	return newManager(h, id, cgroupsPath, o)
}

func newManager(h host, id, cgroupsPath string, o Options) (*Manager, error) {
	m := &Manager{Systemd: o.Systemd, Rootless: o.Rootless, Mount: h.mnt.Point, mnt: &h.mnt}
	if o.Systemd {
		slice, unit, err := systemdUnit(id, cgroupsPath, o.Rootless)
		if err != nil {
			return nil, err
		}
		m.Slice, m.Unit = slice, unit
		return m, nil
	}
	if strings.ContainsRune(cgroupsPath, 0) || slices.Contains(strings.Split(cgroupsPath, "/"), "..") {
		return nil, fmt.Errorf("linux.cgroupsPath: %q has a .. component", cgroupsPath)
	}
	if filepath.IsAbs(cgroupsPath) {
		p := filepath.Clean(cgroupsPath)
		if p == "/" {
			return nil, errors.New("linux.cgroupsPath: / is the root cgroup, which a container cannot have")
		}
		dir, err := h.mnt.Dir(p)
		if err != nil {
			return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
		}
		m.Path = dir
		return m, nil
	}
	if cgroupsPath == "" {
		if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
			return nil, fmt.Errorf("container id %q cannot name a cgroup", id)
		}
		cgroupsPath = "sandbox-oci-" + id
	}
	base, err := h.mnt.Base(h.procCgroup)
	if err != nil {
		if o.Rootless {
			return &Manager{Skipped: err.Error(), Rootless: true}, nil
		}
		return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	m.Path = filepath.Join(base, filepath.Clean(cgroupsPath))
	if m.Path == base {
		return nil, fmt.Errorf("linux.cgroupsPath: %q names the caller's own cgroup", cgroupsPath)
	}
	return m, nil
}

// systemdUnit reads "slice:prefix:name" into the slice and the scope.
func systemdUnit(id, p string, rootless bool) (slice, unit string, err error) {
	if p == "" {
		slice = "system.slice"
		if rootless {
			slice = "user.slice"
		}
		p = slice + ":sandbox-oci:" + id
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("linux.cgroupsPath: %q is not slice:prefix:name (--systemd-cgroup)", p)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	for _, s := range parts {
		if strings.ContainsAny(s, "/\x00\n ") {
			return "", "", fmt.Errorf("linux.cgroupsPath: %q: a part holds /, a space or a control character", p)
		}
	}
	if slice != "" && (!strings.HasSuffix(slice, ".slice") || slice == ".slice") {
		return "", "", fmt.Errorf("linux.cgroupsPath: %q: the slice %q does not end in .slice", p, slice)
	}
	if slice == "" {
		slice = "system.slice"
		if rootless {
			slice = "user.slice"
		}
	}
	if name == "" || strings.HasSuffix(name, ".slice") {
		return "", "", fmt.Errorf("linux.cgroupsPath: %q: the name must be a scope's name (not empty, not a .slice)", p)
	}
	if prefix == "" {
		return slice, name + ".scope", nil
	}
	return slice, prefix + "-" + name + ".scope", nil
}

// mount is the cgroup2 mount (read again in a later command).
func (m *Manager) mount() (*cgroupdelegate.Mount, error) {
	if m.mnt == nil {
		h, err := loadHost()
		if err != nil {
			return nil, err
		}
		m.mnt = &h.mnt
	}
	return m.mnt, nil
}

// Apply creates the cgroup, moves pid into it and applies the resources.
func (m *Manager) Apply(pid int, r *specs.LinuxResources) error {
	ws, err := plan(r)
	if err != nil {
		return err
	}
	var rules []specs.LinuxDeviceCgroup
	if r != nil {
		rules = r.Devices
	}
	if m.Path == "" && m.Skipped != "" {
		if len(ws) > 0 && !m.v1Only && !m.hybrid() {
			return fmt.Errorf("%s: %s, and limits were asked for", ws[0].field, m.Skipped)
		}
		return nil
	}
	// skip says why the cgroup cannot be had rootless, or fails.
	skip := func(err error) error {
		if m.Rootless && (len(ws) == 0 || m.hybrid()) {
			m.Skipped = "rootless, no cgroup: " + err.Error()
			m.Path = ""
			return nil
		}
		if len(ws) > 0 {
			return fmt.Errorf("%s: %w", ws[0].field, err)
		}
		return fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	made := false
	if m.Systemd {
		if err := m.startScope(pid, ws); err != nil {
			return err
		}
	} else {
		if _, err := os.Stat(m.Path); errors.Is(err, os.ErrNotExist) {
			made = true
		}
		if err := os.MkdirAll(m.Path, 0o755); err != nil {
			return skip(fmt.Errorf("creating the cgroup: %w", err))
		}
	}
	ws, err = m.enable(ws)
	if err != nil {
		return m.undo(made, err)
	}
	// As root the device rules (and runc's default devices) are enforced
	// before the init may run anything; rootless see devices.go.
	if !m.Rootless {
		if err := attachDevices(m.Path, rules); err != nil {
			return m.undo(made, err)
		}
		m.Devices = rules
	}
	if !m.Systemd {
		if err := cgroupdelegate.WriteFile(m.Path, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			err = skip(fmt.Errorf("moving the container's init %d into %s: %w", pid, m.Path, err))
			if err == nil && made {
				unix.Rmdir(m.Path)
			}
			return err
		}
	}
	return m.undo(false, m.write(ws))
}

// undo removes a cgroup Apply made, when it fails before moving anything in.
func (m *Manager) undo(made bool, err error) error {
	if err != nil && made {
		unix.Rmdir(m.Path)
	}
	return err
}

func (m *Manager) hybrid() bool {
	mnt, err := m.mount()
	return err == nil && mnt.Hybrid()
}

// enable turns on, from the mount point down to the cgroup's parent, the
// controllers the writes need. Rootless on a hybrid host, writes whose
// controller cgroup v2 does not have are dropped and said in Skipped.
func (m *Manager) enable(ws []write) ([]write, error) {
	mnt, err := m.mount()
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(mnt.Point, m.Path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("the cgroup %s is not below the cgroup2 mount %s", m.Path, mnt.Point)
	}
	var skipped []string
	for _, c := range controllers(ws) {
		err := enableDown(mnt.Point, rel, c)
		if err == nil {
			continue
		}
		var fields []string
		for _, w := range ws {
			if w.ctrl == c {
				fields = append(fields, w.field)
			}
		}
		if owner := mnt.V1Owner(c); owner != "" {
			err = fmt.Errorf("%w (hybrid host: cgroup v1 holds it, at %s)", err, owner)
		}
		if m.Rootless && mnt.Hybrid() {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", strings.Join(fields, ", "), err))
			ws = slices.DeleteFunc(ws, func(w write) bool { return w.ctrl == c })
			continue
		}
		return nil, fmt.Errorf("%s: %w", fields[0], err)
	}
	if len(skipped) > 0 {
		m.Skipped = "rootless on a hybrid cgroup host, limits skipped: " + strings.Join(skipped, "; ")
	}
	return ws, nil
}

// enableDown enables controller c in every cgroup from point down to the
// parent of point/rel, where it is not on yet.
func enableDown(point, rel, c string) error {
	dir := point
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		on, err := cgroupdelegate.List(dir, "cgroup.subtree_control")
		if err != nil {
			return fmt.Errorf("reading %s/cgroup.subtree_control: %w", dir, err)
		}
		if !slices.Contains(on, c) {
			avail, err := cgroupdelegate.List(dir, "cgroup.controllers")
			if err != nil {
				return fmt.Errorf("reading %s/cgroup.controllers: %w", dir, err)
			}
			if !slices.Contains(avail, c) {
				return fmt.Errorf("the %s controller is not available in %s", c, dir)
			}
			if err := cgroupdelegate.Enable(dir, []string{c}); err != nil {
				return err
			}
		}
		dir = filepath.Join(dir, p)
	}
	return nil
}

// write writes the limits, each error naming its field.
func (m *Manager) write(ws []write) error {
	for _, w := range ws {
		file, value := w.file, w.value
		err := cgroupdelegate.WriteFile(m.Path, file, value)
		if errors.Is(err, os.ErrNotExist) && w.alt != "" {
			file, value = w.alt, w.altValue
			err = cgroupdelegate.WriteFile(m.Path, file, value)
		}
		if err == nil || errors.Is(err, os.ErrNotExist) && w.missingOK {
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %s does not exist in %s (this kernel lacks it)", w.field, file, m.Path)
		}
		return fmt.Errorf("%s: writing %q to %s: %w", w.field, value, filepath.Join(m.Path, file), err)
	}
	return nil
}

// need returns ErrNoCgroup, with the reason, when the container has none.
func (m *Manager) need(what string) error {
	if m.Path == "" {
		why := m.Skipped
		if why == "" {
			why = "none was made"
		}
		return fmt.Errorf("%s: %w (%s)", what, ErrNoCgroup, why)
	}
	return nil
}

// Set applies new resources (update). Only the fields given are written.
func (m *Manager) Set(r *specs.LinuxResources) error {
	if err := m.need("linux.resources"); err != nil {
		return err
	}
	ws, err := plan(r)
	if err != nil {
		return err
	}
	// Engines pass the whole linux.resources to update: the device rules
	// as created are fine, other ones cannot be had.
	if r != nil && len(r.Devices) > 0 && !reflect.DeepEqual(r.Devices, m.Devices) && !m.Rootless {
		return errors.New("linux.resources.devices: device rules cannot be changed by update")
	}
	if r == nil {
		return nil
	}
	if mem := r.Memory; mem != nil && mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate && mem.Limit != nil && *mem.Limit > 0 {
		cur, err := readInt(m.Path, "memory.current")
		if err != nil {
			return fmt.Errorf("linux.resources.memory.checkBeforeUpdate: %w", err)
		}
		if *mem.Limit < cur {
			return fmt.Errorf("linux.resources.memory.limit: %d is below the container's current usage %d (checkBeforeUpdate)", *mem.Limit, cur)
		}
	}
	// Update is explicit: nothing is skipped, rootless or not.
	rootless := m.Rootless
	m.Rootless = false
	ws, err = m.enable(ws)
	m.Rootless = rootless
	if err != nil {
		return err
	}
	if m.Systemd && m.Unit != "" {
		if err := m.setScope(ws); err != nil {
			return err
		}
	}
	return m.write(ws)
}

func readInt(dir, file string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// Freeze and Thaw pause and resume every process of the cgroup.
func (m *Manager) Freeze() error { return m.freeze(true) }

// Thaw resumes a frozen cgroup.
func (m *Manager) Thaw() error { return m.freeze(false) }

func (m *Manager) freeze(on bool) error {
	what := "pause"
	v := "1"
	if !on {
		what, v = "resume", "0"
	}
	if err := m.need(what); err != nil {
		return err
	}
	if err := cgroupdelegate.WriteFile(m.Path, "cgroup.freeze", v); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %s has no cgroup.freeze (the cgroup v2 freezer needs Linux 5.2)", what, m.Path)
		}
		return fmt.Errorf("%s: writing %s to %s/cgroup.freeze: %w", what, v, m.Path, err)
	}
	// The kernel freezes asynchronously; cgroup.events says when it is done.
	deadline := time.Now().Add(waitBound)
	for {
		frozen, err := m.Frozen()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if frozen == on {
			return nil
		}
		if time.Now().After(deadline) {
			if on {
				cgroupdelegate.WriteFile(m.Path, "cgroup.freeze", "0")
			}
			return fmt.Errorf("%s: %s/cgroup.events did not say frozen %s within %v", what, m.Path, v, waitBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Frozen reports whether the cgroup is frozen.
func (m *Manager) Frozen() (bool, error) {
	if m.Path == "" {
		return false, nil
	}
	n, err := cgroupdelegate.Key(m.Path, "cgroup.events", "frozen")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return n == 1, nil
}

// maxPids bounds what Pids collects.
const maxPids = 1 << 20

// Pids lists the cgroup's processes (recursively).
func (m *Manager) Pids() ([]int, error) {
	if err := m.need("listing the container's processes"); err != nil {
		return nil, err
	}
	var pids []int
	err := filepath.WalkDir(m.Path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if p != m.Path && errors.Is(err, os.ErrNotExist) {
				return nil // a child removed meanwhile
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		ps, err := cgroupdelegate.Procs(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		pids = append(pids, ps...)
		if len(pids) > maxPids {
			return fmt.Errorf("more than %d processes", maxPids)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the processes of %s: %w", m.Path, err)
	}
	return pids, nil
}

// Signal sends sig to every process of the cgroup (kill --all).
func (m *Manager) Signal(sig int) error {
	if err := m.need("signalling every process of the container"); err != nil {
		return err
	}
	if unix.Signal(sig) == unix.SIGKILL {
		if err := cgroupdelegate.Kill(m.Path); err != nil {
			return fmt.Errorf("killing the processes of %s: %w", m.Path, err)
		}
		return nil
	}
	pids, err := m.Pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.Signal(sig)); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling process %d: %w", pid, err)
		}
	}
	return nil
}

// Destroy kills what is left and removes the cgroup.
func (m *Manager) Destroy() error {
	var errs []error
	if m.Path != "" {
		if _, err := os.Stat(m.Path); err == nil {
			if err := cgroupdelegate.Kill(m.Path); err != nil {
				errs = append(errs, fmt.Errorf("killing the processes of %s: %w", m.Path, err))
			} else if err := waitEmpty(m.Path); err != nil {
				errs = append(errs, err)
			}
			if err := cgroupdelegate.Remove(m.Path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if m.Systemd && m.Unit != "" {
		if err := m.stopScope(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitEmpty waits, bounded, until no process is left below dir.
func waitEmpty(dir string) error {
	deadline := time.Now().Add(waitBound)
	for {
		n, err := cgroupdelegate.Key(dir, "cgroup.events", "populated")
		if err != nil || n == 0 {
			return nil // no cgroup.events: Remove's own retries wait
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s survived SIGKILL for %v", dir, waitBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
