package idmap

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Root's range when root has no /etc/subuid or /etc/subgid entry: 65536
// ids far above any normal user or system id, so the sandbox's users do
// not alias real host users.
const (
	DefaultRootStart = 1000000000
	DefaultRootCount = 65536
)

// Facts is what Decide needs to know about the caller and the system.
type Facts struct {
	User string // login name, for messages ("" if none)
	Root bool   // CAP_SETUID and CAP_SETGID (root): writes the maps itself, needs no helpers
	// Nested: the caller's own user namespace maps a limited range (a
	// container, another sandbox); Root's ranges are then within it.
	Nested bool
	// The caller's ranges and where they were looked up (as returned by Subids).
	UIDRanges, GIDRanges []Range
	UIDSource, GIDSource string
	// HelperErr is CheckHelpers' result; nil if newuidmap and newgidmap are usable.
	HelperErr error
	// FreeUID, FreeGID start a block no other user's range touches, for
	// the usermod fix (0: 100000).
	FreeUID, FreeGID uint32
}

// Decision is how to map.
type Decision struct {
	Mode       Mode // Full or Single
	ViaHelpers bool // run newuidmap/newgidmap rather than writing the maps directly
	// Ranges to hand to Plan (root's default filled in).
	UIDRanges, GIDRanges []Range
	// Warning is "" or the bare text of one warning (the logger adds its
	// level's prefix; no trailing newline).
	Warning string
}

// Decide picks full or single mapping. Root maps fully and directly.
// Otherwise full needs ranges for both uids and gids plus working helpers:
// auto falls back to single with one warning, an explicit full is an error.
func Decide(mode Mode, f Facts) (Decision, error) {
	switch mode {
	case Single:
		return Decision{Mode: Single}, nil
	case Auto, Full:
	default:
		return Decision{}, fmt.Errorf("--map=%s: unknown mode (want auto, full or single)", mode)
	}
	if f.Root && f.Nested {
		if len(f.UIDRanges) > 0 && len(f.GIDRanges) > 0 {
			return Decision{Mode: Full, UIDRanges: f.UIDRanges, GIDRanges: f.GIDRanges}, nil
		}
		cause := "this user namespace (a container or another sandbox) maps no uid or gid but your own"
		if mode == Full {
			return Decision{}, fmt.Errorf("--map=full is not possible: %s (fix: give the outer container more ids, or use --map=single)", cause)
		}
		return Decision{Mode: Single, Warning: cause + "; mapping only your own uid and gid"}, nil
	}
	if f.Root {
		d := Decision{Mode: Full, UIDRanges: f.UIDRanges, GIDRanges: f.GIDRanges}
		if len(d.UIDRanges) == 0 {
			d.UIDRanges = []Range{defaultRootRange()}
		}
		if len(d.GIDRanges) == 0 {
			d.GIDRanges = []Range{defaultRootRange()}
		}
		return d, nil
	}

	user := f.User
	if user == "" {
		user = "USER"
	}
	uidFile := orDefault(f.UIDSource, "/etc/subuid")
	gidFile := orDefault(f.GIDSource, "/etc/subgid")
	block := func(start uint32) string {
		if start == 0 {
			start = FreeStart(nil)
		}
		return fmt.Sprintf("%d-%d", start, uint64(start)+BlockSize-1)
	}
	var causes, fixes []string
	switch noU, noG := len(f.UIDRanges) == 0, len(f.GIDRanges) == 0; {
	case noU && noG:
		causes = append(causes, fmt.Sprintf("no %s or %s entry for %s", uidFile, gidFile, user))
		fixes = append(fixes, fmt.Sprintf("`usermod --add-subuids %s --add-subgids %s %s`", block(f.FreeUID), block(f.FreeGID), user))
	case noU:
		causes = append(causes, fmt.Sprintf("no %s entry for %s", uidFile, user))
		fixes = append(fixes, fmt.Sprintf("`usermod --add-subuids %s %s`", block(f.FreeUID), user))
	case noG:
		causes = append(causes, fmt.Sprintf("no %s entry for %s", gidFile, user))
		fixes = append(fixes, fmt.Sprintf("`usermod --add-subgids %s %s`", block(f.FreeGID), user))
	}
	for _, err := range flatten(f.HelperErr) {
		var he *HelperError
		if !errors.As(err, &he) {
			causes = append(causes, err.Error())
			continue
		}
		causes = append(causes, he.Problem)
		if !slices.Contains(fixes, he.Fix) {
			fixes = append(fixes, he.Fix)
		}
	}
	if len(causes) == 0 {
		return Decision{Mode: Full, ViaHelpers: true, UIDRanges: f.UIDRanges, GIDRanges: f.GIDRanges}, nil
	}
	if f.Nested && f.HelperErr != nil {
		// The host's helpers and files mean nothing here: the setuid
		// helpers' owner is not mapped, and no_new_privs is often set.
		causes = []string{"you are not root in this user namespace (a container or another sandbox), so only your own ids can be mapped"}
		fixes = []string{"run this as the namespace's root (sandbox: --uid 0, the default)"}
	}
	cause := strings.Join(causes, "; ")
	fix := strings.Join(fixes, " and ")
	if mode == Full {
		if fix == "" {
			return Decision{}, fmt.Errorf("--map=full is not possible: %s (fix: use --map=auto or --map=single)", cause)
		}
		return Decision{}, fmt.Errorf("--map=full is not possible: %s (fix: %s, or use --map=single)", cause, fix)
	}
	w := cause + "; mapping only your own uid and gid"
	if fix != "" {
		w += " (fix: " + fix + ")"
	}
	return Decision{Mode: Single, Warning: w}, nil
}

// flatten splits a multi-error (errors.Join, or CheckHelpers' "%w; %w") into its parts.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func defaultRootRange() Range {
	return Range{Start: DefaultRootStart, Count: DefaultRootCount, File: "the built-in default for root"}
}

// Prepared is both maps, ready for Apply.
type Prepared struct {
	UIDs, GIDs []Mapping
	ViaHelpers bool
	Warning    string // "" or the text of one warning, as Decision.Warning
}

// Prepare does the whole decision for `sandbox run`: it looks up the
// caller's ranges (user/uid/gid are the caller's real identity), checks the
// helpers unless running as root, calls Decide and plans both maps so that
// insideUID/insideGID are the caller inside. Single mode reads nothing.
func (s Source) Prepare(mode Mode, user string, uid, gid, insideUID, insideGID uint32) (Prepared, error) {
	f := Facts{User: user, Root: Privileged()}
	if mode != Single {
		var err error
		if f.UIDRanges, f.UIDSource, err = s.Subids(UID, user, uid); err != nil {
			return Prepared{}, err
		}
		if f.GIDRanges, f.GIDSource, err = s.Subids(GID, user, uid); err != nil {
			return Prepared{}, err
		}
		mu, nestedU, err := selfMapped(UID)
		if err != nil {
			return Prepared{}, err
		}
		mg, nestedG, err := selfMapped(GID)
		if err != nil {
			return Prepared{}, err
		}
		if f.Nested = nestedU || nestedG; f.Nested && f.Root {
			// Root writes the maps itself: only ids this namespace maps.
			f.UIDRanges = Usable(f.UIDRanges, mu, uid)
			f.GIDRanges = Usable(f.GIDRanges, mg, gid)
		}
		if !f.Root {
			f.HelperErr = CheckHelpers()
			// Only for the fix of a missing entry: a range nobody has.
			if len(f.UIDRanges) == 0 {
				f.FreeUID = freeIn("/etc/subuid", user, uid)
			}
			if len(f.GIDRanges) == 0 {
				f.FreeGID = freeIn("/etc/subgid", user, uid)
			}
		}
	}
	d, err := Decide(mode, f)
	if err != nil {
		return Prepared{}, err
	}
	p := Prepared{ViaHelpers: d.ViaHelpers, Warning: d.Warning}
	if p.UIDs, err = Plan(insideUID, uid, d.UIDRanges, d.Mode); err != nil {
		return Prepared{}, fmt.Errorf("uid map: %w", err)
	}
	if p.GIDs, err = Plan(insideGID, gid, d.GIDRanges, d.Mode); err != nil {
		return Prepared{}, fmt.Errorf("gid map: %w", err)
	}
	return p, nil
}
