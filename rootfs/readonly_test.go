package rootfs

import (
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// The bind remount repeats every per-mount flag (a locked one left out is
// EPERM) and the atime mode (left out, the kernel would pick relatime).
func TestRemountFlags(t *testing.T) {
	base := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY)
	for opts, want := range map[string]uintptr{
		"rw,relatime":                        base | unix.MS_RELATIME,
		"rw,nosuid,nodev,noexec,relatime":    base | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME,
		"ro,noatime":                         base | unix.MS_NOATIME,
		"rw":                                 base | unix.MS_STRICTATIME,
		"rw,nodiratime,relatime,nosymfollow": base | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_NOSYMFOLLOW,
	} {
		if got := remountFlags(opts); got != want {
			t.Errorf("remountFlags(%q) = %#x, want %#x", opts, got, want)
		}
	}
}

// subtree: the mount and every mount below it, parents first, nothing else.
func TestSubtree(t *testing.T) {
	ms := []*mountinfo.Info{
		{ID: 1, Parent: 0, Mountpoint: "/"},
		{ID: 2, Parent: 1, Mountpoint: "/a"},
		{ID: 5, Parent: 3, Mountpoint: "/a/b/c"}, // listed before its parent (moved)
		{ID: 3, Parent: 2, Mountpoint: "/a/b"},
		{ID: 4, Parent: 1, Mountpoint: "/other"},
	}
	top, below := subtree(ms, 2)
	if top == nil || top.ID != 2 {
		t.Fatalf("top = %+v", top)
	}
	var ids []int
	for _, m := range below {
		ids = append(ids, m.ID)
	}
	if len(ids) != 2 || ids[0] != 3 || ids[1] != 5 {
		t.Errorf("below = %v, want [3 5]", ids)
	}
	if top, _ := subtree(ms, 9); top != nil {
		t.Error("an unknown mount id was found")
	}
}
