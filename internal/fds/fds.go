// Package fds marks the file descriptors a process inherited
// close-on-exec: the programs sandbox and sandbox-oci start get the
// descriptors they are given, never whatever their caller (a shell, an
// engine, a CI runner) left open.
package fds

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseExecFrom marks every fd from minFD up close-on-exec.
func CloseExecFrom(minFD int) error {
	err := unix.CloseRange(uint(minFD), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("close_range: %w", err)
	}
	// A kernel before 5.11: one by one.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing the fds: %w", err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= minFD {
			unix.CloseOnExec(fd) // the directory's own fd is gone by now: EBADF is fine
		}
	}
	return nil
}
