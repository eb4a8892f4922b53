package fuseoverlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandbox/internal/hostpath"

	"golang.org/x/sys/unix"
)

// FuseReady finds fuse-overlayfs and checks that /dev/fuse opens; the error
// names what is missing and the fix.
func FuseReady() (string, error) {
	bin, err := hostpath.Look("fuse-overlayfs")
	if err != nil {
		return "", errors.New("fuse-overlayfs is not installed (sudo apt-get install fuse-overlayfs; Fedora: sudo dnf install fuse-overlayfs)")
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return bin, fmt.Errorf("cannot open /dev/fuse: %w (sudo modprobe fuse; sudo chmod 0666 /dev/fuse, as scripts/setup-host.sh does)", unwrapPath(err))
	}
	f.Close()
	return bin, nil
}

// Readable checks that every lower directory opens: fuse-overlayfs
// refuses to mount otherwise.
func Readable(l Layers) error {
	for _, d := range l.Lower {
		f, err := os.OpenFile(d, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("fuse-overlayfs cannot read a lower directory: %w", unwrapPath(err))
		}
		f.Close()
	}
	return nil
}

// Daemon is a fuse-overlayfs serving one mount, a child of the caller.
type Daemon struct {
	Pid  int
	root *os.File // the mount's root, for Sync
}

// Sync writes back what the kernel still caches for the mount (dirty
// pages of shared mappings, above all): the daemon dies with the sandbox,
// and what it has not received by then is lost.
func (d *Daemon) Sync() error { return unix.Syncfs(int(d.root.Fd())) }

// readyTimeout bounds the wait for a daemon's mount.
const readyTimeout = 10 * time.Second

// MountFuse mounts a FUSE filesystem at target and has bin
// (fuse-overlayfs) serve it in the foreground, a child of the caller. The
// caller mounts (fuse-overlayfs gets the /dev/fuse fd as /dev/fd/3) and
// the daemon runs in a mount namespace of its own, a copy of the caller's
// at its start: the caller's pivot_root does not move the daemon's root
// into the new root, where resolving a path (/proc/self/fd/N, which it
// uses) through its own mount would deadlock it. The lower directories
// are bound under scratch first, so that the daemon gets plain paths;
// Upper and Work must be plain paths on one mount (the daemon renames
// from work to upper).
func MountFuse(bin string, l Layers, scratch, target string) (*Daemon, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	lower := make([]string, len(l.Lower))
	for i, d := range l.Lower {
		lower[i] = filepath.Join(scratch, "l"+strconv.Itoa(i))
		if err := os.Mkdir(lower[i], 0o700); err != nil {
			return nil, err
		}
		if err := unix.Mount(d, lower[i], "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return nil, fmt.Errorf("binding %s for fuse-overlayfs: %w", d, err)
		}
	}
	opts := "lowerdir=" + strings.Join(lower, ":")
	if l.Upper != "" {
		opts += ",upperdir=" + l.Upper + ",workdir=" + l.Work
	}
	// noacl: without it every copy of permissions (mv, cp -a) asks for
	// POSIX ACLs the daemon then fails to find, and creating many small
	// files takes twice as long (measured: 20,000 files).
	opts += ",noacl"
	mnt := filepath.Join(scratch, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return nil, err
	}
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/fuse: %w", err)
	}
	defer dev.Close()
	// The options fuse-overlayfs itself asks for as root; allow_other:
	// every uid of the sandbox may use the mount, as with kernel overlayfs.
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,default_permissions,allow_other",
		dev.Fd(), unix.Getuid(), unix.Getgid())
	if err := unix.Mount("fuse-overlayfs", mnt, "fuse.fuse-overlayfs", unix.MS_NOATIME, data); err != nil {
		return nil, &MountError{Target: target, Data: data, Err: err}
	}
	pid, logFile, err := start(bin, []string{"fuse-overlayfs", "-f", "-o", opts, "/dev/fd/3"}, scratch, dev)
	dev.Close() // the daemon's copy alone: its death ends the connection
	if err != nil {
		unix.Unmount(mnt, unix.MNT_DETACH)
		return nil, err
	}
	defer logFile.Close()
	if err := awaitMount(pid, mnt, logFile); err != nil {
		unix.Unmount(mnt, unix.MNT_DETACH)
		return nil, err
	}
	top, err := os.OpenFile(mnt, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return nil, err
	}
	if err := unix.Mount(mnt, target, "", unix.MS_MOVE, ""); err != nil {
		top.Close()
		unix.Kill(pid, unix.SIGKILL)
		return nil, &MountError{Target: target, Data: opts, Err: err}
	}
	return &Daemon{Pid: pid, root: top}, nil
}

// start runs the daemon in a mount namespace of its own, with /dev/null
// for stdin and stdout, a memfd for stderr and dev as fd 3.
func start(bin string, argv []string, dir string, dev *os.File) (int, *os.File, error) {
	null, err := os.OpenFile("/dev/null", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, nil, err
	}
	defer null.Close()
	fd, err := unix.MemfdCreate("fuse-overlayfs", unix.MFD_CLOEXEC)
	if err != nil {
		return 0, nil, fmt.Errorf("memfd for fuse-overlayfs' log: %w", err)
	}
	logFile := os.NewFile(uintptr(fd), "fuse-overlayfs.log")
	proc, err := os.StartProcess(bin, argv, &os.ProcAttr{
		Dir:   dir,
		Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Files: []*os.File{null, null, logFile, dev},
		// A session of its own: outside the payload's process group, so a
		// payload's `kill 0` (a shell's `trap 'kill 0' EXIT`) or its
		// Ctrl-Z stop cannot take the root away from under it.
		Sys: &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL, Setsid: true},
	})
	if err != nil {
		logFile.Close()
		return 0, nil, fmt.Errorf("starting fuse-overlayfs: %w", err)
	}
	pid := proc.Pid
	proc.Release() // reaped by wait4 here, or by the sandbox's PID 1
	return pid, logFile, nil
}

// awaitMount waits until the daemon answers on mnt (statfs, which waits
// for the FUSE handshake), it exits, or the time is up; then it is killed,
// which ends the connection and the wait.
func awaitMount(pid int, mnt string, logFile *os.File) error {
	done := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		err := unix.Statfs(mnt, &st)
		if err == nil && st.Type != unix.FUSE_SUPER_MAGIC {
			err = fmt.Errorf("%s is not a FUSE mount", mnt)
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(readyTimeout):
		unix.Kill(pid, unix.SIGKILL)
		<-done
		return fmt.Errorf("fuse-overlayfs did not answer within %s: %s", readyTimeout, daemonLog(logFile))
	}
	if err == nil {
		return nil
	}
	var ws unix.WaitStatus
	if p, _ := unix.Wait4(pid, &ws, 0, nil); p == pid {
		return fmt.Errorf("fuse-overlayfs exited (%s): %s", describe(ws), daemonLog(logFile))
	}
	return fmt.Errorf("fuse-overlayfs: %w: %s", err, daemonLog(logFile))
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return "status " + strconv.Itoa(ws.ExitStatus())
}

// daemonLog returns what the daemon wrote, without its harmless notices.
func daemonLog(f *os.File) string {
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, 0)
	var lines []string
	for _, ln := range strings.Split(string(buf[:n]), "\n") {
		if ln = strings.TrimSpace(ln); ln != "" && !strings.HasPrefix(ln, "unknown argument ignored") {
			lines = append(lines, ln)
		}
	}
	if len(lines) == 0 {
		return "no message"
	}
	return strings.Join(lines, "; ")
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
