package control

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/state"
)

// copyLog writes a detached sandbox's log to w: what was rotated out
// (state.OldLogFile), then the log. With follow it reads on while live()
// says the sandbox runs, going on into a new log when the relay rotates
// the one it reads.
func copyLog(dir string, w io.Writer, follow bool, live func() bool) error {
	old, err := openLog(filepath.Join(dir, state.OldLogFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := openLog(filepath.Join(dir, state.LogFile))
	if err != nil {
		if old != nil {
			old.Close()
		}
		return err
	}
	if old != nil {
		// Rotated between the two opens: the old one is what f was.
		if !sameInode(old, f) {
			_, err = io.Copy(w, old)
		}
		old.Close()
		if err != nil {
			f.Close()
			return err
		}
	}
	defer func() { f.Close() }()
	for {
		running := follow && live()
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if follow {
			// Rotated (the relay renamed the log it wrote and made a new
			// one): what reached this one before the rename, then on.
			if next, err := openLog(filepath.Join(dir, state.LogFile)); err == nil && !sameInode(next, f) {
				if _, err := io.Copy(w, f); err != nil {
					next.Close()
					return err
				}
				f.Close()
				f = next
				continue
			} else if err == nil {
				next.Close()
			}
		}
		if !running {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ErrLogNotRegular is a log that is not a regular file (changed by hand).
var ErrLogNotRegular = errors.New("not a regular file")

// openLog opens a log for reading: no symlink followed, not blocking on a
// FIFO put in its place, a regular file only.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrLogNotRegular)
	}
	return f, nil
}

func sameInode(a, b *os.File) bool {
	x, err1 := a.Stat()
	y, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(x, y)
}
