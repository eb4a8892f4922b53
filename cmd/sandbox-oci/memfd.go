package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// selfMemfd copies this executable into a sealed memfd: the container's
// init runs from it, so that nothing inside can reach a host binary of
// ours through /proc/PID/exe (and write it: CVE-2019-5736). The fd is
// moved to minFD or above, clear of the fds the child gets set up.
func selfMemfd(minFD int) (*os.File, error) {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("init binary: %w", err)
	}
	defer exe.Close()
	st, err := exe.Stat()
	if err != nil {
		return nil, fmt.Errorf("init binary: %w", err)
	}
	fd, err := unix.MemfdCreate(initName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("init binary: memfd: %w", err)
	}
	if fd < minFD {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, minFD)
		unix.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("init binary: moving its memfd: %w", err)
		}
		fd = nfd
	}
	m := os.NewFile(uintptr(fd), initName)
	var off int64
	for n := st.Size(); n > 0; {
		w, err := unix.Sendfile(fd, int(exe.Fd()), &off, int(n))
		if err != nil || w == 0 {
			m.Close()
			return nil, fmt.Errorf("init binary: copying it: %v (%d bytes short)", err, n)
		}
		n -= int64(w)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		m.Close()
		return nil, fmt.Errorf("init binary: sealing its memfd: %w", err)
	}
	return m, nil
}
