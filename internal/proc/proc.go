// Package proc parses /proc/PID/stat, which the run (init's watch), the
// cgroup cleanup (owners of stale cgroups) and the state directory (owners
// of records) all read, and reads the kernel's small text files
// (ReadFile, ReadFileInto), and says whether this process runs under a
// seccomp filter (SeccompFiltered: check's nested facts, run's advice). It
// owns nothing else and imports only the standard library.
package proc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"
)

// ReadFile reads at most max bytes of a kernel text file (/proc, /sys):
// their size says nothing (0, or a page) and some can be large.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// ReadFileInto reads the start of a kernel text file into buf (at most
// len(buf) bytes), allocating nothing but the path's C string: for a
// process that reads one over and over for hours (the holder).
func ReadFileInto(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// ErrMalformed: a stat line without the fields the kernel writes.
var ErrMalformed = errors.New("malformed /proc stat")

// StatFields returns the fields of a /proc/PID/stat line from field 3
// (the state) on, so field N of proc(5) is [N-3]. The command name (field
// 2) may hold spaces and parentheses: fields count from the last ')'.
func StatFields(b []byte) ([][]byte, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, ErrMalformed
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 || len(f[0]) != 1 { // up to starttime (22), a one-letter state
		return nil, ErrMalformed
	}
	return f, nil
}

// StatStateExit returns the state (field 3) and the exit code (field 52,
// 0 on kernels before 3.5 that end sooner) of a /proc/PID/stat line,
// allocating nothing: for a watch that reads it for a process's whole life.
func StatStateExit(b []byte) (state byte, exit int, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, ErrMalformed
	}
	field, start := 2, -1 // field 2 ends at the last ')'
	for j := i + 1; j <= len(b); j++ {
		if j < len(b) && b[j] != ' ' && b[j] != '\n' {
			if start < 0 {
				start, field = j, field+1
			}
			continue
		}
		if start < 0 {
			continue
		}
		f := b[start:j]
		start = -1
		switch field {
		case 3:
			if len(f) != 1 {
				return 0, 0, ErrMalformed
			}
			state = f[0]
		case 52:
			for _, c := range f {
				if c < '0' || c > '9' {
					return 0, 0, ErrMalformed
				}
				exit = exit*10 + int(c-'0')
			}
		}
	}
	if field < 22 { // up to starttime, as StatFields
		return 0, 0, ErrMalformed
	}
	return state, exit, nil
}

// SeccompFiltered says whether this process runs under a seccomp filter
// (Seccomp: 2 in /proc/self/status), inherited from a container or an
// outer sandbox.
func SeccompFiltered() bool {
	b, err := ReadFile("/proc/self/status", 64<<10)
	if err != nil {
		return false
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("Seccomp:")); ok {
			return string(bytes.TrimSpace(v)) == "2"
		}
	}
	return false
}
