package control

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"sandbox/internal/userfile"
	"sandbox/state"
)

// copyLog writes a detached sandbox's log to w: what was rotated out
// (state.OldLogFile), then the log. With follow it reads on while live()
// says the sandbox runs, going on into the new log when the relay rotates
// the one it reads (parent/logrelay.go: LogFile always exists, and the
// file it names changes only by a rename over it). A file rotated out
// three times between two reads (32 MiB written in 100 ms, or while w
// blocks) is not shown.
func copyLog(dir string, w io.Writer, follow bool, live func() bool) error {
	logPath, oldPath := filepath.Join(dir, state.LogFile), filepath.Join(dir, state.OldLogFile)
	// The log first: an old log that is the same file was rotated
	// between the two opens, and is read as the log.
	f, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	if err := copyUnlessSame(w, oldPath, f); err != nil {
		return err
	}
	for {
		running := follow && live()
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if follow {
			next, err := openLog(logPath)
			if err != nil {
				return err
			}
			if !sameInode(next, f) {
				// Rotated: the rest of this one, the old log if it is
				// newer than this one (rotated twice), then on.
				_, err := io.Copy(w, f)
				if err == nil {
					err = copyUnlessSame(w, oldPath, f)
				}
				if err != nil {
					next.Close()
					return err
				}
				f.Close()
				f = next
				continue
			}
			next.Close()
		}
		if !running {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// copyUnlessSame copies the log at path to w unless it is f or is not
// there.
func copyUnlessSame(w io.Writer, path string, f *os.File) error {
	old, err := openLog(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer old.Close()
	if sameInode(old, f) {
		return nil
	}
	_, err = io.Copy(w, old)
	return err
}

// ErrLogNotRegular is a log that is not a regular file (changed by hand).
var ErrLogNotRegular = errors.New("not a regular file")

// openLog opens a log for reading: no symlink followed, not blocking on a
// FIFO put in its place, a regular file only.
func openLog(path string) (*os.File, error) {
	f, err := userfile.OpenNoFollow(path)
	if errors.Is(err, userfile.ErrNotRegular) {
		return nil, fmt.Errorf("%s: %w", path, ErrLogNotRegular)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return f, nil
}

func sameInode(a, b *os.File) bool {
	x, err1 := a.Stat()
	y, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(x, y)
}
