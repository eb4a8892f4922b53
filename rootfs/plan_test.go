package rootfs

import (
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	fuseoverlay "sandbox/fuse-overlay"

	"golang.org/x/sys/unix"
)

// fakeHost serves a MapFS as an absolute-path host tree.
type fakeHost struct{ fs fstest.MapFS }

func rel(p string) string {
	r := strings.TrimPrefix(p, "/")
	if r == "" {
		return "."
	}
	return r
}

func (h fakeHost) ReadDir(d string) ([]fs.DirEntry, error) { return h.fs.ReadDir(rel(d)) }
func (h fakeHost) Empty(d string) (bool, error) {
	ents, err := h.ReadDir(d)
	return len(ents) == 0, err
}
func (h fakeHost) Stat(n string) (fs.FileInfo, error) {
	if _, err := h.Readlink(n); err == nil {
		// Follow one level, enough for the fixtures.
		t, _ := h.Readlink(n)
		if !strings.HasPrefix(t, "/") {
			t = n[:strings.LastIndex(n, "/")+1] + t
		}
		return h.fs.Stat(rel(t))
	}
	return h.fs.Stat(rel(n))
}
func (h fakeHost) Readlink(n string) (string, error) {
	f, ok := h.fs[rel(n)]
	if !ok || f.Mode&fs.ModeSymlink == 0 {
		return "", fs.ErrInvalid
	}
	return string(f.Data), nil
}

func dir(mode fs.FileMode) *fstest.MapFile { return &fstest.MapFile{Mode: fs.ModeDir | mode} }
func link(t string) *fstest.MapFile        { return &fstest.MapFile{Mode: fs.ModeSymlink, Data: []byte(t)} }
func file(content string) *fstest.MapFile  { return &fstest.MapFile{Data: []byte(content), Mode: 0o644} }
func hostTree() fakeHost {
	return fakeHost{fstest.MapFS{
		"usr":              dir(0o755),
		"usr/bin/true":     file("x"),
		"usr/local/bin":    dir(0o755),
		"bin":              link("usr/bin"),
		"etc/hostname":     file("host\n"),
		"home/alice/.ssh":  dir(0o700),
		"root":             dir(0o700),
		"proc":             dir(0o555),
		"tmp":              dir(0o1777),
		"mnt/data/x":       file("x"),
		"mnt/other":        dir(0o755),
		"mnt/readme":       file("r"),
		"srv":              dir(0o755),
		"layer/etc/extra":  file("e"),
		"layer/opt/tool":   file("t"),
		"rootfs/bin/sh":    file("sh"),
		"work/project/src": dir(0o755),
	}}
}

func find(pl *Plan, op Op, target string) *Step {
	for i := range pl.Steps {
		if pl.Steps[i].Op == op && pl.Steps[i].Target == target {
			return &pl.Steps[i]
		}
	}
	return nil
}

func index(pl *Plan, op Op, target string) int {
	for i, s := range pl.Steps {
		if s.Op == op && s.Target == target {
			return i
		}
	}
	return -1
}

var hostMounts = []Mount{
	{"/", "ext4"}, {"/proc", "proc"}, {"/mnt/data", "ext4"}, {"/usr/local", "xfs"}, {"/sys", "sysfs"},
}

func TestHostModeLayersEachDirectory(t *testing.T) {
	pl, err := Build(Config{Hidden: []string{"/home", "/root"}, Home: "/home/alice", DevptsGID: -1},
		hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Root.Op != OpTmpfs {
		t.Fatalf("root: %v, want a tmpfs skeleton", pl.Root)
	}
	if s := find(pl, OpOverlay, "/etc"); s == nil || s.Lower[0] != "/etc" || s.Upper != "" {
		t.Errorf("/etc: want an ephemeral overlay of /etc, got %+v", s)
	}
	if s := find(pl, OpSymlink, "/bin"); s == nil || s.Data != "usr/bin" {
		t.Errorf("/bin: want the usr-merge symlink, got %+v", s)
	}
	// /usr has a submount (/usr/local): split, never layered whole.
	if find(pl, OpOverlay, "/usr") != nil {
		t.Error("/usr layered whole although /usr/local is a mount below it")
	}
	if find(pl, OpMkdir, "/usr") == nil || find(pl, OpOverlay, "/usr/bin") == nil || find(pl, OpOverlay, "/usr/local") == nil {
		t.Errorf("/usr not split into its entries: %v", pl.Steps)
	}
	// /mnt: split; its plain file is bound read-only.
	if s := find(pl, OpBind, "/mnt/readme"); s == nil || !s.ReadOnly {
		t.Errorf("/mnt/readme: want a read-only file bind, got %+v", s)
	}
	// Fresh and hidden directories are never layered from the host.
	for _, d := range []string{"/proc", "/tmp", "/home", "/root"} {
		if find(pl, OpOverlay, d) != nil {
			t.Errorf("%s layered from the host", d)
		}
	}
	if find(pl, OpTmpfs, "/home") == nil || find(pl, OpTmpfs, "/root") == nil {
		t.Error("homes not covered by tmpfs")
	}
	if find(pl, OpMkdir, "/home/alice") == nil {
		t.Error("the caller's home is not recreated")
	}
	if i, j := index(pl, OpTmpfs, "/home"), index(pl, OpMkdir, "/home/alice"); i < 0 || j < i {
		t.Error("home recreated before /home is covered")
	}
	if find(pl, OpProc, "/proc") == nil || find(pl, OpSysfs, "/sys") == nil || find(pl, OpDevpts, "/dev/pts") == nil {
		t.Error("system mounts missing")
	}
	if pl.Chdir != "/" {
		t.Errorf("chdir = %q, want / without a shared cwd", pl.Chdir)
	}
}

func TestReadOnlyBindsInsteadOfOverlay(t *testing.T) {
	pl, err := Build(Config{ReadOnly: true, DevptsGID: -1}, hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(pl, OpBind, "/usr"); s == nil || !s.ReadOnly {
		t.Errorf("/usr: want a recursive read-only bind (keeps /usr/local), got %+v", s)
	}
	if !pl.ReadOnlyRoot {
		t.Error("root skeleton not read-only")
	}
}

func TestLayersStackOnHostDirectories(t *testing.T) {
	pl, err := Build(Config{Layers: []string{"/layer"}, DevptsGID: -1}, hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	s := find(pl, OpOverlay, "/etc")
	if s == nil || len(s.Lower) != 2 || s.Lower[0] != "/layer/etc" || s.Lower[1] != "/etc" {
		t.Errorf("/etc: want lower /layer/etc:/etc, got %+v", s)
	}
	if s := find(pl, OpOverlay, "/opt"); s == nil || len(s.Lower) != 1 || s.Lower[0] != "/layer/opt" {
		t.Errorf("/opt (only in the layer): got %+v", s)
	}
}

func TestRootfsMode(t *testing.T) {
	pl, err := Build(Config{Rootfs: "/rootfs", Layers: []string{"/l1", "/l2"}, Upper: "/keep", ReadOnly: false,
		Hidden: []string{"/home"}, DevptsGID: 5}, hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	r := pl.Root
	if r.Op != OpOverlay || strings.Join(r.Lower, ":") != "/l2:/l1:/rootfs" {
		t.Errorf("root lower = %v, want /l2:/l1:/rootfs (top first)", r.Lower)
	}
	if r.Upper != "/keep/upper" || r.Work != "/keep/work" {
		t.Errorf("persistent upper = %q %q", r.Upper, r.Work)
	}
	if find(pl, OpTmpfs, "/home") != nil {
		t.Error("an image's /home is covered; only the host's homes are hidden")
	}
	if s := find(pl, OpDevpts, "/dev/pts"); s == nil || !strings.Contains(s.Data, "gid=5") {
		t.Errorf("devpts without the tty group: %+v", s)
	}
	if find(pl, OpTmpfs, "/run") != nil {
		t.Error("rootfs mode keeps the image's /run")
	}
}

func TestPersistentUpperMirrorsPaths(t *testing.T) {
	pl, err := Build(Config{Upper: "/keep", DevptsGID: -1}, hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	s := find(pl, OpOverlay, "/usr/local")
	if s == nil || s.Upper != "/keep/upper/usr/local" || s.Work != "/keep/work/usr/local" {
		t.Errorf("/usr/local upper: %+v", s)
	}
	// Top-level changes persist too: the skeleton is an overlay on upper/.
	if r := pl.Root; r.Op != OpOverlay || r.Upper != "/keep/upper" || r.Work != "/keep/rootwork" || len(r.Lower) != 0 {
		t.Errorf("root with --upper: %+v", r)
	}
}

func TestUserMountsComeAfterTheRootAndInOrder(t *testing.T) {
	pl, err := Build(Config{Cwd: "/work/project", CwdMode: CwdRO, Hidden: []string{"/home"},
		Binds: []Bind{{Source: "/srv", Target: "/data", ReadOnly: true}}, Tmpfs: []string{"/data/scratch"},
		Hosts: "127.0.1.1 x\n", DevptsGID: -1}, hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	cwd := index(pl, OpBind, "/work/project")
	if cwd < 0 || !pl.Steps[cwd].ReadOnly {
		t.Fatal("cwd not shared read-only")
	}
	if cwd < index(pl, OpTmpfs, "/home") || cwd < index(pl, OpTmpfs, "/tmp") {
		t.Error("cwd bound before the directories that could cover it")
	}
	if b, tm := index(pl, OpBind, "/data"), index(pl, OpTmpfs, "/data/scratch"); tm < b {
		t.Error("user mounts out of order")
	}
	if pl.Chdir != "/work/project" {
		t.Errorf("chdir = %q", pl.Chdir)
	}
	if find(pl, OpFile, "/etc/hosts") == nil {
		t.Error("no /etc/hosts")
	}
	last := pl.Steps[len(pl.Steps)-1]
	if last.Op != OpReadOnly {
		t.Errorf("masks and read-only paths must come last, last step is %v", last)
	}
}

// TestSharesOuterFirst: what is shared or mounted by the user comes outer
// targets first, whatever the flags' order, so that nothing covers what is
// asked below it. Before, every --tmpfs came last: --tmpfs /opt hid a
// --bind at /opt/x, and --tmpfs /tmp the working directory /tmp/proj.
func TestSharesOuterFirst(t *testing.T) {
	pl, err := Build(Config{Cwd: "/tmp/proj", CwdMode: CwdRW, Binds: []Bind{{Source: "/srv", Target: "/opt/x"}},
		Tmpfs: []string{"/opt", "/tmp"}, DevptsGID: -1}, hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	if index(pl, OpTmpfs, "/opt") > index(pl, OpBind, "/opt/x") {
		t.Error("--tmpfs /opt comes after the bind at /opt/x and hides it")
	}
	// The --tmpfs /tmp, not the system's /tmp, which comes first anyway.
	tmp := -1
	for i, st := range pl.Steps {
		if st.Op == OpTmpfs && st.Target == "/tmp" {
			tmp = i
		}
	}
	if tmp > index(pl, OpBind, "/tmp/proj") {
		t.Error("--tmpfs /tmp comes after the working directory /tmp/proj and hides it")
	}
}

func TestHostPathsCoverEverySource(t *testing.T) {
	pl, err := Build(Config{Upper: "/keep", Binds: []Bind{{Source: "/srv", Target: "/x"}}, DevptsGID: -1},
		hostTree(), hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range pl.HostPaths() {
		got[p] = true
	}
	for _, want := range []string{"/srv", "/etc", "/keep/upper/etc", "/keep/work/etc", "/dev/null", "/sys"} {
		if !got[want] {
			t.Errorf("HostPaths lacks %s", want)
		}
	}
}

func TestRefused(t *testing.T) {
	me := func(err error) error { return &fuseoverlay.MountError{Target: "/x", Err: err} }
	for _, c := range []struct {
		err  error
		want bool
	}{
		{me(unix.EINVAL), true}, {me(unix.EPERM), true}, {me(unix.ENODEV), true}, {me(unix.EOPNOTSUPP), true},
		{me(unix.ENOENT), false}, {me(unix.ENOMEM), false}, {unix.EINVAL, false},
	} {
		if got := Refused(c.err); got != c.want {
			t.Errorf("Refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestPlanCarriesOverlay(t *testing.T) {
	pl, err := Build(Config{Rootfs: "/r", Upper: "/u", DevptsGID: -1,
		Overlay: Overlay{Driver: fuseoverlay.Fuse, FuseBin: "/usr/bin/fuse-overlayfs"}}, hostTree(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Overlay.Driver != fuseoverlay.Fuse || pl.Overlay.FuseBin == "" || pl.Overlay.Marker != "/u" {
		t.Errorf("plan overlay settings: %+v", pl.Overlay)
	}
}

// TestClosedDirectoryIsBound: a host directory no process of the sandbox
// can open (owned by an id it does not map, nothing for group or others,
// such as an ext4 root's /lost+found) is the host's, bound read-only, not
// an overlay; one whose owner the sandbox maps, or that opens to its group
// or others, is layered as before, and so is one with a mount point to
// make in it, one a layer adds to, or any with --upper.
func TestClosedDirectoryIsBound(t *testing.T) {
	owned := func(mode fs.FileMode, uid uint32) *fstest.MapFile {
		return &fstest.MapFile{Mode: fs.ModeDir | mode, Sys: &syscall.Stat_t{Uid: uid}}
	}
	tree := hostTree()
	tree.fs["lost+found"] = owned(0o700, 0)
	tree.fs["subuid"] = owned(0o700, 200005) // a subordinate id: root inside may open it
	tree.fs["grouped"] = owned(0o750, 0)
	tree.fs["withbind"] = owned(0o700, 0)
	tree.fs["layered"] = owned(0o700, 0)
	tree.fs["layer/layered/x"] = file("x")
	unreadable := map[string]bool{}
	for _, d := range []string{"/lost+found", "/subuid", "/grouped", "/withbind", "/layered"} {
		unreadable[d] = true
	}
	host := &hostileHost{fakeHost: tree, unreadable: unreadable}
	mapped := func(uid uint32) bool { return uid == 1001 || uid >= 200000 && uid < 265536 }
	cfg := Config{HostUID: mapped, Layers: []string{"/layer"}, DevptsGID: -1,
		Binds: []Bind{{Source: "/srv", Target: "/withbind/in"}}}
	pl, err := Build(cfg, host, hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(pl, OpBind, "/lost+found"); s == nil || s.Source != "/lost+found" || !s.ReadOnly || find(pl, OpOverlay, "/lost+found") != nil {
		t.Errorf("/lost+found: %+v, want the host's, bound read-only, and no overlay", s)
	}
	for _, d := range []string{"/subuid", "/grouped", "/withbind", "/layered"} {
		if find(pl, OpOverlay, d) == nil || find(pl, OpBind, d) != nil {
			t.Errorf("%s is not layered", d)
		}
	}
	cfg.Upper = "/keep"
	if pl, err = Build(cfg, host, hostMounts); err != nil {
		t.Fatal(err)
	}
	if find(pl, OpOverlay, "/lost+found") == nil {
		t.Error("--upper: /lost+found is not layered")
	}
	// Without the maps (nil), nothing is known closed.
	cfg.Upper, cfg.HostUID = "", nil
	if pl, err = Build(cfg, host, hostMounts); err != nil {
		t.Fatal(err)
	}
	if find(pl, OpOverlay, "/lost+found") == nil {
		t.Error("without HostUID: /lost+found is not layered")
	}
}

// TestEmptyDirectoryIsPlain: a directory empty in the host and in every
// layer is a directory of the skeleton (with --upper: of the root's
// overlay, at the path its own overlay's upper had), with its mode, and
// not an overlay; one with an entry in the host or in a layer, or that
// cannot be read, is layered as before; --read-only binds it read-only.
func TestEmptyDirectoryIsPlain(t *testing.T) {
	tree := hostTree()
	tree.fs["media"] = dir(0o750)
	tree.fs["boot/vmlinuz"] = file("k")
	tree.fs["cdrom"] = dir(0o755) // empty in the host, not in the layer below
	tree.fs["layer/cdrom/disc"] = file("d")
	tree.fs["lost+found"] = dir(0o700)
	host := &hostileHost{fakeHost: tree, unreadable: map[string]bool{"/lost+found": true}}
	for _, upper := range []string{"", "/keep"} {
		pl, err := Build(Config{Upper: upper, Layers: []string{"/layer"}, DevptsGID: -1}, host, hostMounts)
		if err != nil {
			t.Fatal(err)
		}
		for target, mode := range map[string]uint32{"/srv": 0o755, "/media": 0o750, "/mnt/other": 0o755} {
			if s := find(pl, OpMkdir, target); s == nil || s.Mode != mode {
				t.Errorf("--upper %q: %s: %+v, want a directory of mode %o", upper, target, s, mode)
			}
			if s := find(pl, OpOverlay, target); s != nil {
				t.Errorf("--upper %q: the empty %s is layered: %+v", upper, target, s)
			}
		}
		for _, target := range []string{"/boot", "/cdrom", "/lost+found", "/etc"} {
			if find(pl, OpOverlay, target) == nil || find(pl, OpMkdir, target) != nil {
				t.Errorf("--upper %q: %s is not layered", upper, target)
			}
		}
	}
	pl, err := Build(Config{ReadOnly: true, DevptsGID: -1}, host, hostMounts)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(pl, OpBind, "/srv"); s == nil || !s.ReadOnly || find(pl, OpMkdir, "/srv") != nil {
		t.Errorf("--read-only: /srv: %+v, want a read-only bind", s)
	}
}
