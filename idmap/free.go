package idmap

import (
	"cmp"
	"os"
	"slices"
	"strconv"
	"strings"
)

// BlockSize is the size of the range useradd gives each user (and the
// least an image's ids need).
const BlockSize = 65536

// FreeStart is the start of the first block of BlockSize ids that none of
// taken touches, among those useradd hands out (100000, 165536, …), for a
// usermod fix that gives no id to two users. 100000 when none is free.
func FreeStart(taken []Range) uint32 {
	const first, last = 100000, 1<<32 - 2 // last: the highest valid id
	rs := slices.Clone(taken)
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
	c := uint64(first)
	for _, r := range rs {
		end := uint64(r.Start) + uint64(r.Count)
		if end <= c {
			continue
		}
		if uint64(r.Start) >= c+BlockSize {
			break // the ranges after it start later still
		}
		c = first + (end-first+BlockSize-1)/BlockSize*BlockSize // the next candidate past r
	}
	if c+BlockSize-1 > last {
		return first
	}
	return uint32(c)
}

// Entry is a subid file's range with the owner it names.
type Entry struct {
	Owner string // as written: a name or a uid
	Range
}

// OthersIn parses the entries of a subid file's text that belong to
// neither user nor uid.
func OthersIn(text, file, user string, uid uint32) []Entry {
	const noID = 1<<32 - 1 // keys no entry: only the owner's name matches
	self := strconv.FormatUint(uint64(uid), 10)
	var out []Entry
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		owner, _, _ := strings.Cut(line, ":")
		owner = strings.TrimSpace(owner)
		if owner == user || owner == self {
			continue
		}
		rs, err := ParseSubids(strings.NewReader(line), file, owner, noID)
		if err != nil || len(rs) != 1 {
			continue
		}
		rs[0].Line = i + 1
		out = append(out, Entry{Owner: owner, Range: rs[0]})
	}
	return out
}

// freeIn is FreeStart for the other users' entries of file.
func freeIn(file, user string, uid uint32) uint32 {
	b, err := os.ReadFile(file)
	if err != nil {
		return FreeStart(nil)
	}
	var taken []Range
	for _, e := range OthersIn(string(b), file, user, uid) {
		taken = append(taken, e.Range)
	}
	return FreeStart(taken)
}
