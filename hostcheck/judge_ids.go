package hostcheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"sandbox/idmap"

	"golang.org/x/sys/unix"
)

// SubidFacts are one kind of subordinate ids (uid or gid) as the files and
// shadow's getsubids give them.
type SubidFacts struct {
	File    string        // /etc/subuid or /etc/subgid
	Own     []idmap.Range // the caller's entries in File, by name or by uid
	FileErr error         // File unreadable, or an entry of the caller's malformed
	Others  []OwnedRange  // the other users' entries in File
	// Getsubids: shadow's getsubids is installed; it asks the subid provider
	// of /etc/nsswitch.conf (files, sssd, LDAP), as newuidmap does.
	Getsubids bool
	NSS       []idmap.Range // `getsubids [-g] USER`
	NSSErr    error
}

// OwnedRange is another user's entry.
type OwnedRange = idmap.Entry

// HelperFacts are newuidmap or newgidmap.
type HelperFacts struct {
	Name     string
	Path     string // found in PATH; "" if not
	Setuid   bool   // setuid and owned by root
	FileCaps bool   // has a security.capability xattr
	Err      error  // idmap.CheckHelper's verdict
}

// The most common size, and what images need: ids 0-65535.
const fullRange = 65536

// judgeSubids gives one kind's line. own is the caller's uid or gid, the id
// a range must leave out; uid keys both files.
func judgeSubids(kind idmap.Kind, s SubidFacts, user string, uid, own uint32, root bool) Result {
	id := "sub" + kind.String()
	if root {
		if len(s.Own) > 0 {
			return ok(id, fmt.Sprintf("root writes its maps itself, with %s from %s", rangesString(s.Own), s.File))
		}
		return ok(id, fmt.Sprintf("root writes its maps itself; no entry in %s, so ids %d-%d",
			s.File, idmap.DefaultRootStart, idmap.DefaultRootStart+idmap.DefaultRootCount-1))
	}
	if s.FileErr != nil {
		return fail(id, s.FileErr.Error()+" (run stops on it)",
			fmt.Sprintf("make %s readable and each of your entries read %s:START:COUNT", s.File, user))
	}
	free := freeRange(s.Others)
	opt := "--add-sub" + kind.String() + "s"
	addFix := fmt.Sprintf("sudo usermod %s %d-%d %s", opt, free, free+fullRange-1, user)
	ranges, from := s.Own, s.File
	if len(ranges) == 0 && len(s.NSS) > 0 {
		ranges, from = s.NSS, "getsubids"
	}
	if len(ranges) == 0 {
		where := s.File + " (getsubids is not installed, so no NSS provider such as sssd or LDAP was asked)"
		if s.Getsubids {
			where = s.File + " nor from getsubids"
			if s.NSSErr != nil {
				where += " (" + s.NSSErr.Error() + ")"
			}
		}
		return warn(id, fmt.Sprintf("no entry for %s or uid %d in %s: run maps only your own %s, with a warning; --map=full fails",
			user, uid, where, kind), addFix)
	}

	var issues []Result
	// moveFix replaces a range by a free one of full size.
	moveFix := func(r idmap.Range) string {
		if from == "getsubids" {
			return "change the range in your subid provider (the subid: line of /etc/nsswitch.conf names it: sssd, LDAP)"
		}
		return fmt.Sprintf("sudo usermod --del-sub%ss %d-%d %s %d-%d %s", kind, r.Start, end(r)-1, opt, free, free+fullRange-1, user)
	}
	for _, r := range ranges {
		if own >= r.Start && uint64(own) < end(r) {
			issues = append(issues, fail(id, fmt.Sprintf("%s (%s) contains your own %s %d: run stops (that id would be mapped twice)",
				r, where(r), kind, own), moveFix(r)))
		}
		for _, o := range s.Others {
			if overlap(r, o.Range) {
				issues = append(issues, warn(id, fmt.Sprintf("%s (%s) overlaps %s's %s (%s): both users' sandboxes get those host ids and can reach each other's files",
					r, where(r), o.Owner, o.Range, where(o.Range)), moveFix(r)))
			}
		}
	}
	if s.Getsubids && s.NSSErr == nil && len(s.Own) > 0 && !covered(s.Own, s.NSS) {
		nss := "nothing"
		if len(s.NSS) > 0 {
			nss = rangesString(s.NSS)
		}
		issues = append(issues, warn(id, fmt.Sprintf("%s gives %s but getsubids (the subid provider newuidmap asks) gives %s: newuidmap may refuse the map",
			s.File, rangesString(s.Own), nss), "make them agree: the provider is the subid: line of /etc/nsswitch.conf (none: the files)"))
	}
	// Inside, the caller is 0 and the ranges 1..n: 65535 of them map
	// every id up to 65535 (before, 65535 was warned of as too few).
	if n := total(ranges); n < fullRange-1 {
		fix := addFix
		if len(ranges) == 1 {
			fix = moveFix(ranges[0])
		}
		issues = append(issues, warn(id, fmt.Sprintf("only %d ids (%s): ids above %d are unmapped inside, so images with files or users of higher ids (up to 65535) fail",
			n, rangesString(ranges), n), fix))
	}
	if len(issues) > 0 {
		return merge(issues)
	}
	agree := "; getsubids is not installed"
	switch {
	case from == "getsubids":
		agree = "; none in " + s.File
	case s.Getsubids:
		agree = "; getsubids agrees"
	}
	return ok(id, fmt.Sprintf("%d ids: %s from %s%s", total(ranges), rangesString(ranges), from, agree))
}

// merge makes one line of several findings about the same link: the worst
// level, every message and every fix.
func merge(rs []Result) Result {
	m := rs[0]
	var msgs, fixes []string
	for _, r := range rs {
		if r.Status == Fail || (r.Status == Warn && m.Status == OK) {
			m.Status = r.Status
		}
		m.Blocks = m.Blocks || r.Blocks
		msgs = append(msgs, r.Message)
		if r.Fix != "" && !slices.Contains(fixes, r.Fix) {
			fixes = append(fixes, r.Fix)
		}
	}
	m.Message, m.Fix = strings.Join(msgs, "; "), strings.Join(fixes, "; ")
	return m
}

func judgeHelper(h HelperFacts, root bool) Result {
	switch {
	case root:
		return ok(h.Name, "not needed: root writes its maps itself")
	case h.Path == "":
		return warn(h.Name, h.Name+" is not installed: run maps only your own uid and gid, with a warning; --map=full fails",
			"sudo apt-get install uidmap (Fedora: sudo dnf install shadow-utils)")
	case h.Err != nil:
		const reinstall = "sudo apt-get install --reinstall uidmap (Fedora: sudo dnf reinstall shadow-utils)"
		msg, fix := h.Err.Error(), reinstall
		var he *idmap.HelperError
		if errors.As(h.Err, &he) {
			msg, fix = he.Problem, he.Fix
			if !h.Setuid && !h.FileCaps {
				fix += "; or reinstall it: " + reinstall
			}
		}
		return broken(h.Name, msg+": run falls back to mapping only your own uid and gid, with a warning; --map=full fails", fix)
	case h.Setuid:
		return ok(h.Name, h.Path+": setuid root")
	}
	return ok(h.Name, h.Path+": file capabilities (security.capability), no setuid bit")
}

// judgeDevice: a 0600 node is the usual misconfiguration (distributions ship 0666).
func judgeDevice(id string, d DevAccess, module, need string) Result {
	switch {
	case !d.Exists:
		return warn(id, d.Path+" does not exist: "+need, "sudo modprobe "+module)
	case d.Err == nil:
		return ok(id, fmt.Sprintf("%s: read-write for you (mode %04o)", d.Path, d.Mode))
	case errors.Is(d.Err, unix.EACCES) || errors.Is(d.Err, unix.EPERM):
		return warn(id, fmt.Sprintf("%s has mode %04o (owner uid %d): you cannot open it (%v); %s", d.Path, d.Mode, d.UID, d.Err, need),
			fmt.Sprintf("sudo chmod 0666 %s (as distributions ship it; a udev rule KERNEL==\"%s\", MODE=\"0666\" keeps it across reboots)", d.Path, module))
	}
	return warn(id, fmt.Sprintf("%s (mode %04o) cannot be opened: %v; %s", d.Path, d.Mode, d.Err, need), "sudo modprobe "+module)
}

// freeRange is the first block of 65536 ids that no other user's range
// touches, for the usermod fixes.
func freeRange(others []OwnedRange) uint32 {
	rs := make([]idmap.Range, 0, len(others))
	for _, o := range others {
		rs = append(rs, o.Range)
	}
	return idmap.FreeStart(rs)
}

func end(r idmap.Range) uint64 { return uint64(r.Start) + uint64(r.Count) }

func overlap(a, b idmap.Range) bool {
	return uint64(a.Start) < end(b) && uint64(b.Start) < end(a)
}

// covered: every range of rs lies inside one range of by.
func covered(rs, by []idmap.Range) bool {
	for _, r := range rs {
		in := false
		for _, b := range by {
			if r.Start >= b.Start && end(r) <= end(b) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

func where(r idmap.Range) string {
	if r.Line > 0 {
		return fmt.Sprintf("%s line %d", r.File, r.Line)
	}
	return r.File
}

func total(rs []idmap.Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += uint64(r.Count)
	}
	return n
}

func rangesString(rs []idmap.Range) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, ",")
}
