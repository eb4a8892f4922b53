package holder

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"unsafe"

	"sandbox/idmap"

	"golang.org/x/sys/unix"
)

// Identity is the holder's map for a run's map m: every outside id of m
// mapped to itself, sorted and merged.
func Identity(m []idmap.Mapping) []idmap.Mapping {
	var out []idmap.Mapping
	for _, l := range m {
		out = append(out, idmap.Mapping{Inside: l.Outside, Outside: l.Outside, Count: l.Count})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inside < out[j].Inside })
	merged := out[:0]
	for _, l := range out {
		if k := len(merged) - 1; k >= 0 && uint64(merged[k].Inside)+uint64(merged[k].Count) == uint64(l.Inside) {
			merged[k].Count += l.Count
			continue
		}
		merged = append(merged, l)
	}
	return merged
}

// facts are what Verify learns of a namespace fd.
type facts struct {
	owner        uint32    // NS_GET_OWNER_UID
	parent, self [2]uint64 // dev, inode of its parent namespace and of ours
	uidMap       string    // its maps, as /proc/PID/uid_map shows them
	gidMap       string
}

// Verify checks the namespace ns that a holder gave before anything joins
// it: it must be owned by our uid, be a child of our own user namespace,
// and map exactly the ids of uids and gids (a run's maps) to themselves,
// as uidMap and gidMap (the holder's word, which the stage in init checks
// again against the kernel's once it has joined) say.
func Verify(ns *os.File, uidMap, gidMap string, uids, gids []idmap.Mapping) error {
	var f facts
	f.uidMap, f.gidMap = uidMap, gidMap
	var owner uint32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, ns.Fd(), unix.NS_GET_OWNER_UID, uintptr(unsafe.Pointer(&owner))); e != 0 {
		return fmt.Errorf("the holder's namespace: NS_GET_OWNER_UID: %w", e)
	}
	f.owner = owner
	pfd, err := unix.IoctlRetInt(int(ns.Fd()), unix.NS_GET_PARENT)
	if err != nil {
		return fmt.Errorf("the holder's namespace: NS_GET_PARENT: %w", err)
	}
	var st unix.Stat_t
	err = unix.Fstat(pfd, &st)
	unix.Close(pfd)
	if err != nil {
		return fmt.Errorf("the holder's namespace's parent: %w", err)
	}
	f.parent = [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil {
		return fmt.Errorf("our user namespace: %w", err)
	}
	f.self = [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	return f.check(uint32(os.Getuid()), uids, gids)
}

func (f facts) check(uid uint32, uids, gids []idmap.Mapping) error {
	switch {
	case f.owner != uid:
		return fmt.Errorf("the holder's namespace belongs to uid %d, not to us (%d)", f.owner, uid)
	case f.parent != f.self:
		return errors.New("the holder's namespace is not a child of our user namespace")
	}
	if err := identical("uid_map", f.uidMap, Identity(uids)); err != nil {
		return err
	}
	return identical("gid_map", f.gidMap, Identity(gids))
}

// identical checks that text (a uid_map or gid_map) is exactly want.
func identical(file, text string, want []idmap.Mapping) error {
	got, err := ParseMap(text, file)
	if err != nil {
		return fmt.Errorf("the holder's %w", err)
	}
	if idmap.Format(got) != idmap.Format(want) {
		return fmt.Errorf("the holder's %s is %q, not the identity map of your ids %q",
			file, strings.TrimSpace(idmap.Format(got)), strings.TrimSpace(idmap.Format(want)))
	}
	return nil
}

// ParseMap reads the text of a uid_map or gid_map (idmap.ParseMap; file
// names it in errors), which must have a line, sorted by the inside id.
func ParseMap(text, file string) ([]idmap.Mapping, error) {
	out, err := idmap.ParseMap(text, file)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no lines", file)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inside < out[j].Inside })
	return out, nil
}
