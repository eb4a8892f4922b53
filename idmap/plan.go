package idmap

import (
	"fmt"
	"strconv"
	"strings"
)

// Mode is the --map flag.
type Mode string

const (
	Auto   Mode = "auto"   // Full when possible, else Single with a warning
	Full   Mode = "full"   // caller plus all subordinate ranges
	Single Mode = "single" // only the caller's own id
)

// ParseMode checks a --map value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Full, Single:
		return m, nil
	}
	return "", fmt.Errorf("--map=%s: unknown mode (want auto, full or single)", s)
}

// Mapping is one uid_map/gid_map line: Count ids from Inside map to Outside.
type Mapping struct {
	Inside, Outside, Count uint32
}

// MaxLines is the kernel's limit on lines in one uid_map or gid_map.
const MaxLines = 340

// Plan lays out one map. inside maps to caller (count 1); with Full the
// other inside ids, from 0 upward skipping inside, are filled from ranges
// in order. Parts of a range already covered by an earlier one are skipped
// because the kernel rejects overlapping lines. A range containing caller
// is refused: that id would be mapped twice. Lines come out sorted by Inside.
func Plan(inside, caller uint32, ranges []Range, mode Mode) ([]Mapping, error) {
	if inside > maxID || caller > maxID {
		return nil, fmt.Errorf("id %d cannot be mapped: the kernel reserves it as \"no id\"", uint32(1<<32-1))
	}
	self := Mapping{Inside: inside, Outside: caller, Count: 1}
	switch mode {
	case Single:
		return []Mapping{self}, nil
	case Full:
	default:
		return nil, fmt.Errorf("planning a map: mode %q is not full or single (call Decide first)", mode)
	}
	if len(ranges) == 0 {
		return nil, fmt.Errorf("no subordinate ranges to map (fix: add some with usermod --add-subuids/--add-subgids, or use --map=single)")
	}
	for _, r := range ranges {
		end := uint64(r.Start) + uint64(r.Count) // exclusive
		switch {
		case r.Count == 0:
			return nil, fmt.Errorf("subordinate range %s (%s) is empty (fix: give it a count, or delete it)", r, r.where())
		case end-1 > maxID:
			return nil, fmt.Errorf("subordinate range %s (%s) goes past %d, the highest valid id (fix: shorten it)", r, r.where(), uint32(maxID))
		case uint64(caller) >= uint64(r.Start) && uint64(caller) < end:
			return nil, fmt.Errorf("subordinate range %s (%s) contains your own id %d, which is already mapped to %d (fix: edit %s so the range leaves out %d, or use --map=single)",
				r, r.where(), caller, inside, r.File, caller)
		}
	}

	var out []Mapping
	add := func(in, outside, n uint64) {
		if k := len(out) - 1; k >= 0 {
			last := &out[k]
			if uint64(last.Inside)+uint64(last.Count) == in && uint64(last.Outside)+uint64(last.Count) == outside {
				last.Count += uint32(n)
				return
			}
		}
		out = append(out, Mapping{Inside: uint32(in), Outside: uint32(outside), Count: uint32(n)})
	}
	var used []span // outside ids already given out, sorted and merged
	next := uint64(0)
	in := uint64(inside)
fill:
	for _, r := range ranges {
		whole := span{uint64(r.Start), uint64(r.Start) + uint64(r.Count)}
		for _, p := range subtract(whole, used) {
			for p.lo < p.hi {
				if next == in {
					next++
				}
				if next > maxID {
					break fill // every inside id is taken
				}
				n := p.hi - p.lo
				if next < in && next+n > in {
					n = in - next
				}
				if next+n-1 > maxID {
					n = maxID - next + 1
				}
				add(next, p.lo, n)
				next += n
				p.lo += n
				if len(out) >= MaxLines { // self needs a line too
					return nil, fmt.Errorf("the map needs more than %d lines, the kernel's limit (fix: merge the ranges in %s into fewer, larger ones)", MaxLines, ranges[0].File)
				}
			}
		}
		used = addSpan(used, whole)
	}

	i := 0
	for i < len(out) && out[i].Inside < inside {
		i++
	}
	out = append(out[:i], append([]Mapping{self}, out[i:]...)...)
	return out, nil
}

// span is the id interval [lo, hi).
type span struct{ lo, hi uint64 }

// subtract returns the parts of s not in used (sorted, disjoint), in order.
func subtract(s span, used []span) []span {
	var out []span
	for _, u := range used {
		if u.hi <= s.lo || u.lo >= s.hi {
			continue
		}
		if u.lo > s.lo {
			out = append(out, span{s.lo, u.lo})
		}
		s.lo = max(s.lo, u.hi)
		if s.lo >= s.hi {
			return out
		}
	}
	return append(out, s)
}

// addSpan inserts s into the sorted, merged list used.
func addSpan(used []span, s span) []span {
	var out []span
	for _, u := range used {
		switch {
		case u.hi < s.lo:
			out = append(out, u)
		case u.lo > s.hi:
			out = append(out, s)
			s = u
		default: // touching or overlapping: merge
			s = span{min(s.lo, u.lo), max(s.hi, u.hi)}
		}
	}
	return append(out, s)
}

// Format renders a map as the text of /proc/PID/uid_map or gid_map.
func Format(m []Mapping) string {
	var b strings.Builder
	for _, l := range m {
		fmt.Fprintf(&b, "%d %d %d\n", l.Inside, l.Outside, l.Count)
	}
	return b.String()
}

// HelperArgs are the arguments of newuidmap/newgidmap (after the program
// name): PID, then INSIDE OUTSIDE COUNT per line.
func HelperArgs(pid int, m []Mapping) []string {
	args := make([]string, 0, 1+3*len(m))
	args = append(args, strconv.Itoa(pid))
	for _, l := range m {
		args = append(args,
			strconv.FormatUint(uint64(l.Inside), 10),
			strconv.FormatUint(uint64(l.Outside), 10),
			strconv.FormatUint(uint64(l.Count), 10))
	}
	return args
}
