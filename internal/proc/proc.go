// Package proc parses /proc/PID/stat, which the run (init's watch), the
// cgroup cleanup (owners of stale cgroups) and the state directory (owners
// of records) all read, and reads the kernel's small text files
// (ReadFile). It owns nothing else and imports only the standard library.
package proc

import (
	"bytes"
	"errors"
	"io"
	"os"
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
