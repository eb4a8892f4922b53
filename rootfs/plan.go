// Package rootfs builds a sandbox's root filesystem inside its mount
// namespace. Planning is pure (host facts in, a list of Steps out) and runs
// in the parent, so bad input fails before any namespace exists; Execute runs
// the steps in the child and pivot_roots into the result.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"syscall"

	fuseoverlay "sandbox/fuse-overlay"

	"golang.org/x/sys/unix"
)

// Op is what one step does.
type Op string

// Step operations.
const (
	OpTmpfs    Op = "tmpfs"    // empty tmpfs at Target (Data: mount options)
	OpOverlay  Op = "overlay"  // overlay of Lower (+ Upper/Work, or an ephemeral upper)
	OpBind     Op = "bind"     // recursive bind of host Source at Target
	OpSymlink  Op = "symlink"  // symlink Target -> Data
	OpMkdir    Op = "mkdir"    // directory Target with Mode
	OpFile     Op = "file"     // a file with content Data, bound read-only onto Target
	OpProc     Op = "proc"     // procfs for the new pid namespace
	OpSysfs    Op = "sysfs"    // sysfs, read-only (a read-only bind of /sys if refused)
	OpDevpts   Op = "devpts"   // private devpts instance (Data: options)
	OpMqueue   Op = "mqueue"   // POSIX message queues of the new ipc namespace
	OpMask     Op = "mask"     // hide Target: /dev/null over a file, empty read-only tmpfs over a dir
	OpReadOnly Op = "readonly" // make the mount at Target (and below) read-only
	// OpReadOnlyMount makes the mount at Target read-only, not the mounts
	// below it: a --read-only host directory layered writable for the
	// sandbox's mount points, whose shares stay as they were asked.
	OpReadOnlyMount Op = "readonly-mount"
)

// Step is one planned action; paths in Target are inside the new root,
// paths in Source, Lower, Upper and Work are on the host.
type Step struct {
	Op       Op       `json:"op"`
	Target   string   `json:"target"`
	Source   string   `json:"source,omitempty"`
	Lower    []string `json:"lower,omitempty"` // top first, as overlayfs orders them; none: an empty dir
	Upper    string   `json:"upper,omitempty"`
	Work     string   `json:"work,omitempty"`
	Data     string   `json:"data,omitempty"`
	Mode     uint32   `json:"mode,omitempty"`
	ReadOnly bool     `json:"ro,omitempty"`
	File     bool     `json:"file,omitempty"` // the target is a file, not a directory
	// Optional: skip when the target does not exist; for the host's own
	// entries, when a host path the step reads is gone by mount time.
	Optional bool `json:"optional,omitempty"`
	// CopyUp (an overlay's): directories below Target, relative, parents
	// first, made in its upper before it is mounted with the host's mode:
	// the way to the mount point of a share the host lacks, which then
	// can be made through the overlay even where the host's directory
	// belongs to a user the sandbox does not map (root's /usr/local).
	CopyUp []string `json:"copy_up,omitempty"`
}

func (s Step) String() string {
	switch s.Op {
	case OpBind:
		ro := ""
		if s.ReadOnly {
			ro = " (ro)"
		}
		return fmt.Sprintf("bind %s on %s%s", s.Source, s.Target, ro)
	case OpOverlay:
		return fmt.Sprintf("overlay %s on %s", strings.Join(s.Lower, ":"), s.Target)
	case OpSymlink:
		return fmt.Sprintf("symlink %s -> %s", s.Target, s.Data)
	}
	return fmt.Sprintf("%s on %s", s.Op, s.Target)
}

// Plan is the whole root: how "/" itself is made, then the steps in order.
type Plan struct {
	Root         Step   `json:"root"`  // OpTmpfs (host mode) or OpOverlay (rootfs mode)
	Steps        []Step `json:"steps"` //
	ReadOnlyRoot bool   `json:"ro_root,omitempty"`
	// Chdir is where the payload starts (inside).
	Chdir   string  `json:"chdir"`
	Overlay Overlay `json:"overlay"`
	// Ephemeral is where every ephemeral write goes.
	Ephemeral Ephemeral `json:"ephemeral"`
}

// Ephemeral is the sandbox's ephemeral writable storage: one staging area
// holds the root skeleton, every ephemeral upper layer and every writable
// tmpfs of the plan (/tmp, /run, /dev, /dev/shm, the homes, --tmpfs), each
// of those a bind of a directory of it, so one budget bounds them all.
type Ephemeral struct {
	// Dir is a host directory bound as the staging area (--ephemeral=disk);
	// "" is a tmpfs.
	Dir string `json:"dir,omitempty"`
	// Size and Inodes bound the tmpfs (size=, nr_inodes=); 0 leaves the
	// kernel's default.
	Size   int64 `json:"size,omitempty"`
	Inodes int64 `json:"inodes,omitempty"`
}

// Overlay is how the plan's overlays are mounted.
type Overlay struct {
	// Driver: kernel, fuse, or auto (kernel, and fuse-overlayfs for each
	// mount the kernel refuses); "" is kernel.
	Driver fuseoverlay.Driver `json:"driver,omitempty"`
	// FuseBin is fuse-overlayfs' path, or "" when it cannot work here
	// (FuseProblem says why).
	FuseBin     string `json:"fuse_bin,omitempty"`
	FuseProblem string `json:"fuse_problem,omitempty"`
	// Marker is the persistent --upper directory, where the driver that
	// writes it is recorded; "" without one.
	Marker string `json:"marker,omitempty"`
}

// Bind is a user's --bind.
type Bind struct {
	Source, Target string
	ReadOnly       bool
}

// CwdMode is how the working directory is shared.
type CwdMode string

// Working-directory modes.
const (
	CwdRW   CwdMode = "rw"
	CwdRO   CwdMode = "ro"
	CwdNone CwdMode = "none"
)

// Config is what the planner needs from the caller (already validated:
// absolute, clean paths).
type Config struct {
	Rootfs   string   // "" = the host's own directories
	Layers   []string // bottom to top
	Upper    string   // "" = ephemeral
	ReadOnly bool
	Hidden   []string // homes to hide behind empty tmpfs (host mode)
	Home     string   // the caller's home, created empty and writable inside
	Cwd      string
	CwdMode  CwdMode
	Binds    []Bind
	Tmpfs    []string
	Chdir    string // "" = Cwd when shared, else "/"
	// HostUID says whether a host uid is an id of the sandbox (its maps
	// give it an inside id); nil: every directory is treated as open.
	HostUID func(uid uint32) bool
	Hosts   string // content for /etc/hosts
	Resolv  string // content for /etc/resolv.conf, or "" to keep the root's
	// Masked are paths inside hidden under an empty read-only mount: where
	// a share (the host's directories, the working directory, a bind, the
	// rootfs) shows sandbox's own state.
	Masked []string
	// DevptsGID is the tty group inside, or -1 when it is not mapped.
	DevptsGID int
	Overlay   Overlay   // Marker is set from Upper
	Ephemeral Ephemeral // where ephemeral writes go
	// UnmaskProc leaves /proc's masked and read-only entries alone: the
	// kernel mounts a new proc (a nested sandbox's or container's) only
	// where every mount on /proc could be undone.
	UnmaskProc bool
}

// Mount is the part of a host mount the planner uses.
type Mount struct {
	Point  string
	FSType string
}

// HostFS is the read-only view of the host the planner lists directories
// through (the os, or a fixture in tests).
type HostFS interface {
	ReadDir(dir string) ([]fs.DirEntry, error)
	// Empty says whether dir has no entries, reading at most one (a
	// directory of a million files costs no more than an empty one).
	Empty(dir string) (bool, error)
	Stat(name string) (fs.FileInfo, error)
	Readlink(name string) (string, error)
}

// The sets below are switches, not map literals: a map literal is built
// by code at every start of every program that links the package.

// network: filesystem types whose mount point the planner never stats
// or lists: a stale or hung server would block the run. Such a mount is
// shown as it is, read-only.
func network(fstype string) bool {
	switch fstype {
	case "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs",
		"fuse.glusterfs", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "afs",
		"lustre", "9p", "ncpfs", "coda", "fuse.gvfsd-fuse":
		return true
	}
	return false
}

// fresh: top-level directories the sandbox always builds anew.
func fresh(dir string) bool {
	switch dir {
	case "/proc", "/sys", "/dev", "/tmp", "/run":
		return true
	}
	return false
}

// virtual: filesystem types that carry no user data; their mounts are
// never layered into the root.
func virtual(fstype string) bool {
	switch fstype {
	case "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2",
		"mqueue", "debugfs", "tracefs", "securityfs", "pstore", "bpf",
		"configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc",
		"efivarfs", "nsfs", "rpc_pipefs", "selinuxfs":
		return true
	}
	return false
}

// MaskedPaths and ReadOnlyPaths follow runc's and podman's defaults.
var (
	MaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
	}
	ReadOnlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// devices are the host device nodes bound into the sandbox's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

type planner struct {
	cfg    Config
	host   HostFS
	mounts []Mount
	hidden map[string]bool
	plan   Plan
	upperN int
	// lateRO are --read-only host directories layered writable so that
	// the sandbox's files and mount points can be created in them; made
	// read-only after.
	lateRO []string
}

// Build plans the root filesystem.
func Build(cfg Config, host HostFS, mounts []Mount) (*Plan, error) {
	p := &planner{cfg: cfg, host: bounded{host, hostTimeout}, mounts: mounts, hidden: map[string]bool{}}
	for _, h := range cfg.Hidden {
		p.hidden[h] = true
	}
	if cfg.Rootfs != "" {
		lower := []string{}
		for i := len(cfg.Layers) - 1; i >= 0; i-- {
			lower = append(lower, cfg.Layers[i])
		}
		lower = append(lower, cfg.Rootfs)
		// Always an upper (ephemeral when not persistent) so that mount points
		// can be created; --read-only remounts the root read-only at the end.
		p.plan.Root = p.overlay("/", lower)
		p.plan.ReadOnlyRoot = cfg.ReadOnly
	} else {
		p.plan.Root = Step{Op: OpTmpfs, Target: "/", Data: "mode=0755"}
		if cfg.Upper != "" {
			// The skeleton itself is layered too, so that changes at the top
			// level (and in split directories) persist: upper/ mirrors the
			// whole root. Its workdir stays out of work/, where a host
			// directory named /work would meet overlayfs's own work/work.
			p.plan.Root = Step{Op: OpOverlay, Target: "/", Upper: path.Join(cfg.Upper, "upper"),
				Work: path.Join(cfg.Upper, "rootwork"), Mode: 0o755}
		}
		p.plan.ReadOnlyRoot = cfg.ReadOnly
		if err := p.hostRoot(); err != nil {
			return nil, err
		}
	}
	p.system()
	if cfg.Rootfs == "" {
		for _, h := range cfg.Hidden {
			p.add(Step{Op: OpTmpfs, Target: h, Data: "mode=0755"})
		}
		if cfg.Home != "" {
			p.add(Step{Op: OpMkdir, Target: cfg.Home, Mode: 0o700})
		}
	}
	var shares []Step
	if cfg.Cwd != "" && cfg.CwdMode != CwdNone {
		shares = append(shares, Step{Op: OpBind, Source: cfg.Cwd, Target: cfg.Cwd, ReadOnly: cfg.CwdMode == CwdRO})
	}
	for _, b := range cfg.Binds {
		shares = append(shares, Step{Op: OpBind, Source: b.Source, Target: b.Target, ReadOnly: b.ReadOnly})
	}
	for _, t := range cfg.Tmpfs {
		shares = append(shares, Step{Op: OpTmpfs, Target: t, Data: "mode=0755"})
	}
	// Outer targets first, so that nothing covers what is asked below it
	// (--tmpfs /opt with --bind X:/opt/x; the working directory under a
	// --tmpfs /tmp): before, every --tmpfs came last and hid the binds and
	// the working directory below it. Equal depths keep their order (the
	// later of two at one target is on top).
	sort.SliceStable(shares, func(i, j int) bool { return depth(shares[i].Target) < depth(shares[j].Target) })
	for _, st := range shares {
		p.add(st)
	}
	// The generated files give way to a bind of the user's at them or at a
	// directory above (--bind myhosts:/etc/hosts, --bind DIR:/etc): what
	// was asked for is seen, and nothing is made in a host directory.
	bound := func(target string) bool {
		return slices.ContainsFunc(cfg.Binds, func(b Bind) bool { return atOrBelow(target, b.Target) })
	}
	if cfg.Hosts != "" && !bound("/etc/hosts") {
		p.add(Step{Op: OpFile, Target: "/etc/hosts", Data: cfg.Hosts, Mode: 0o644})
	}
	if cfg.Resolv != "" && !bound("/etc/resolv.conf") {
		p.add(Step{Op: OpFile, Target: "/etc/resolv.conf", Data: cfg.Resolv, Mode: 0o644})
	}
	for _, d := range p.lateRO {
		p.add(Step{Op: OpReadOnlyMount, Target: d, Optional: true})
	}
	for _, m := range cfg.Masked {
		p.add(Step{Op: OpMask, Target: m, Optional: true})
	}
	for _, m := range MaskedPaths {
		if !cfg.UnmaskProc || !strings.HasPrefix(m, "/proc/") {
			p.add(Step{Op: OpMask, Target: m, Optional: true})
		}
	}
	for _, r := range ReadOnlyPaths {
		if !cfg.UnmaskProc || !strings.HasPrefix(r, "/proc/") {
			p.add(Step{Op: OpReadOnly, Target: r, Optional: true})
		}
	}
	p.plan.Overlay = cfg.Overlay
	p.plan.Overlay.Marker = cfg.Upper
	p.plan.Ephemeral = cfg.Ephemeral
	p.plan.Chdir = cfg.Chdir
	if p.plan.Chdir == "" {
		p.plan.Chdir = "/"
		if cfg.Cwd != "" && cfg.CwdMode != CwdNone {
			p.plan.Chdir = cfg.Cwd
		}
	}
	return &p.plan, nil
}

func (p *planner) add(s Step) { p.plan.Steps = append(p.plan.Steps, s) }

// depth is the number of components of an absolute path ("/" is 0).
func depth(p string) int {
	if p = path.Clean(p); p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// overlay plans an overlay at target; its upper is persistent under
// cfg.Upper (mirroring the root's paths) or ephemeral.
func (p *planner) overlay(target string, lower []string) Step {
	s := Step{Op: OpOverlay, Target: target, Lower: lower}
	if p.cfg.Upper != "" {
		rel := strings.TrimPrefix(target, "/")
		s.Upper = path.Join(p.cfg.Upper, "upper", rel)
		s.Work = path.Join(p.cfg.Upper, "work", rel)
	}
	return s
}

// hostRoot layers every host top-level directory that is not built anew.
func (p *planner) hostRoot() error {
	names, err := p.union("/")
	if err != nil {
		return err
	}
	for _, name := range names {
		full := "/" + name
		if fresh(full) || p.hidden[full] {
			continue
		}
		if err := p.entry(full); err != nil {
			return err
		}
	}
	return nil
}

// empty says whether every copy of a directory (its sources: the host's
// and the layers') is empty, a copy gone since counting as empty; not when
// any copy cannot be read.
func (p *planner) empty(copies []string) bool {
	for _, base := range copies {
		e, err := p.host.Empty(base)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || !e {
			return false
		}
	}
	return true
}

// closed says whether no process of the sandbox can open the directory fi
// describes, nor change it: its owner is no id of the sandbox, so that no
// process inside is its owner and no capability there applies to it (the
// kernel's privileged_wrt_inode_uidgid), and it grants its group and
// others nothing (an ACL's entries are masked by the group bits).
func (p *planner) closed(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || p.cfg.HostUID == nil || fi.Mode().Perm()&0o077 != 0 {
		return false
	}
	return !p.cfg.HostUID(st.Uid)
}

// errUnlisted: the host's own copy of a directory could not be listed.
var errUnlisted = errors.New("cannot list")

// union lists dir in the host and in every layer, sorted, deduplicated. A
// copy gone since (ENOENT) lists nothing; the host's own copy that cannot
// be listed (not readable by the caller, or its file system hangs) is
// errUnlisted.
func (p *planner) union(dir string) ([]string, error) {
	seen := map[string]bool{}
	for _, base := range p.sources(dir) {
		ents, err := p.host.ReadDir(base)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil && base == dir {
			return nil, fmt.Errorf("%w %s: %w", errUnlisted, base, err)
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", base, err)
		}
		for _, e := range ents {
			seen[e.Name()] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// sources returns the host directories that hold dir: the layers' copies,
// top first, then the host's own.
func (p *planner) sources(dir string) []string {
	var out []string
	for i := len(p.cfg.Layers) - 1; i >= 0; i-- {
		d := path.Join(p.cfg.Layers[i], dir)
		if fi, err := p.host.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	if fi, err := p.host.Stat(dir); err == nil && fi.IsDir() {
		out = append(out, dir)
	}
	return out
}

// entry plans one path of the host root (a top-level name, or a name inside
// a directory that had to be split).
func (p *planner) entry(full string) error {
	if p.isNetworkMount(full) {
		// Never stat nor list it (a hung server would hang the run): bind
		// it, read-only, as the caller sees it on the host.
		p.add(Step{Op: OpBind, Source: full, Target: full, ReadOnly: true, Optional: true})
		return nil
	}
	top := p.topmost(full)
	if top == "" {
		return nil
	}
	if target, err := p.host.Readlink(top); err == nil {
		p.add(Step{Op: OpSymlink, Target: full, Data: target})
		return nil
	}
	fi, err := p.host.Stat(top)
	if err != nil {
		return nil // vanished while we looked
	}
	if !fi.IsDir() {
		p.add(Step{Op: OpBind, Source: top, Target: full, ReadOnly: true, File: true, Optional: true})
		return nil
	}
	lower := p.sources(full)
	hostIsDir := len(lower) > 0 && lower[len(lower)-1] == full
	missing := p.missingMountPoints(full)
	late := p.cfg.ReadOnly && (p.missingFile(full) || len(missing) > 0)
	if p.cfg.ReadOnly && len(lower) == 1 && !late {
		// A read-only view needs no overlay; a recursive bind also keeps
		// the submounts the kernel would refuse to layer.
		p.add(Step{Op: OpBind, Source: lower[0], Target: full, ReadOnly: true, Optional: true})
		return nil
	}
	if !hostIsDir || !p.hasSubmounts(full) {
		if !p.cfg.ReadOnly && p.empty(lower) {
			// Nothing to layer: a directory of the skeleton (or of the
			// root's overlay, with --upper) shows and keeps the same, and
			// costs no overlay to mount and none to free at the end.
			p.add(Step{Op: OpMkdir, Target: full, Mode: uint32(fi.Mode().Perm())})
			return nil
		}
		if !p.cfg.ReadOnly && p.cfg.Upper == "" && hostIsDir && len(lower) == 1 && len(missing) == 0 && p.closed(fi) {
			// No process inside can open it (an ext4 root's /lost+found):
			// an overlay would show the same closed directory and take
			// no write, for a superblock to mount and one to free at the
			// end (an RCU grace period). The host's, read-only, as the
			// caller sees it there.
			p.add(Step{Op: OpBind, Source: full, Target: full, ReadOnly: true, Optional: true})
			return nil
		}
		s := p.overlay(full, lower)
		s.Mode = uint32(fi.Mode().Perm())
		s.Optional = true
		if p.cfg.ReadOnly && !late {
			s.Upper, s.Work, s.ReadOnly = "", "", true
		} else {
			s.CopyUp = p.copyUps(full, missing)
		}
		p.add(s)
		if late {
			p.lateRO = append(p.lateRO, full)
		}
		return nil
	}
	// (Split, a late one is a directory of the skeleton: writable until
	// the skeleton is made read-only at the end.)
	// The kernel refuses to layer a directory with mounts below it in a user
	// namespace (they are locked): rebuild it in the skeleton, entry by entry.
	names, err := p.union(full)
	if errors.Is(err, errUnlisted) {
		// The caller cannot list it on the host either (e.g. root's
		// /var/lib/docker, 0710): a read-only recursive bind shows it
		// exactly as the host does, its owner and mode (so still closed to
		// the caller) and its mounts, and lets nothing be written to it.
		p.add(Step{Op: OpBind, Source: full, Target: full, ReadOnly: true, Optional: true})
		return nil
	}
	if err != nil {
		return err
	}
	p.add(Step{Op: OpMkdir, Target: full, Mode: uint32(fi.Mode().Perm())})
	for _, n := range names {
		child := path.Join(full, n)
		if p.hidden[child] || p.isVirtualMount(child) {
			continue
		}
		if err := p.entry(child); err != nil {
			return err
		}
	}
	return nil
}

// topmost returns the highest-priority host path for full: a layer's copy,
// else the host's.
func (p *planner) topmost(full string) string {
	for i := len(p.cfg.Layers) - 1; i >= 0; i-- {
		if d := path.Join(p.cfg.Layers[i], full); p.exists(d) {
			return d
		}
	}
	if p.exists(full) {
		return full
	}
	return ""
}

// exists: name is there, as a file, a directory or a (dangling) symlink;
// a path that does not answer in time is not.
func (p *planner) exists(name string) bool {
	_, err := p.host.Stat(name)
	return err == nil || (!errors.Is(err, unix.ETIMEDOUT) && isLink(p.host, name))
}

func isLink(h HostFS, name string) bool {
	_, err := h.Readlink(name)
	return err == nil
}

func (p *planner) hasSubmounts(dir string) bool {
	for _, m := range p.mounts {
		if strings.HasPrefix(m.Point, dir+"/") {
			return true
		}
	}
	return false
}

// missingFile: dir is where the sandbox writes a file (/etc/hosts,
// /etc/resolv.conf) that the host lacks, so it must be created there.
func (p *planner) missingFile(dir string) bool {
	files := map[string]string{"/etc/hosts": p.cfg.Hosts, "/etc/resolv.conf": p.cfg.Resolv}
	for f, content := range files {
		if content != "" && path.Dir(f) == dir && p.topmost(f) == "" {
			return true
		}
	}
	return false
}

// missingMountPoints are the mount points below dir, of the shares (the
// working directory, the --binds, the --tmpfs), that the host lacks: they
// must be made in dir.
func (p *planner) missingMountPoints(dir string) []string {
	targets := slices.Clone(p.cfg.Tmpfs)
	if p.cfg.Cwd != "" && p.cfg.CwdMode != CwdNone {
		targets = append(targets, p.cfg.Cwd)
	}
	for _, b := range p.cfg.Binds {
		targets = append(targets, b.Target)
	}
	var out []string
	for _, t := range targets {
		if strings.HasPrefix(t, dir+"/") && p.topmost(t) == "" {
			out = append(out, t)
		}
	}
	return out
}

// copyUps is the CopyUp of the overlay on dir: each directory below dir
// on the way to a missing mount point (missingMountPoints) that the host
// has as a directory, parents first, up to the first it lacks or has as
// anything else.
func (p *planner) copyUps(dir string, missing []string) []string {
	var out []string
	for _, t := range missing {
		rel := ""
		for _, name := range strings.Split(strings.TrimPrefix(path.Dir(t), dir+"/"), "/") {
			if name == "" || path.Dir(t) == dir {
				break
			}
			rel = path.Join(rel, name)
			top := p.topmost(path.Join(dir, rel))
			if top == "" || isLink(p.host, top) {
				break
			}
			if fi, err := p.host.Stat(top); err != nil || !fi.IsDir() {
				break
			}
			if !slices.Contains(out, rel) {
				out = append(out, rel)
			}
		}
	}
	sort.Strings(out) // a parent sorts before what is below it
	return out
}

func (p *planner) isNetworkMount(dir string) bool {
	for _, m := range p.mounts {
		if m.Point == dir && network(m.FSType) {
			return true
		}
	}
	return false
}

func (p *planner) isVirtualMount(dir string) bool {
	for _, m := range p.mounts {
		if m.Point == dir && virtual(m.FSType) {
			return true
		}
	}
	return false
}

// system plans /proc, /dev, /sys, /tmp and (host mode) /run.
func (p *planner) system() {
	p.add(Step{Op: OpProc, Target: "/proc"})
	p.add(Step{Op: OpTmpfs, Target: "/dev", Data: "mode=0755"})
	for _, d := range devices {
		p.add(Step{Op: OpBind, Source: "/dev/" + d, Target: "/dev/" + d, File: true})
	}
	pts := "newinstance,ptmxmode=0666,mode=0620"
	if p.cfg.DevptsGID >= 0 {
		pts += fmt.Sprintf(",gid=%d", p.cfg.DevptsGID)
	}
	p.add(Step{Op: OpDevpts, Target: "/dev/pts", Data: pts})
	p.add(Step{Op: OpSymlink, Target: "/dev/ptmx", Data: "pts/ptmx"})
	p.add(Step{Op: OpTmpfs, Target: "/dev/shm", Data: "mode=1777"})
	p.add(Step{Op: OpMqueue, Target: "/dev/mqueue"})
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "core": "/proc/kcore",
	} {
		p.add(Step{Op: OpSymlink, Target: "/dev/" + name, Data: target})
	}
	sortSymlinks(p.plan.Steps)
	p.add(Step{Op: OpSysfs, Target: "/sys", Source: "/sys"})
	p.add(Step{Op: OpTmpfs, Target: "/tmp", Data: "mode=1777"})
	if p.cfg.Rootfs == "" {
		p.add(Step{Op: OpTmpfs, Target: "/run", Data: "mode=0755"})
	}
}

// sortSymlinks keeps the plan deterministic (map iteration above).
func sortSymlinks(steps []Step) {
	start := len(steps)
	for start > 0 && steps[start-1].Op == OpSymlink && strings.HasPrefix(steps[start-1].Target, "/dev/") &&
		steps[start-1].Target != "/dev/ptmx" {
		start--
	}
	tail := steps[start:]
	sort.Slice(tail, func(i, j int) bool { return tail[i].Target < tail[j].Target })
}

// HostPaths lists every host path the plan reads, so the child can open
// them all before it covers anything.
func (pl *Plan) HostPaths() []string {
	var out []string
	add := func(s Step) {
		if s.Source != "" {
			out = append(out, s.Source)
		}
		out = append(out, s.Lower...)
		if s.Upper != "" {
			out = append(out, s.Upper, s.Work)
		}
	}
	add(pl.Root)
	for _, s := range pl.Steps {
		add(s)
	}
	return out
}

// atOrBelow says whether the path p (inside) is dir or below it.
func atOrBelow(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
