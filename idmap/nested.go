package idmap

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMapText bounds what is read of a uid_map or gid_map (340 lines of
// three 10-digit numbers fit well below it).
const maxMapText = 64 << 10

// Mapped returns the ids that the user namespace whose map is in text
// (/proc/self/uid_map or gid_map content) can use, as ranges of ids of that
// namespace. nested is false for the initial namespace, which maps every id.
func Mapped(text, file string) (ranges []Range, nested bool, err error) {
	err = parseMap(text, file, func(line int, m Mapping) {
		if m.Count != 0 {
			ranges = append(ranges, Range{Start: m.Inside, Count: m.Count, File: file, Line: line})
		}
	})
	if err != nil {
		return nil, false, err
	}
	// The initial namespace: one line mapping all 2^32-1 ids onto themselves.
	if len(ranges) == 1 && ranges[0].Start == 0 && ranges[0].Count == 1<<32-1 && strings.Fields(text)[1] == "0" {
		return ranges, false, nil
	}
	return ranges, true, nil
}

// ParseMap reads the text of a uid_map or gid_map (file names it in
// errors), as Format writes it and the kernel shows it: one mapping per
// line of three numbers, any spacing, blank lines ignored.
func ParseMap(text, file string) ([]Mapping, error) {
	var out []Mapping
	err := parseMap(text, file, func(_ int, m Mapping) { out = append(out, m) })
	return out, err
}

// parseMap calls each with every mapping in text and its line number.
func parseMap(text, file string, each func(line int, m Mapping)) error {
	for i, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return fmt.Errorf("%s line %d: %q is not `inside outside count`", file, i+1, l)
		}
		var v [3]uint32
		for j := range f {
			n, err := strconv.ParseUint(f[j], 10, 32)
			if err != nil {
				return fmt.Errorf("%s line %d: %q: %v", file, i+1, l, err)
			}
			v[j] = uint32(n)
		}
		each(i+1, Mapping{Inside: v[0], Outside: v[1], Count: v[2]})
	}
	return nil
}

// selfMaps holds the current user namespace's uid_map and gid_map (tests change it).
var selfMaps = "/proc/self"

// selfMapped reads the current user namespace's map of kind.
func selfMapped(kind Kind) ([]Range, bool, error) {
	dir := selfMaps
	file := dir + "/uid_map"
	if kind == GID {
		file = dir + "/gid_map"
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, false, fmt.Errorf("reading this user namespace's map: %w", err)
	}
	defer f.Close()
	// Read to its end, bounded: a map is a line or two, and a buffer of
	// maxMapText for each is 32 pages to fault in and zero on every run.
	buf, err := io.ReadAll(io.LimitReader(f, maxMapText+1))
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", file, err)
	}
	if len(buf) > maxMapText {
		return nil, false, fmt.Errorf("reading %s: longer than %d bytes", file, maxMapText)
	}
	return Mapped(string(buf), file)
}

// Usable keeps the parts of ranges that lie within mapped, leaving out
// self (the caller's own id, mapped on its own). With no ranges left it
// takes everything mapped but self: inside a container or another sandbox
// the ids the namespace maps are the only ones there are.
func Usable(ranges, mapped []Range, self uint32) []Range {
	out := clip(ranges, mapped, self)
	if len(out) == 0 {
		out = clip(mapped, mapped, self)
	}
	return out
}

func clip(ranges, mapped []Range, self uint32) []Range {
	var out []Range
	add := func(r Range, start, end uint64) { // end exclusive
		if end > start {
			r.Start, r.Count = uint32(start), uint32(end-start)
			out = append(out, r)
		}
	}
	for _, r := range ranges {
		rs, re := uint64(r.Start), uint64(r.Start)+uint64(r.Count)
		for _, m := range mapped {
			s, e := max(rs, uint64(m.Start)), min(re, uint64(m.Start)+uint64(m.Count))
			if s >= e {
				continue
			}
			if me := uint64(self); me >= s && me < e {
				add(r, s, me)
				add(r, me+1, e)
			} else {
				add(r, s, e)
			}
		}
	}
	return out
}

// Privileged tells whether this process may write any id map of a user
// namespace it creates: CAP_SETUID and CAP_SETGID in its own namespace
// (root, unless its capabilities were dropped, as in a container that
// drops them or a sandbox).
func Privileged() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	const need = 1<<unix.CAP_SETUID | 1<<unix.CAP_SETGID
	return data[0].Effective&need == need
}
