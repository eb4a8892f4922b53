package rootfs

import (
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// hostTimeout bounds each look at the host while planning: a stale or hung
// network or FUSE mount must not hang the run.
const hostTimeout = 2 * time.Second

// bounded is a HostFS whose calls give up after timeout with ETIMEDOUT;
// the planner then treats the path as it treats one it cannot read. A call
// left running ends on its own (or with the process).
type bounded struct {
	h       HostFS
	timeout time.Duration
}

func call[T any](b bounded, op, name string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // buffered: a late answer does not block
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	t := time.NewTimer(b.timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-t.C:
		var zero T
		return zero, &fs.PathError{Op: op, Path: name,
			Err: fmt.Errorf("no answer within %v: %w", b.timeout, unix.ETIMEDOUT)}
	}
}

func (b bounded) ReadDir(dir string) ([]fs.DirEntry, error) {
	return call(b, "readdir", dir, func() ([]fs.DirEntry, error) { return b.h.ReadDir(dir) })
}

func (b bounded) Empty(dir string) (bool, error) {
	return call(b, "readdir", dir, func() (bool, error) { return b.h.Empty(dir) })
}

func (b bounded) Stat(name string) (fs.FileInfo, error) {
	return call(b, "stat", name, func() (fs.FileInfo, error) { return b.h.Stat(name) })
}

func (b bounded) Readlink(name string) (string, error) {
	return call(b, "readlink", name, func() (string, error) { return b.h.Readlink(name) })
}
