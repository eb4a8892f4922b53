// Package memexec runs programs embedded in sandbox (its PID 1 and the
// builtin network helper) without writing them to disk: each goes into a
// sealed memfd, which is executed through /proc/self/fd.
//
// It imports only the standard library and x/sys.
package memexec

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// seals make the memfd immutable: nothing can change the code between
// here and its exec.
const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// File is an embedded program ready to be executed.
type File struct {
	f *os.File
}

// New copies elf into a sealed memfd called name (as /proc shows it).
func New(name string, elf []byte) (*File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(elf); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s into its memfd: %w", name, err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing the memfd of %s: %w", name, err)
	}
	return &File{f}, nil
}

// Path is what to execute. A child started with exec.Cmd inherits the fd
// (close-on-exec is applied only once its exec has opened the file), so
// the path is valid in the child even though the fd is not passed on.
func (m *File) Path() string { return fmt.Sprintf("/proc/self/fd/%d", m.f.Fd()) }

// Close releases this process's copy; a started child keeps running.
func (m *File) Close() error { return m.f.Close() }
