package fuseoverlay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sandbox/internal/userfile"

	"golang.org/x/sys/unix"
)

// MarkerName is the file in a persistent --upper directory that names the
// driver which wrote it: kernel overlayfs and fuse-overlayfs mark whiteouts
// and opaque directories differently, so an upper must never be read by
// the other one.
const MarkerName = "overlay-driver"

// ReadMarker says which driver made the upper in dir: the marker's, else
// kernel when dir/upper has entries (uppers from before the marker were
// all kernel overlayfs'), else "" (a new upper).
func ReadMarker(dir string) (Driver, error) {
	// Never through a symlink, never blocking on a FIFO: a sandbox may have
	// planted either where the upper sits in its shared working directory.
	p := filepath.Join(dir, MarkerName)
	b, err := userfile.ReadNoFollow(p, maxMarker)
	switch {
	case errors.Is(err, unix.ELOOP):
		return "", fmt.Errorf("%s is a symlink, not the marker file sandbox writes", p)
	case errors.Is(err, userfile.ErrNotRegular):
		return "", fmt.Errorf("%s is %w, not the marker file sandbox writes", p, err)
	}
	if err == nil {
		switch d := Driver(strings.TrimSpace(string(b))); d {
		case Kernel, Fuse:
			return d, nil
		default:
			return "", fmt.Errorf("%s: unknown overlay driver %q (want kernel or fuse)", p, d)
		}
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	// Neither followed nor opened if it is not a directory: the upper may
	// be where a sandbox could write (below its shared working directory).
	f, err := os.OpenFile(filepath.Join(dir, "upper"), os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w (a directory is expected, not a symlink)", filepath.Join(dir, "upper"), unwrapPath(err))
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
		return "", nil
	}
	return Kernel, nil
}

// maxMarker bounds what is read of a marker ("kernel\n" or "fuse\n").
const maxMarker = 64

// WriteMarker records d in the directory dirfd refers to (an O_PATH handle
// is enough), durably: it is written as soon as the first mount that uses
// the upper succeeded, before anything can be written through it (the
// payload starts later), so that a failed mount pins nothing.
func WriteMarker(dirfd int, d Driver) error {
	fd, err := unix.Openat(dirfd, MarkerName, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("writing the overlay driver marker: %w", err)
	}
	f := os.NewFile(uintptr(fd), MarkerName)
	defer f.Close()
	if _, err := f.WriteString(string(d) + "\n"); err != nil {
		return fmt.Errorf("writing the overlay driver marker: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing the overlay driver marker: %w", err)
	}
	// The directory too, so that the entry itself is durable.
	dfd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("writing the overlay driver marker: %w", err)
	}
	defer unix.Close(dfd)
	return unix.Fsync(dfd)
}

// CheckMarker compares the driver asked for with the one that made the
// upper in dir and returns the driver to use: the upper's under auto.
func CheckMarker(dir string, want Driver) (Driver, error) {
	made, err := ReadMarker(dir)
	if err != nil {
		return "", fmt.Errorf("--upper %s: %w", dir, err)
	}
	switch {
	case made == "":
		return want, nil
	case want == Auto || want == made:
		return made, nil
	}
	return "", fmt.Errorf("--upper %s was made by %s (%s says so) and --overlay=%s would misread it, as the two mark deleted files differently: "+
		"run with --overlay=%s (or auto), or use a new --upper directory", dir, made.Name(), MarkerName, want, made)
}
