package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/internal/inroot"

	"golang.org/x/sys/unix"
)

// staging is where the new root is assembled. A tmpfs (or the
// --ephemeral=disk directory) covers the host's /tmp in the sandbox's mount
// namespace only; every host path the plan reads was opened before that, so
// nothing under the host's /tmp is lost.
const staging = "/tmp"

// StepError says which step failed.
type StepError struct {
	Step Step
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Logf receives one line per step when verbose.
type Logf func(format string, args ...any)

// Warnf receives a warning (always printed): area names what fell back,
// taken what was used instead.
type Warnf func(area, taken, msg string)

type executor struct {
	plan *Plan
	host map[string]*os.File // host path -> O_PATH handle
	root *os.File
	n    int
	// kinds are the staging area's directories scratch has made.
	kinds map[string]bool
	logf  Logf
	warn  Warnf
	// marker is the --upper directory (O_PATH), marked the driver that
	// writes it; a persistent upper is written by one driver only.
	marker    *os.File
	marked    fuseoverlay.Driver
	usedUpper bool   // a kernel overlay already uses the persistent upper
	upperBind string // the --upper directory, bound for fuse-overlayfs
	// fellBack are the overlays fuse-overlayfs stood in for (auto), and
	// refusal the kernel's first answer: one warning names them all.
	fellBack []string
	refusal  error
	at       int // the index of the step being taken
}

// errShared: a file of the sandbox's own would be made in a directory
// shared from the host.
var errShared = errors.New("the path leads, through a symlink, into a directory shared from the host (the working directory or a --bind), where sandbox makes nothing of its own")

// ownDir lets sandbox make a file of its own (/etc/hosts, /etc/resolv.conf)
// in dirfd only on a file system of the sandbox's: the root, a tmpfs, an
// overlay. A symlink of an image (or of the host) could otherwise lead it
// into the shared working directory or a --bind and leave a file on the
// host. Asked only when such a file is to be made (rarely), so that the
// mounts are looked at then, not recorded on every run's way.
func (e *executor) ownDir(dirfd int) error {
	id, err := mountID(dirfd)
	if err != nil {
		return err
	}
	if root, err := mountID(int(e.root.Fd())); err == nil && root == id {
		return nil
	}
	done := e.plan.Steps[:e.at]
	for i, s := range done {
		if (s.Op != OpTmpfs && s.Op != OpOverlay) || coveredAfter(done[i+1:], s.Target) {
			continue
		}
		// Uncovered, the topmost mount at its target is the step's own,
		// if it was made: then the target is that mount's root.
		h, err := inroot.Open(e.root, s.Target)
		if err != nil {
			continue
		}
		var stx unix.Statx_t
		made := unix.Statx(int(h.Fd()), "", unix.AT_EMPTY_PATH, 0, &stx) == nil &&
			stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
		mid, err := mountID(int(h.Fd()))
		h.Close()
		if made && err == nil && mid == id {
			return nil
		}
	}
	return errShared
}

// coveredAfter says whether one of later mounts something at target or a
// directory above it (a user's --bind DIR:/etc over the host's /etc
// overlay): then what is at target is no longer that step's mount.
func coveredAfter(later []Step, target string) bool {
	for _, l := range later {
		switch l.Op {
		case OpMkdir, OpSymlink, OpFile, OpReadOnlyMount:
			continue
		}
		if atOrBelow(target, l.Target) {
			return true
		}
	}
	return false
}

// Overlays are the overlays this process mounted (init builds one root):
// the target inside and the driver that serves it, in mount order.
var Overlays []OverlayUse

// OverlayUse is one overlay mount and its driver.
type OverlayUse struct {
	Target string             `json:"target"`
	Driver fuseoverlay.Driver `json:"driver"`
}

// daemons are the fuse-overlayfs processes this process started (init
// builds one root), synced by SyncFuse before it exits.
var daemons []*fuseoverlay.Daemon

// SyncFuse hands what the kernel caches for the fuse-overlayfs mounts to
// their daemons, which die with the sandbox's PID 1.
func SyncFuse() error {
	var errs []error
	for _, d := range daemons {
		errs = append(errs, d.Sync())
	}
	return errors.Join(errs...)
}

// Execute builds the planned root and enters it. The caller is in fresh
// user and mount namespaces with full capabilities there. It returns how it
// entered the root ("pivot_root", or "MS_MOVE+chroot" where pivot_root is
// refused, e.g. on an initramfs).
func Execute(plan *Plan, logf Logf, warn Warnf) (string, error) {
	e := &executor{plan: plan, host: map[string]*os.File{}, logf: logf, warn: warn}
	defer e.closeAll()
	defer e.warnFellBack()
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", fmt.Errorf("making mounts private: %w", err)
	}
	gone := map[string]bool{} // host paths removed since planning
	for _, p := range append(plan.HostPaths(), "/dev/null") {
		err := e.open(p)
		if errors.Is(err, unix.ENOENT) {
			gone[p] = true
			continue
		}
		if err != nil {
			return "", err
		}
	}
	if missing := stepGone(plan.Root, gone); missing != "" {
		return "", &StepError{plan.Root, fmt.Errorf("opening host path %s: %w", missing, unix.ENOENT)}
	}
	if plan.Overlay.Marker != "" {
		var err error
		if e.marker, err = os.OpenFile(plan.Overlay.Marker, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return "", fmt.Errorf("opening the --upper directory: %w", err)
		}
	}
	if plan.Ephemeral.Dir != "" {
		if err := e.open(plan.Ephemeral.Dir); err != nil {
			return "", err
		}
	}
	if err := e.mountStaging(); err != nil {
		return "", err
	}
	newRoot := path.Join(staging, "root")
	if err := os.Mkdir(newRoot, 0o755); err != nil {
		return "", err
	}
	if err := e.mountRoot(newRoot); err != nil {
		return "", &StepError{plan.Root, err}
	}
	root, err := os.OpenFile(newRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	e.root = root
	for i, s := range plan.Steps {
		e.at = i
		if missing := stepGone(s, gone); missing != "" {
			if !s.Optional {
				return "", &StepError{s, fmt.Errorf("opening host path %s: %w", missing, unix.ENOENT)}
			}
			e.logf("%s: skipped, %s is gone from the host", s, missing)
			continue
		}
		err := e.step(s)
		if errors.Is(err, errAbsent) {
			continue
		}
		if err != nil {
			return "", &StepError{s, err}
		}
		e.logf("%s", s)
	}
	how, err := enter(newRoot)
	if err != nil {
		return "", err
	}
	if plan.ReadOnlyRoot {
		if err := setReadOnly(unix.AT_FDCWD, "/", false); err != nil {
			return "", fmt.Errorf("making / read-only: %w", err)
		}
	}
	return how, nil
}

// stepGone returns the first host path of s that is gone, or "".
func stepGone(s Step, gone map[string]bool) string {
	if len(gone) == 0 {
		return ""
	}
	for _, p := range (&Plan{Steps: []Step{s}}).HostPaths() {
		if gone[p] {
			return p
		}
	}
	return ""
}

// warnFellBack says, in one warning, which overlays fuse-overlayfs serves
// because the kernel refused them.
func (e *executor) warnFellBack() {
	if len(e.fellBack) == 0 {
		return
	}
	e.warn("overlay", "fuse-overlayfs", fmt.Sprintf("the kernel refused overlayfs (%v): fuse-overlayfs serves %s",
		unwrapMount(e.refusal), strings.Join(e.fellBack, " ")))
}

// errAbsent: an optional step's target does not exist here (e.g. a masked
// /proc file this kernel lacks); the step is skipped.
var errAbsent = errors.New("absent")

func (e *executor) open(p string) error {
	if _, ok := e.host[p]; ok {
		return nil
	}
	f, err := os.OpenFile(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening host path: %w", err)
	}
	e.host[p] = f
	return nil
}

func (e *executor) closeAll() {
	for _, f := range e.host {
		f.Close()
	}
	if e.root != nil {
		e.root.Close()
	}
	if e.marker != nil {
		e.marker.Close()
	}
}

func (e *executor) hostPath(p string) string { return inroot.ProcPath(e.host[p]) }

func (e *executor) mountRoot(target string) error {
	s := e.plan.Root
	if s.Op == OpTmpfs {
		// The skeleton is a directory of the staging area made a mount of
		// its own (pivot_root wants one): its writes count in the budget.
		if err := unix.Chmod(target, tmpfsMode(s.Data)); err != nil {
			return err
		}
		return unix.Mount(target, target, "", unix.MS_BIND, "")
	}
	return e.overlay(s, target)
}

// mountStaging mounts the staging area on staging: a tmpfs bounded by the
// plan's size, or a bind of the --ephemeral=disk directory.
func (e *executor) mountStaging() error {
	eph := e.plan.Ephemeral
	if eph.Dir == "" {
		opts := "mode=0700"
		if eph.Size > 0 {
			opts += ",size=" + strconv.FormatInt(eph.Size, 10)
		}
		if eph.Inodes > 0 {
			opts += ",nr_inodes=" + strconv.FormatInt(eph.Inodes, 10)
		}
		if err := unix.Mount("tmpfs", staging, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("mounting staging tmpfs on %s (%s): %w", staging, opts, err)
		}
		return nil
	}
	if err := unix.Mount(e.hostPath(eph.Dir), staging, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the ephemeral directory %s on %s: %w", eph.Dir, staging, err)
	}
	// As the tmpfs would be: no set-id or device files take effect there.
	// A remount would have to repeat the host mount's locked flags;
	// mount_setattr changes only these (absent before Linux 5.12: the
	// sandbox's no_new_privs and user namespace cover both anyway).
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(unix.AT_FDCWD, staging, 0, attr); err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("making the ephemeral directory nosuid,nodev: %w", err)
	}
	return nil
}

// tmpfs puts a fresh directory of the staging area, with the mode the
// step's options name, at target: a writable tmpfs of the plan, counted in
// the sandbox's one budget (the staging area's size, or the disk).
func (e *executor) tmpfs(target, data string) error {
	d, err := e.scratch("tmpfs", 0)
	if err != nil {
		return err
	}
	if err := unix.Chmod(d, tmpfsMode(data)); err != nil {
		return err
	}
	return unix.Mount(d, target, "", unix.MS_BIND, "")
}

// tmpfsMode is the mode= of tmpfs options (octal; 0755 when absent).
func tmpfsMode(data string) uint32 {
	for _, o := range strings.Split(data, ",") {
		if v, ok := strings.CutPrefix(o, "mode="); ok {
			if m, err := strconv.ParseUint(v, 8, 32); err == nil && m <= 0o7777 {
				return uint32(m)
			}
		}
	}
	return 0o755
}

// scratch makes a fresh directory on the staging tmpfs.
func (e *executor) scratch(kind string, mode uint32) (string, error) {
	e.n++
	dir := filepath.Join(staging, kind)
	if !e.kinds[kind] {
		// Once per kind; then one mkdir per directory (MkdirAll would stat
		// each level first).
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		if e.kinds == nil {
			e.kinds = map[string]bool{}
		}
		e.kinds[kind] = true
	}
	d := filepath.Join(dir, strconv.Itoa(e.n))
	if err := os.Mkdir(d, 0o700); err != nil {
		return "", err
	}
	if mode != 0 {
		if err := os.Chmod(d, os.FileMode(mode)); err != nil {
			return "", err
		}
	}
	return d, nil
}

func (e *executor) overlay(s Step, target string) error {
	l := fuseoverlay.Layers{}
	for _, d := range s.Lower {
		l.Lower = append(l.Lower, e.hostPath(d))
	}
	if len(l.Lower) == 0 {
		empty, err := e.scratch("empty", 0o755)
		if err != nil {
			return err
		}
		l.Lower = []string{empty}
	}
	switch {
	case s.ReadOnly:
	case s.Upper != "":
		l.Upper, l.Work = e.hostPath(s.Upper), e.hostPath(s.Work)
	default:
		var err error
		if l.Upper, err = e.scratch("upper", s.Mode); err != nil {
			return err
		}
		if l.Work, err = e.scratch("work", 0); err != nil {
			return err
		}
	}
	if l.Upper != "" && len(s.CopyUp) > 0 {
		copyUp(l.Upper, l.Lower, s.CopyUp)
	}
	persistent := s.Upper != ""
	drv := e.plan.Overlay.Driver
	if persistent && e.marked != "" {
		drv = e.marked // one driver per persistent upper
	}
	switch drv {
	case fuseoverlay.Fuse:
		return e.fuse(l, s, target)
	case fuseoverlay.Auto:
	default:
		return e.kernel(l, s.Target, target, persistent)
	}
	err := e.kernel(l, s.Target, target, persistent)
	if err == nil || !Refused(err) {
		return err
	}
	if e.plan.Overlay.FuseBin == "" {
		return fmt.Errorf("%w; fuse-overlayfs cannot stand in: %s", err, e.plan.Overlay.FuseProblem)
	}
	if persistent && e.marked == fuseoverlay.Kernel && e.usedUpper {
		return fmt.Errorf("%w; the --upper directory already holds kernel overlayfs layers of this run, "+
			"so fuse-overlayfs cannot stand in: use a new --upper directory with --overlay=fuse", err)
	}
	e.logf("overlay on %s: the kernel refused overlayfs (%v); trying fuse-overlayfs", s.Target, unwrapMount(err))
	if err := e.fuse(l, s, target); err != nil {
		return err
	}
	if e.refusal == nil {
		e.refusal = err
	}
	e.fellBack = append(e.fellBack, s.Target)
	return nil
}

// copyUp makes dirs (Step.CopyUp) in upper, each with the mode of the
// topmost lower's copy, before the overlay is mounted; one already there
// stays as it is. It stops at the first it cannot make, or whose way in
// the upper is not plain directories (a persistent upper is the
// sandboxes' to change: nothing is followed there), or that no lower has
// as a directory: the mount point is then made through the overlay as
// before, which says why if it cannot.
func copyUp(upper string, lower []string, dirs []string) {
	root, err := unix.Open(upper, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(root)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	for _, rel := range dirs {
		mode, ok := lowerDirMode(lower, rel)
		if !ok {
			return
		}
		parent, err := unix.Openat2(root, path.Dir(rel), how)
		if err != nil {
			return
		}
		err = unix.Mkdirat(parent, path.Base(rel), 0o700)
		if err == nil {
			var d int
			d, err = unix.Openat(parent, path.Base(rel), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Fchmod(d, mode)
				unix.Close(d)
			}
		} else if errors.Is(err, unix.EEXIST) {
			err = nil
		}
		unix.Close(parent)
		if err != nil {
			return
		}
	}
}

// lowerDirMode is the mode of rel in the topmost lower that has it, if
// that is a directory.
func lowerDirMode(lower []string, rel string) (uint32, bool) {
	for _, l := range lower {
		var st unix.Stat_t
		err := unix.Fstatat(unix.AT_FDCWD, filepath.Join(l, rel), &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		return st.Mode & 0o7777, err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	return 0, false
}

// Refused says whether a kernel overlayfs mount failed because the kernel
// will not layer these directories (too old, an unsupported upper or
// lower filesystem, an LSM), where fuse-overlayfs may still work.
func Refused(err error) bool {
	var me *fuseoverlay.MountError
	if !errors.As(err, &me) {
		return false
	}
	for _, errno := range []unix.Errno{unix.EINVAL, unix.EPERM, unix.ENODEV, unix.EOPNOTSUPP, unix.ENOSYS, unix.EACCES} {
		if errors.Is(me.Err, errno) {
			return true
		}
	}
	return false
}

func unwrapMount(err error) error {
	var me *fuseoverlay.MountError
	if errors.As(err, &me) {
		return me.Err
	}
	return err
}

func (e *executor) kernel(l fuseoverlay.Layers, inside, target string, persistent bool) error {
	if err := fuseoverlay.MountKernel(l, target); err != nil {
		return err
	}
	// Marked once mounted: a mount that failed wrote nothing there.
	if err := e.mark(persistent, fuseoverlay.Kernel); err != nil {
		return err
	}
	e.usedUpper = e.usedUpper || persistent
	Overlays = append(Overlays, OverlayUse{inside, fuseoverlay.Kernel})
	e.logf("overlay on %s: kernel overlayfs", inside)
	return nil
}

func (e *executor) fuse(l fuseoverlay.Layers, s Step, target string) error {
	inside, persistent := s.Target, s.Upper != ""
	if e.plan.Overlay.FuseBin == "" {
		return fmt.Errorf("--overlay=fuse: %s", e.plan.Overlay.FuseProblem)
	}
	if err := fuseoverlay.Readable(l); err != nil {
		// fuse-overlayfs must open every lower directory; one the
		// sandbox may not read (a host directory of an unmapped owner,
		// e.g. /lost+found) is as closed through kernel overlayfs:
		// show it as it is, read-only.
		e.logf("overlay on %s: %v; a read-only bind instead", inside, err)
		if err := unix.Mount(l.Lower[0], target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		return e.readOnlyAt(inside, true)
	}
	if persistent {
		var err error
		if l.Upper, l.Work, err = e.upperPaths(s.Upper, s.Work); err != nil {
			return err
		}
	}
	dir, err := e.scratch("fuse", 0)
	if err != nil {
		return err
	}
	d, err := fuseoverlay.MountFuse(e.plan.Overlay.FuseBin, l, dir, target)
	if err != nil {
		return err
	}
	daemons = append(daemons, d)
	if err := e.mark(persistent, fuseoverlay.Fuse); err != nil {
		return err
	}
	Overlays = append(Overlays, OverlayUse{inside, fuseoverlay.Fuse})
	e.logf("overlay on %s: fuse-overlayfs (pid %d)", inside, d.Pid)
	return nil
}

// upperPaths turns a persistent upper and work directory (host paths,
// which the staging tmpfs may cover) into paths under one bind of the
// --upper directory on the staging tmpfs, made once.
func (e *executor) upperPaths(upper, work string) (string, string, error) {
	if e.upperBind == "" {
		d, err := e.scratch("fuse-upper", 0)
		if err != nil {
			return "", "", err
		}
		if err := unix.Mount(inroot.ProcPath(e.marker), d, "", unix.MS_BIND, ""); err != nil {
			return "", "", fmt.Errorf("binding the --upper directory for fuse-overlayfs: %w", err)
		}
		e.upperBind = d
	}
	var out [2]string
	for i, host := range []string{upper, work} {
		rel, err := filepath.Rel(e.plan.Overlay.Marker, host)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", "", fmt.Errorf("%s is not inside the --upper directory %s", host, e.plan.Overlay.Marker)
		}
		out[i] = filepath.Join(e.upperBind, rel)
	}
	return out[0], out[1], nil
}

// mark records in the persistent upper which driver writes it, before
// that driver's first mount.
func (e *executor) mark(persistent bool, d fuseoverlay.Driver) error {
	if !persistent || e.marker == nil || e.marked == d {
		return nil
	}
	if err := fuseoverlay.WriteMarker(int(e.marker.Fd()), d); err != nil {
		return err
	}
	e.marked = d
	return nil
}

func (e *executor) step(s Step) error {
	switch s.Op {
	case OpMask, OpReadOnly, OpReadOnlyMount:
		h, err := inroot.Open(e.root, s.Target)
		if s.Optional && errors.Is(err, unix.ENOENT) {
			return errAbsent
		}
		if err != nil {
			return err
		}
		defer h.Close()
		switch s.Op {
		case OpMask:
			return e.mask(h)
		case OpReadOnly:
			return e.readOnlySelf(s.Target, h)
		}
		var stx unix.Statx_t
		if unix.Statx(int(h.Fd()), "", unix.AT_EMPTY_PATH, 0, &stx) == nil &&
			stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			// Its overlay was skipped (the host directory went away):
			// no mount of its own, and the one holding it is not ours
			// to change here.
			return errAbsent
		}
		return setReadOnly(int(h.Fd()), "", false)
	case OpSymlink:
		parent, err := inroot.MkdirAll(e.root, path.Dir(s.Target), 0o755)
		if err != nil {
			return err
		}
		defer parent.Close()
		err = unix.Symlinkat(s.Data, int(parent.Fd()), path.Base(s.Target))
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return err
	case OpFile:
		d, err := e.scratch("files", 0)
		if err != nil {
			return err
		}
		src := filepath.Join(d, "content")
		if err := os.WriteFile(src, []byte(s.Data), os.FileMode(s.Mode)); err != nil {
			return err
		}
		h, err := inroot.CreateFileChecked(e.root, s.Target, e.ownDir)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := unix.Mount(src, inroot.ProcPath(h), "", unix.MS_BIND, ""); err != nil {
			return err
		}
		return e.readOnlyAt(s.Target, false)
	}
	file := s.File
	if s.Op == OpBind {
		var st unix.Stat_t
		if err := unix.Fstat(int(e.host[s.Source].Fd()), &st); err != nil {
			return fmt.Errorf("stat %s: %w", s.Source, err)
		}
		file = st.Mode&unix.S_IFMT != unix.S_IFDIR
	}
	var h *inroot.Handle
	var err error
	if file {
		h, err = inroot.CreateFile(e.root, s.Target)
	} else {
		h, err = inroot.MkdirAll(e.root, s.Target, os.FileMode(defaultMode(s.Mode)))
	}
	if errors.Is(err, unix.EACCES) {
		return fmt.Errorf("creating mount point: %w (the directory to hold it belongs to a user this sandbox does not map, "+
			"such as the host's root, so nothing can be made in it: mount at a path that exists, in a directory of yours, "+
			"or right below a top-level one such as /opt)", err)
	}
	if err != nil {
		return fmt.Errorf("creating mount point: %w", err)
	}
	defer h.Close()
	target := inroot.ProcPath(h)
	const hardened = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	switch s.Op {
	case OpMkdir:
		return unix.Fchmodat(unix.AT_FDCWD, target, defaultMode(s.Mode), 0)
	case OpTmpfs:
		return e.tmpfs(target, s.Data)
	case OpOverlay:
		return e.overlay(s, target)
	case OpBind:
		flags := uintptr(unix.MS_BIND | unix.MS_REC)
		if src := filepath.Clean(s.Source); src == staging || src == "/" {
			// A recursive bind would bring along the staging tmpfs mounted
			// over it (and the whole root being assembled there): bind
			// the host directory alone, without its submounts.
			flags = unix.MS_BIND
		}
		if err := unix.Mount(e.hostPath(s.Source), target, "", flags, ""); err != nil {
			return err
		}
		if s.ReadOnly {
			return e.readOnlyAt(s.Target, true)
		}
		return nil
	case OpProc:
		return mountProc(target, hardened)
	case OpSysfs:
		err := unix.Mount("sysfs", target, "sysfs", hardened|unix.MS_RDONLY, "")
		if errors.Is(err, unix.EPERM) {
			// Without a network namespace of our own (--net=host) the
			// kernel refuses a new sysfs; show the host's, read-only.
			if err := unix.Mount(e.hostPath(s.Source), target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return err
			}
			return e.readOnlyAt(s.Target, true)
		}
		return err
	case OpDevpts:
		return unix.Mount("devpts", target, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, s.Data)
	case OpMqueue:
		return unix.Mount("mqueue", target, "mqueue", hardened, "")
	}
	return fmt.Errorf("unknown step %q", s.Op)
}

func defaultMode(m uint32) uint32 {
	if m == 0 {
		return 0o755
	}
	return m
}

// mask covers h: /dev/null over a file, an empty read-only tmpfs over a dir.
func (e *executor) mask(h *inroot.Handle) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.Mount("tmpfs", inroot.ProcPath(h), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=0555")
	}
	return unix.Mount(e.hostPath("/dev/null"), inroot.ProcPath(h), "", unix.MS_BIND, "")
}

// readOnlySelf binds a path onto itself so it becomes a mount of its own,
// then makes that mount read-only (e.g. /proc/sys inside procfs).
func (e *executor) readOnlySelf(target string, h *inroot.Handle) error {
	p := inroot.ProcPath(h)
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return e.readOnlyAt(target, true)
}

// readOnlyAt makes the mount now at target read-only. The handle is taken
// anew: one opened before the mount would point below it.
func (e *executor) readOnlyAt(target string, recursive bool) error {
	h, err := inroot.Open(e.root, target)
	if err != nil {
		return err
	}
	defer h.Close()
	return setReadOnly(int(h.Fd()), "", recursive)
}

// enter makes newRoot the root: pivot_root, then detach the old root so no
// path leads back to it. Where pivot_root is refused (EINVAL: the current
// root is the initramfs rootfs), move the new root over / and chroot, as
// switch_root does; the old root stays covered.
func enter(newRoot string) (string, error) {
	if err := unix.Chdir(newRoot); err != nil {
		return "", err
	}
	err := unix.PivotRoot(".", ".")
	if err == nil {
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return "", fmt.Errorf("detaching the old root: %w", err)
		}
		return "pivot_root", unix.Chdir("/")
	}
	if !errors.Is(err, unix.EINVAL) {
		return "", fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return "", fmt.Errorf("pivot_root refused and moving the root failed: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return "", fmt.Errorf("chroot: %w", err)
	}
	return "MS_MOVE+chroot", unix.Chdir("/")
}
