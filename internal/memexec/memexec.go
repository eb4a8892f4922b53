// Package memexec runs programs embedded in sandbox (its PID 1 and the
// builtin network helper) without writing them to disk: each goes into a
// sealed memfd, which is executed through /proc/self/fd.
//
// It imports only the standard library and x/sys.
package memexec

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GoDebug is the Go runtime's settings, as a GODEBUG variable, for the
// embedded Go programs sandbox starts with an environment of its making
// (sandbox-init as PID 1 and as the holder, the profile decoder). No
// cgroup-aware GOMAXPROCS, which holds a cgroup file open and reads the
// cgroup files at each start (init closes every fd but its own, and is
// given GOMAXPROCS=1). No memory profile: the runtime turns it off only
// after its first P's cache was made with the default rate, so that
// cache's first allocation still records a sample (a stack walk and the
// profile's hash table; ~0.5 ms of init's CPU a start here). Both
// together: init running ~0.9 ms sooner in a run (-v medians of 40).
const GoDebug = "GODEBUG=containermaxprocs=0,updatemaxprocs=0,memprofilerate=0"

// seals make the memfd immutable: nothing can change the code between
// here and its exec.
const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// File is an embedded program ready to be executed.
type File struct {
	f *os.File
}

// New copies elf (embedded in this executable: go:embed into a string)
// into a sealed memfd called name (as /proc shows it). The copy is made
// by the kernel from this executable's file when elf lies in a read-only
// mapping of it, which costs a third of copying it from memory: those
// pages were never touched, and each would fault.
func New(name string, elf string) (*File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := fill(f, elf); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s into its memfd: %w", name, err)
	}
	if err := seal(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing the memfd of %s: %w", name, err)
	}
	return &File{f}, nil
}

// sealTries bounds seal's attempts.
const sealTries = 4

// seal adds seals to f. F_SEAL_WRITE fails with EBUSY while the kernel
// sees a page of the file with a reference it cannot account for (it
// waits ~150 ms for it first): seen once in CI, right after the copy, on
// a memfd nothing else had. Tried again a few times before giving up.
func seal(f *os.File) error {
	var err error
	for i := 0; i < sealTries; i++ {
		if _, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// sendfileMin is the smallest program fill copies from the executable's
// file: finding it there (/proc/self/maps) costs more than writing a small
// one (the 13 KB stage) from memory.
const sendfileMin = 256 << 10

// fill puts elf into f: from the executable's file where possible (the
// kernel copies it, and this process faults none of it in), else from
// memory.
func fill(f *os.File, elf string) error {
	if len(elf) < sendfileMin {
		_, err := f.WriteString(elf)
		return err
	}
	if off, ok := fileOffset(elf); ok {
		if exe, err := os.Open("/proc/self/exe"); err == nil {
			err = sendAll(f, exe, off, len(elf))
			exe.Close()
			if err == nil {
				return nil
			}
			// Start again from memory.
			if err := f.Truncate(0); err != nil {
				return err
			}
			if _, err := f.Seek(0, 0); err != nil {
				return err
			}
		}
	}
	_, err := f.WriteString(elf)
	return err
}

func sendAll(dst, src *os.File, off int64, n int) error {
	for n > 0 {
		w, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, n)
		if err != nil {
			return err
		}
		if w == 0 {
			return fmt.Errorf("sendfile: %d bytes short", n)
		}
		n -= w
	}
	return nil
}

// fileOffset finds where s lies in this executable's file, if it lies
// whole in a read-only mapping of it (/proc/self/maps).
func fileOffset(s string) (int64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, false
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, false
	}
	addr := uint64(uintptr(unsafe.Pointer(unsafe.StringData(s))))
	for _, line := range strings.Split(string(maps), "\n") {
		// start-end perms offset dev inode path
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != exe || f[1][1] == 'w' {
			continue
		}
		start, end, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		lo, err1 := strconv.ParseUint(start, 16, 64)
		hi, err2 := strconv.ParseUint(end, 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if addr >= lo && addr+uint64(len(s)) <= hi {
			return int64(off + addr - lo), true
		}
	}
	return 0, false
}

// Path is what to execute. A child started with exec.Cmd inherits the fd
// (close-on-exec is applied only once its exec has opened the file), so
// the path is valid in the child even though the fd is not passed on.
func (m *File) Path() string { return fmt.Sprintf("/proc/self/fd/%d", m.f.Fd()) }

// PathAbove is Path with the fd moved to minFD or above first: a child
// whose fds 0..minFD-1 are set up (stdio and ExtraFiles) before its exec
// would otherwise find another file at a low number.
func (m *File) PathAbove(minFD int) (string, error) {
	if int(m.f.Fd()) < minFD {
		fd, err := unix.FcntlInt(m.f.Fd(), unix.F_DUPFD_CLOEXEC, minFD)
		if err != nil {
			var lim unix.Rlimit
			if errors.Is(err, unix.EINVAL) && unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && uint64(minFD) >= lim.Cur {
				return "", fmt.Errorf("no file descriptor from %d on is free for %s: the open-file limit is %d (ulimit -n); raise it", minFD, m.f.Name(), lim.Cur)
			}
			return "", fmt.Errorf("moving the memfd of %s above fd %d: %w", m.f.Name(), minFD, err)
		}
		old := m.f
		m.f = os.NewFile(uintptr(fd), old.Name())
		old.Close()
	}
	return m.Path(), nil
}

// Sealed says whether f is a memfd sealed as New seals one: its code can
// no longer change.
func Sealed(f *os.File) error {
	got, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err == nil && got&seals != seals {
		err = fmt.Errorf("sealed %#x, not %#x", got, seals)
	}
	return err
}

// Adopt takes f, a copy of the program name made by another process (the
// user's holder shares its own), if it is a memfd sealed as New seals one
// and size bytes long; f is closed otherwise. Who made it says what it is:
// the caller checks that before (a sealed memfd cannot change, so what was
// true of it when made stays true).
func Adopt(f *os.File, name string, size int) (*File, error) {
	err := Sealed(f)
	var st unix.Stat_t
	if err == nil {
		if err = unix.Fstat(int(f.Fd()), &st); err == nil && st.Size != int64(size) {
			err = fmt.Errorf("%d bytes, not %d", st.Size, size)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("the copy of %s given: %w", name, err)
	}
	return &File{f}, nil
}

// File is the memfd itself, for a child that executes it by fd
// (execveat) rather than by Path.
func (m *File) File() *os.File { return m.f }

// Close releases this process's copy; a started child keeps running.
func (m *File) Close() error { return m.f.Close() }
