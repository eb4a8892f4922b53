package memexec

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Self copies the running executable (/proc/self/exe) into a sealed memfd
// called name: a program that re-executes itself into a container runs
// from that copy, so nothing inside can reach the host's file of it
// through /proc/PID/exe.
func Self(name string) (*File, error) {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("opening this executable: %w", err)
	}
	defer exe.Close()
	st, err := exe.Stat()
	if err != nil {
		return nil, fmt.Errorf("this executable: %w", err)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := sendAll(f, exe, 0, int(st.Size())); err != nil {
		f.Close()
		return nil, fmt.Errorf("copying this executable into its memfd: %w", err)
	}
	if err := seal(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing the memfd of %s: %w", name, err)
	}
	return &File{f}, nil
}
