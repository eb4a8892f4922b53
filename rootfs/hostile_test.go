package rootfs

import (
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// hostileHost is a fakeHost where some directories cannot be listed, some
// are gone, and some paths never answer.
type hostileHost struct {
	fakeHost
	unreadable map[string]bool // ReadDir: permission denied
	gone       map[string]bool // ReadDir: does not exist (removed after the parent was listed)
	hang       map[string]bool // any call blocks until release is closed
	release    chan struct{}
	mu         sync.Mutex
	touched    []string // paths of calls that hung
}

func (h *hostileHost) block(name string) {
	if h.hang[name] {
		h.mu.Lock()
		h.touched = append(h.touched, name)
		h.mu.Unlock()
		<-h.release
	}
}

func (h *hostileHost) ReadDir(d string) ([]fs.DirEntry, error) {
	h.block(d)
	if h.unreadable[d] {
		return nil, &fs.PathError{Op: "open", Path: d, Err: fs.ErrPermission}
	}
	if h.gone[d] {
		return nil, &fs.PathError{Op: "open", Path: d, Err: fs.ErrNotExist}
	}
	return h.fakeHost.ReadDir(d)
}

func (h *hostileHost) Empty(d string) (bool, error) {
	ents, err := h.ReadDir(d)
	return len(ents) == 0, err
}

func (h *hostileHost) Stat(n string) (fs.FileInfo, error) { h.block(n); return h.fakeHost.Stat(n) }
func (h *hostileHost) Readlink(n string) (string, error) {
	h.block(n)
	return h.fakeHost.Readlink(n)
}

func hostileTree() *hostileHost {
	return &hostileHost{fakeHost: fakeHost{fstest.MapFS{
		"etc/hostname":       file("host\n"),
		"srv/p/s/m/secret":   file("x"), // /srv/p is root's 0700, a tmpfs on /srv/p/s/m
		"srv/open/a":         file("a"),
		"var/lib/gone/x/y":   file("y"),
		"mnt/nfs/data":       file("d"),
		"mnt/hung/data":      file("d"),
		"mnt/local/f":        file("f"),
		"proc":               dir(0o555),
		"tmp":                dir(0o1777),
		"home/alice/.bashrc": file("x"),
	}}, release: make(chan struct{})}
}

var hostileMounts = []Mount{
	{"/", "ext4"}, {"/proc", "proc"}, {"/srv/p/s/m", "tmpfs"}, {"/var/lib/gone/x", "tmpfs"},
	{"/mnt/nfs", "nfs4"}, {"/mnt/hung", "fuse.unknown"}, {"/mnt/local", "ext4"},
}

// A directory the caller cannot list, with a mount below it (root's
// /var/lib/docker), must not fail the run: it is shown as the host shows
// it, a read-only recursive bind that keeps its owner and mode.
func TestUnreadableSplitDirectoryIsBoundReadOnly(t *testing.T) {
	h := hostileTree()
	h.unreadable = map[string]bool{"/srv/p": true}
	for _, ro := range []bool{false, true} {
		pl, err := Build(Config{ReadOnly: ro, Hidden: []string{"/home"}, DevptsGID: -1}, h, hostileMounts)
		if err != nil {
			t.Fatalf("read-only=%v: %v", ro, err)
		}
		bound := "/srv/p"
		if ro {
			bound = "/srv" // read-only: every host directory is a recursive read-only bind
		}
		s := find(pl, OpBind, bound)
		if s == nil || !s.ReadOnly || s.Source != bound || !s.Optional {
			t.Errorf("read-only=%v: want an optional read-only bind of %s, got %+v", ro, bound, s)
		}
		if find(pl, OpMkdir, "/srv/p") != nil || find(pl, OpBind, "/srv/p/s/m") != nil || find(pl, OpOverlay, "/srv/p/s") != nil {
			t.Errorf("read-only=%v: the unreadable /srv/p was split: %v", ro, pl.Steps)
		}
		if !ro && find(pl, OpOverlay, "/srv/open") == nil {
			t.Errorf("its readable sibling /srv/open is not layered: %v", pl.Steps)
		}
	}
}

// A directory removed between its parent's listing and its own is left out.
func TestVanishedDirectoryIsLeftOut(t *testing.T) {
	h := hostileTree()
	h.gone = map[string]bool{"/var/lib/gone": true}
	pl, err := Build(Config{DevptsGID: -1}, h, hostileMounts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pl.Steps {
		if len(s.Target) >= len("/var/lib/gone/") && s.Target[:len("/var/lib/gone/")] == "/var/lib/gone/" {
			t.Errorf("a step below the vanished directory: %v", s)
		}
	}
	// Every step of the host's own entries may find its source gone by
	// mount time: the executor skips it then.
	if s := find(pl, OpOverlay, "/etc"); s == nil || !s.Optional {
		t.Errorf("/etc: want an optional overlay, got %+v", s)
	}
}

// A network mount point is never stat'ed or listed (a hung server would
// hang the run): a read-only bind. A hung mount of another type costs at
// most the bound per call and is left out.
func TestHungMountsAreBounded(t *testing.T) {
	h := hostileTree()
	h.hang = map[string]bool{"/mnt/nfs": true, "/mnt/hung": true}
	defer close(h.release)
	start := time.Now()
	pl, err := Build(Config{DevptsGID: -1}, h, hostileMounts)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*hostTimeout {
		t.Errorf("planning took %v with one hung mount, want about %v", d, hostTimeout)
	}
	if s := find(pl, OpBind, "/mnt/nfs"); s == nil || !s.ReadOnly {
		t.Errorf("/mnt/nfs: want a read-only bind, got %+v", s)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.touched {
		if p == "/mnt/nfs" {
			t.Error("the planner looked at the nfs4 mount point")
		}
	}
	if find(pl, OpOverlay, "/mnt/hung") != nil || find(pl, OpBind, "/mnt/hung") != nil {
		t.Errorf("/mnt/hung (no answer) was planned: %v", pl.Steps)
	}
	if find(pl, OpOverlay, "/mnt/local") == nil {
		t.Errorf("/mnt/local missing: %v", pl.Steps)
	}
}

// --read-only on a host without /etc/hosts: /etc is layered writable so
// that the sandbox's /etc/hosts can be created, then made read-only.
func TestReadOnlyWithoutHostsFile(t *testing.T) {
	h := hostileTree()
	pl, err := Build(Config{ReadOnly: true, Hosts: "127.0.0.1 localhost\n", DevptsGID: -1}, h, hostileMounts)
	if err != nil {
		t.Fatal(err)
	}
	s := find(pl, OpOverlay, "/etc")
	if s == nil || s.ReadOnly {
		t.Fatalf("/etc without hosts under --read-only: want a writable overlay, got %+v", s)
	}
	at, ro := index(pl, OpFile, "/etc/hosts"), index(pl, OpReadOnlyMount, "/etc")
	if at < 0 || ro < at {
		t.Errorf("/etc must be made read-only after /etc/hosts is placed: file at %d, read-only at %d", at, ro)
	}
	if find(pl, OpBind, "/srv") == nil {
		t.Error("other directories stay read-only binds")
	}
	// With the host's own /etc/hosts, /etc stays a read-only bind.
	h.fs["etc/hosts"] = file("127.0.0.1 localhost\n")
	pl, err = Build(Config{ReadOnly: true, Hosts: "x\n", DevptsGID: -1}, h, hostileMounts)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(pl, OpBind, "/etc"); s == nil || !s.ReadOnly {
		t.Errorf("/etc with hosts under --read-only: want a read-only bind, got %+v", s)
	}
}

// --read-only with a share at a path the host lacks (--bind X:/mnt/local/new,
// --tmpfs /srv/open/t/u): the host directory that must hold its mount point
// is layered writable and made read-only after the shares, itself only,
// so that the shares stay as asked. Before, it was a read-only bind and
// the mount point could not be made ("mkdir /srv/new: read-only file
// system"); a share at a path the host has keeps the read-only bind.
// (/mnt and /srv have mounts below them: split, their entries planned one
// by one.)
func TestReadOnlyMakesMountPoints(t *testing.T) {
	for _, c := range []struct {
		name    string
		cfg     Config
		layered string
	}{
		{"bind", Config{Binds: []Bind{{Source: "/srv/open", Target: "/mnt/local/new"}}}, "/mnt/local"},
		{"tmpfs deeper", Config{Tmpfs: []string{"/srv/open/t/u"}}, "/srv/open"},
		{"working directory", Config{Cwd: "/etc/proj", CwdMode: CwdRW}, "/etc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.ReadOnly, cfg.DevptsGID = true, -1
			pl, err := Build(cfg, hostileTree(), hostileMounts)
			if err != nil {
				t.Fatal(err)
			}
			s := find(pl, OpOverlay, c.layered)
			if s == nil || s.ReadOnly {
				t.Fatalf("want a writable overlay on %s, got %+v", c.layered, s)
			}
			ro := index(pl, OpReadOnlyMount, c.layered)
			if ro < 0 || find(pl, OpReadOnly, c.layered) != nil {
				t.Fatalf("%s must be made read-only itself only, not with the mounts below it: %v", c.layered, pl.Steps)
			}
			for i, st := range pl.Steps {
				if (st.Op == OpBind || st.Op == OpTmpfs) && strings.HasPrefix(st.Target, c.layered+"/") && i > ro {
					t.Errorf("share %v comes after %s is made read-only", st, c.layered)
				}
			}
		})
	}
	pl, err := Build(Config{ReadOnly: true, DevptsGID: -1, Binds: []Bind{{Source: "/srv/open", Target: "/mnt/local/f"}}}, hostileTree(), hostileMounts)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(pl, OpBind, "/mnt"); s == nil || !s.ReadOnly || index(pl, OpReadOnlyMount, "/mnt/local") >= 0 {
		t.Errorf("a share at a path the host has: want /mnt a read-only bind, got %+v", s)
	}
	// A directory with mounts below it is split into the skeleton, which
	// takes the mount point and is made read-only at the end, whole.
	pl, err = Build(Config{ReadOnly: true, DevptsGID: -1, Binds: []Bind{{Source: "/srv/open", Target: "/mnt/new"}}}, hostileTree(), hostileMounts)
	if err != nil {
		t.Fatal(err)
	}
	if find(pl, OpMkdir, "/mnt") == nil || index(pl, OpReadOnlyMount, "/mnt") >= 0 || !pl.ReadOnlyRoot {
		t.Errorf("a share in a split directory: want /mnt in the read-only skeleton, got %v", pl.Steps)
	}
}

// A share at a path the host lacks below host directories (root's, which
// the sandbox does not map): the overlay copies up the directories on the
// way, parents first, so that the mount point can be made through it;
// not a symlink's way, nor past the first directory the host lacks.
func TestCopyUpTowardsMountPoints(t *testing.T) {
	h := fakeHost{fstest.MapFS{
		"usr/share/doc/f":     file("x"),
		"usr/local/bin/tool0": file("x"),
		"usr/lib/x":           file("x"),
		"usr/lib64":           link("lib"),
	}}
	mounts := []Mount{{"/", "ext4"}}
	for _, ro := range []bool{false, true} {
		pl, err := Build(Config{ReadOnly: ro, DevptsGID: -1, Tmpfs: []string{"/usr/share/new/x", "/usr/lib64/new"},
			Binds: []Bind{{Source: "/usr/share/doc/f", Target: "/usr/local/bin/tool"}, {Source: "/usr/share/doc/f", Target: "/usr/share/doc/f"}}}, h, mounts)
		if err != nil {
			t.Fatal(err)
		}
		s := find(pl, OpOverlay, "/usr")
		if s == nil || s.ReadOnly {
			t.Fatalf("read-only %v: want a writable overlay on /usr, got %+v", ro, s)
		}
		if want := []string{"local", "local/bin", "share"}; !slices.Equal(s.CopyUp, want) {
			t.Errorf("read-only %v: copy-up %q, want %q", ro, s.CopyUp, want)
		}
	}
	pl, err := Build(Config{DevptsGID: -1, Binds: []Bind{{Source: "/usr/share/doc/f", Target: "/usr/share/doc/f"}}}, h, mounts)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(pl, OpOverlay, "/usr"); s == nil || len(s.CopyUp) != 0 {
		t.Errorf("a share at a path the host has: want nothing copied up, got %+v", s)
	}
}
