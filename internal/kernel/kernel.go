// Package kernel reads the running kernel's release and compares versions,
// for the checks that depend on what a kernel has (hostcheck's verdicts,
// seccomp's minKernel, PID 1's hints). It imports the standard library and
// golang.org/x/sys only, so that a small program (the sandbox's PID 1) can
// check the kernel without linking hostcheck.
package kernel

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Version is a kernel's major.minor.
type Version struct{ Major, Minor int }

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// Less reports whether v is before o.
func (v Version) Less(o Version) bool { return !v.AtLeast(o.Major, o.Minor) }

func (v Version) String() string { return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor) }

// Parse reads major.minor from a release: digits, a dot, digits, and
// anything after the minor number ignored ("6.18.44-fc" and "5.11-rc1"
// are 6.18 and 5.11).
func Parse(release string) (Version, error) {
	var n [2]int
	rest := release
	for i := range n {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 {
			return Version{}, fmt.Errorf("bad kernel version %q (want major.minor)", release)
		}
		v, err := strconv.Atoi(rest[:j])
		if err != nil {
			return Version{}, fmt.Errorf("bad kernel version %q: %v", release, err)
		}
		n[i] = v
		rest = rest[j:]
		if i == 0 {
			if !strings.HasPrefix(rest, ".") {
				return Version{}, fmt.Errorf("bad kernel version %q (want major.minor)", release)
			}
			rest = rest[1:]
		}
	}
	return Version{n[0], n[1]}, nil
}

// Release is the running kernel's release (uname -r: "6.18.4-amd64").
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// Running is the running kernel's version.
func Running() (Version, error) {
	r, err := Release()
	if err != nil {
		return Version{}, err
	}
	return Parse(r)
}

// AtLeast reports whether the running kernel is major.minor or later, and
// true when its version cannot be read: it is for hints and fallbacks, where
// an unknown kernel is taken to be a recent one (what fails then says so).
func AtLeast(major, minor int) bool {
	v, err := Running()
	return err != nil || v.AtLeast(major, minor)
}
