package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"sandbox/internal/proc"
)

// Listen makes the exec socket of a claimed sandbox: a SOCK_SEQPACKET
// listener, close-on-exec, for the sandbox's init to accept on.
func (h *Handle) Listen() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating the exec socket: %w", err)
	}
	err = viaDir(h.Dir, SocketFile, func(p string) error {
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
			return err
		}
		return unix.Listen(fd, 16)
	})
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listening on %s: %w", h.Path(SocketFile), err)
	}
	return os.NewFile(uintptr(fd), SocketFile), nil
}

// Dial connects to a running sandbox's exec socket; it returns the fd. The
// socket must be the one the sandbox's supervisor (e.Pid) listens on, of
// our uid: a client hands the server its stdio, environment and command,
// and a socket put in the state directory by anyone else (were a sandbox
// ever to reach it) gets none of them (ErrNotSupervisor).
func (e Entry) Dial() (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	err = viaDir(e.Dir, SocketFile, func(p string) error {
		return unix.Connect(fd, &unix.SockaddrUnix{Name: p})
	})
	if err == nil {
		// The listener's credentials, as of its listen(2), in our pid
		// namespace.
		cred, cerr := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		switch {
		case cerr != nil:
			err = cerr
		case int(cred.Pid) != e.Pid || int(cred.Uid) != os.Getuid():
			err = fmt.Errorf("%w: it listens as pid %d (uid %d), the supervisor is pid %d", ErrNotSupervisor, cred.Pid, cred.Uid, e.Pid)
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// ErrNotSupervisor: a sandbox's exec socket is served by another process
// than its supervisor.
var ErrNotSupervisor = errors.New("its exec socket is not its supervisor's")

// viaDir calls fn with a short path to dir/name: a socket path must fit in
// 108 bytes, and /proc/self/fd/N/name does wherever dir is.
func viaDir(dir, name string, fn func(string) error) error {
	d, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(filepath.Join("/proc/self/fd", strconv.Itoa(int(d.Fd())), name))
}

// StartTime returns a process's start time (clock ticks after boot), to
// tell it from a later process that reuses its pid.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	f, err := proc.StatFields(b)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(f[22-3]), 10, 64) // starttime
}

// SameProcess reports whether pid is still the process that started at
// start.
func SameProcess(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := StartTime(pid)
	return err == nil && st == start
}
