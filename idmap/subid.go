// Package idmap turns subordinate-id ranges into user-namespace id mappings and writes them.
//
// The pieces are separate so that most of them are pure and testable:
// ParseSubids and Subids find the caller's ranges, Decide picks full or
// single mapping, Plan lays out the uid_map/gid_map lines, CheckHelper
// verifies newuidmap/newgidmap, and Apply writes the maps for a child.
// Source.Prepare strings the lookups, Decide and Plan together.
package idmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"sandbox/internal/hostpath"
)

// Kind says which id space a lookup, helper or map is about.
type Kind int

const (
	UID Kind = iota
	GID
)

func (k Kind) String() string {
	if k == GID {
		return "gid"
	}
	return "uid"
}

// Helper is the setuid tool that writes this kind's map for an unprivileged caller.
func (k Kind) Helper() string {
	if k == GID {
		return "newgidmap"
	}
	return "newuidmap"
}

// maxID is the highest usable id: (uint32)-1 means "no id" to the kernel
// and cannot be mapped.
const maxID = 1<<32 - 2

// Range is one subordinate-id range granted to the caller.
type Range struct {
	Start, Count uint32
	// File and Line say where the range came from, for error messages:
	// a path and its 1-based line, or "getsubids" and its output line.
	File string
	Line int
}

func (r Range) String() string { return fmt.Sprintf("%d:%d", r.Start, r.Count) }

func (r Range) where() string {
	if r.Line > 0 {
		return fmt.Sprintf("%s line %d", r.File, r.Line)
	}
	return r.File
}

// ParseSubids reads /etc/subuid or /etc/subgid text (NAME_OR_UID:START:COUNT
// per line, # comments, blank lines) and returns, in file order, the ranges
// whose first field is user or the decimal uid. Both files are keyed by the
// user, so uid is the caller's uid for /etc/subgid too. Malformed lines that
// apply to the caller are an error naming file and line; malformed lines of
// other users are none of our business and are skipped.
func ParseSubids(r io.Reader, file, user string, uid uint32) ([]Range, error) {
	uidKey := strconv.FormatUint(uint64(uid), 10)
	sc := bufio.NewScanner(r)
	var out []Range
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Split(line, ":")
		owner := strings.TrimSpace(fields[0])
		if owner != uidKey && (user == "" || owner != user) {
			continue
		}
		rg, err := parseRange(fields[1:])
		if err != nil {
			return nil, fmt.Errorf("%s line %d %q: %w (fix: make it read %s:START:COUNT, e.g. %s:100000:65536, or delete it)",
				file, n, line, err, owner, owner)
		}
		rg.File, rg.Line = file, n
		out = append(out, rg)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return out, nil
}

// parseRange checks START and COUNT of one entry.
func parseRange(f []string) (Range, error) {
	if len(f) != 2 {
		return Range{}, fmt.Errorf("want 3 colon-separated fields, got %d", len(f)+1)
	}
	start, err := parseID("start", f[0])
	if err != nil {
		return Range{}, err
	}
	count, err := parseID("count", f[1])
	if err != nil {
		return Range{}, err
	}
	if count == 0 {
		return Range{}, errors.New("count is 0")
	}
	if uint64(start)+uint64(count)-1 > maxID {
		return Range{}, fmt.Errorf("range %d:%d goes past %d, the highest valid id", start, count, uint32(maxID))
	}
	return Range{Start: start, Count: count}, nil
}

func parseID(what, s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s %q is not a decimal number", what, s)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %s is larger than %d", what, s, uint32(1<<32-1))
	}
	return uint32(v), nil
}

// parseGetsubids reads getsubids output: "0: alice 100000 65536" per range.
func parseGetsubids(r io.Reader, cmd string) ([]Range, error) {
	sc := bufio.NewScanner(r)
	var out []Range
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 || !strings.HasSuffix(f[0], ":") {
			return nil, fmt.Errorf("`%s` output line %d %q: want \"N: USER START COUNT\" (fix: check the subid provider in /etc/nsswitch.conf)", cmd, n, line)
		}
		rg, err := parseRange(f[2:])
		if err != nil {
			return nil, fmt.Errorf("`%s` output line %d %q: %w (fix: correct the range in your subid provider)", cmd, n, line, err)
		}
		rg.File, rg.Line = "getsubids", n
		out = append(out, rg)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading `%s` output: %w", cmd, err)
	}
	return out, nil
}

// Source says where subordinate ids are looked up.
type Source struct {
	SubuidPath, SubgidPath string
	// Getsubids is shadow's NSS-aware lookup tool (name or path), asked
	// when the file has no entry; "" disables it.
	Getsubids string
}

// DefaultSource is the system's: /etc/subuid, /etc/subgid, then getsubids from PATH.
func DefaultSource() Source {
	return Source{SubuidPath: "/etc/subuid", SubgidPath: "/etc/subgid", Getsubids: "getsubids"}
}

// getsubidsTimeout bounds an NSS lookup that may go over the network.
const getsubidsTimeout = 10 * time.Second

// Subids looks up DefaultSource; see Source.Subids.
func Subids(kind Kind, user string, uid uint32) ([]Range, string, error) {
	return DefaultSource().Subids(kind, user, uid)
}

// Subids returns the caller's subordinate uid or gid ranges and where they
// came from (the file path, or "getsubids"). uid is the caller's uid for
// both kinds, since /etc/subgid is keyed by user too. No entry is not an
// error: it returns no ranges and the file path, for messages.
func (s Source) Subids(kind Kind, user string, uid uint32) ([]Range, string, error) {
	path := s.SubuidPath
	if kind == GID {
		path = s.SubgidPath
	}
	if path != "" {
		ranges, err := readSubids(path, user, uid)
		if err != nil || len(ranges) > 0 {
			return ranges, path, err
		}
	}
	if s.Getsubids == "" {
		return nil, path, nil
	}
	bin, err := hostpath.Look(s.Getsubids)
	if err != nil {
		return nil, path, nil // not installed: the file was the only source
	}
	owner := user
	if owner == "" {
		owner = strconv.FormatUint(uint64(uid), 10)
	}
	args := []string{owner}
	if kind == GID {
		args = []string{"-g", owner}
	}
	ctx, cancel := context.WithTimeout(context.Background(), getsubidsTimeout)
	defer cancel()
	cmdline := "getsubids " + strings.Join(args, " ")
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if ctx.Err() != nil {
		return nil, path, fmt.Errorf("`%s`: %w", cmdline, ctx.Err())
	}
	if err != nil {
		// getsubids exits 1 ("Error fetching ranges") when the user has none.
		return nil, path, nil
	}
	ranges, err := parseGetsubids(strings.NewReader(string(out)), cmdline)
	if err != nil || len(ranges) == 0 {
		return nil, path, err
	}
	return ranges, "getsubids", nil
}

func readSubids(path, user string, uid uint32) ([]Range, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading subordinate ids: %w", err)
	}
	defer f.Close()
	return ParseSubids(f, path, user, uid)
}
