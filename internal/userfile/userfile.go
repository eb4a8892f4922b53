// Package userfile reads small files the user names on the command line
// (a --profile, a --seccomp profile): bounded in size, and only regular
// files, so /dev/zero, a FIFO or a huge file cannot make `sandbox` read or
// block forever.
package userfile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// MaxConfig bounds a configuration file (a profile, a seccomp profile):
// the biggest real seccomp profiles (Docker's and podman's defaults) are
// about 20 KB, so 1 MiB leaves room for any hand-written one.
const MaxConfig = 1 << 20

// ErrNotRegular is wrapped by Read's error for anything but a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Read returns the contents of the regular file at path, at most max bytes.
// A FIFO is opened without blocking (O_NONBLOCK) and refused like any
// other non-regular file; a file over max bytes is refused without reading
// it past the limit. Errors name what was wrong, not the path: the caller
// says which file it was.
func Read(path string, max int64) ([]byte, error) {
	return read(path, max, 0)
}

// ReadNoFollow is Read for a file sandbox wrote itself where a sandbox may
// have planted another (an --upper below its shared working directory): a
// symlink is not followed either (an ELOOP error).
func ReadNoFollow(path string, max int64) ([]byte, error) {
	return read(path, max, unix.O_NOFOLLOW)
}

// OpenNoFollow opens the regular file at path for reading as ReadNoFollow
// does (no symlink followed, never blocking on a FIFO, anything else
// refused with ErrNotRegular), for a caller that reads it as it grows (a
// detached sandbox's log).
func OpenNoFollow(path string) (*os.File, error) {
	f, _, err := open(path, unix.O_NOFOLLOW)
	return f, err
}

func open(path string, flags int) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w (%s)", ErrNotRegular, kind(fi.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func read(path string, max int64, flags int) ([]byte, error) {
	f, fi, err := open(path, flags)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > max {
		return nil, tooBig(fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1)) // it may grow meanwhile
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, tooBig(int64(len(b)), max)
	}
	return b, nil
}

func tooBig(size, max int64) error {
	return fmt.Errorf("%d bytes or more, over the limit of %d bytes (%d KiB)", size, max, max>>10)
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "type " + m.Type().String()
}
