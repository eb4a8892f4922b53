//go:build linux

package e2e

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestRootWritesAreEphemeral(t *testing.T) {
	t.Parallel()
	path := "/usr/e2e-" + randHex(10)
	t.Cleanup(func() { os.Remove(path) }) // only exists on the host if the sandbox leaked the write
	r := mustRun(t, opts{}, sh(nil, "echo data > "+path+" && cat "+path)...)
	if strings.TrimSpace(r.stdout) != "data" {
		t.Errorf("reading back %s inside: %s", path, r)
	}
	if exists(path) {
		t.Errorf("%s written inside exists on the host", path)
	}
	r = run(t, "run", "--", "test", "-e", path)
	wantCode(t, r, 1)
}

func TestRootHostFilesVisible(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("/etc/hostname")
	requireOrSkip(t, err == nil, "a readable /etc/hostname on the host: "+errString(err))
	r := mustRun(t, opts{}, "run", "--", "cat", "/etc/hostname")
	if r.stdout != string(want) {
		t.Errorf("/etc/hostname inside = %q, host has %q", r.stdout, want)
	}
}

func TestRootReadOnly(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/usr/e2e-ro-" + randHex(8), "/e2e-ro-" + randHex(8)} {
		t.Cleanup(func() { os.Remove(path) })
		r := run(t, "run", "--read-only", "--", "touch", path)
		wantFail(t, r)
		if !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("--read-only: touch %s should fail with EROFS: %s", path, r)
		}
		if exists(path) {
			t.Errorf("%s exists on the host", path)
		}
	}
	name := "e2e-ro-w-" + randHex(8)
	hostPaths := []string{"/tmp/" + name}
	if home := os.Getenv("HOME"); home != "" {
		hostPaths = append(hostPaths, filepath.Join(home, name))
	}
	for _, p := range hostPaths {
		t.Cleanup(func() { os.Remove(p) })
	}
	r := mustRun(t, opts{}, sh([]string{"--read-only"}, "echo x > /tmp/"+name+" && cat /tmp/"+name+" && touch \"$HOME/"+name+"\" && echo home-ok")...)
	if got := lines(r.stdout); !slices.Equal(got, []string{"x", "home-ok"}) {
		t.Errorf("--read-only: /tmp and $HOME should stay writable: %s", r)
	}
	for _, p := range hostPaths {
		if exists(p) {
			t.Errorf("%s written inside appeared on the host", p)
		}
	}
	dir := tempDir(t)
	mustRun(t, opts{dir: dir}, "run", "--read-only", "--", "touch", "cwd-file")
	if !exists(filepath.Join(dir, "cwd-file")) {
		t.Errorf("--read-only: the shared cwd should stay writable")
	}
}

// TestRootReadOnlyMountPoints: under --read-only, a --bind or --tmpfs at a
// path the host lacks, below a host directory (/usr), gets its mount point
// as without --read-only and stays writable as asked, while the directory
// holding it stays read-only and nothing appears on the host. Before, the
// run failed: "mkdir /usr/…: read-only file system".
func TestRootReadOnlyMountPoints(t *testing.T) {
	t.Parallel()
	src := tempDir(t)
	bindAt, tmpfsAt := "/usr/e2e-ro-bind-"+randHex(8), "/usr/e2e-ro-tmpfs-"+randHex(8)+"/deeper"
	stray := "/usr/e2e-ro-stray-" + randHex(8)
	for _, p := range []string{bindAt, path.Dir(tmpfsAt), stray} {
		t.Cleanup(func() { os.RemoveAll(p) })
	}
	r := run(t, sh([]string{"--read-only", "--bind", src + ":" + bindAt, "--tmpfs", tmpfsAt},
		"echo b > "+bindAt+"/f && echo t > "+tmpfsAt+"/f && cat "+bindAt+"/f "+tmpfsAt+"/f && { touch "+stray+" && echo stray-written; true; }")...)
	wantCode(t, r, 0)
	if got := lines(r.stdout); !slices.Equal(got, []string{"b", "t"}) {
		t.Errorf("--read-only with shares at new paths: want both writable and /usr not: %s", r)
	}
	if !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("--read-only: touch %s should fail with EROFS: %s", stray, r)
	}
	if b, err := os.ReadFile(filepath.Join(src, "f")); err != nil || string(b) != "b\n" {
		t.Errorf("the bind's write did not reach its source: %q %v", b, err)
	}
	for _, p := range []string{bindAt, path.Dir(tmpfsAt), stray} {
		if exists(p) {
			t.Errorf("%s appeared on the host", p)
		}
	}
}

// TestRootMountPointsBelowUnmapped: a --bind (a file, too) or --tmpfs at
// a path the host lacks below a directory of the host's root, which the
// sandbox does not map (/usr/share, /usr/local/bin), gets its mount
// point, with or without --read-only; the directories on the way still
// show the host's entries, and nothing appears on the host. Before:
// "mkdir /usr/share/…: permission denied", exit 125.
func TestRootMountPointsBelowUnmapped(t *testing.T) {
	t.Parallel()
	ents, err := os.ReadDir("/usr/share")
	requireOrSkip(t, err == nil && len(ents) > 0, "a listable /usr/share on the host")
	var st syscall.Stat_t
	requireOrSkip(t, syscall.Stat("/usr/share", &st) == nil && st.Uid == 0 && os.Getuid() != 0, "/usr/share of root, run as another user")
	tool := filepath.Join(tempDir(t), "tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\necho tool-ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, flags := range [][]string{nil, {"--read-only"}} {
		dir := "/usr/share/e2e-unmapped-" + randHex(8)
		toolAt := "/usr/local/bin/e2e-tool-" + randHex(8)
		t.Cleanup(func() { os.RemoveAll(dir); os.Remove(toolAt) })
		r := run(t, sh(append(slices.Clone(flags), "--tmpfs", dir+"/x", "--bind", tool+":"+toolAt),
			"echo t > "+dir+"/x/f && cat "+dir+"/x/f && "+toolAt+" && ls /usr/share")...)
		wantCode(t, r, 0)
		got := lines(r.stdout)
		if len(got) < 2 || got[0] != "t" || got[1] != "tool-ran" || !slices.Contains(got, ents[0].Name()) {
			t.Errorf("%v: want the tmpfs writable, the tool run, /usr/share still the host's (%s): %s", flags, ents[0].Name(), r)
		}
		for _, p := range []string{dir, toolAt} {
			if exists(p) {
				t.Errorf("%v: %s appeared on the host", flags, p)
			}
		}
	}
}

// requireHome is $HOME, which must be an existing directory other than /.
func requireHome(t *testing.T) string {
	t.Helper()
	home := os.Getenv("HOME")
	st, err := os.Stat(home)
	requireOrSkip(t, home != "" && home != "/" && err == nil && st.IsDir(), "HOME set to an existing directory")
	return home
}

// guardRootfs is a shell prefix that stops the script (exit 99) unless / is
// the test's rootfs, so that a sandbox failing to switch roots cannot make a
// test write to the host's /.
func guardRootfs(marker string) string {
	return `[ "$(cat /marker)" = '` + marker + `' ] || { echo "not in the rootfs" >&2; exit 99; }; `
}

func TestRootfsDir(t *testing.T) {
	t.Parallel()
	marker := "rootfs-marker-" + randHex(8)
	dir := makeRootfs(t, marker)
	before := snapshotTree(t, dir)

	r := mustRun(t, opts{}, "run", "--rootfs", dir, "--", "/bin/busybox", "cat", "/marker")
	if r.stdout != marker {
		t.Errorf("/marker inside = %q, want %q", r.stdout, marker)
	}
	for _, hostPath := range []string{"/usr/bin/apt", "/usr/bin/env", "/etc/os-release"} {
		if !exists(hostPath) {
			continue
		}
		r := run(t, "run", "--rootfs", dir, "--", "/bin/busybox", "test", "-e", hostPath)
		if r.code != 1 || r.timedOut {
			t.Errorf("host file %s should not exist inside --rootfs: %s", hostPath, r)
		}
	}

	// Writes go to an ephemeral upper layer. (Guarded: nothing is written
	// unless the unique marker proves the payload runs in the rootfs.)
	r = mustRun(t, opts{}, "run", "--rootfs", dir, "--", "/bin/busybox", "sh", "-c",
		guardRootfs(marker)+"echo changed > /marker && echo new > /newfile && rm /removable && cat /marker")
	if strings.TrimSpace(r.stdout) != "changed" {
		t.Errorf("writing /marker inside: %s", r)
	}
	r = mustRun(t, opts{}, "run", "--rootfs", dir, "--", "/bin/busybox", "sh", "-c",
		"cat /marker; echo; test -e /newfile && echo newfile-kept; test -e /removable && echo removable-present")
	if got := lines(r.stdout); !slices.Equal(got, []string{marker, "removable-present"}) {
		t.Errorf("changes of a previous run should be gone, got %q", got)
	}
	if d := diffSnapshots(before, snapshotTree(t, dir)); len(d) > 0 {
		t.Errorf("the rootfs dir changed on the host:\n%s", strings.Join(d, "\n"))
	}

	// A relative DIR is accepted.
	r = mustRun(t, opts{dir: filepath.Dir(dir)}, "run", "--rootfs", filepath.Base(dir), "--", "/bin/busybox", "cat", "/marker")
	if r.stdout != marker {
		t.Errorf("relative --rootfs: /marker inside = %q, want %q", r.stdout, marker)
	}
}

func TestRootfsLayers(t *testing.T) {
	t.Parallel()
	marker := "base-" + randHex(8)
	dir := makeRootfs(t, marker)
	writeFile(t, filepath.Join(dir, "shadow"), "base", 0o644)
	l1 := filepath.Join(tempDir(t), "l1")
	writeFile(t, filepath.Join(l1, "marker2"), "layer-one", 0o644)
	writeFile(t, filepath.Join(l1, "shadow"), "one", 0o644)
	l2 := filepath.Join(tempDir(t), "l2")
	writeFile(t, filepath.Join(l2, "shadow"), "two", 0o644)
	snaps := map[string]map[string]string{}
	for _, d := range []string{dir, l1, l2} {
		snaps[d] = snapshotTree(t, d)
	}

	r := mustRun(t, opts{}, "run", "--rootfs", dir, "--layer", l1, "--layer", l2, "--",
		"/bin/busybox", "sh", "-c", "cat /marker; echo; cat /marker2; echo; cat /shadow; echo; "+
			guardRootfs(marker)+"echo w > /marker2 && rm /shadow && echo wrote")
	if got, want := lines(r.stdout), []string{marker, "layer-one", "two", "wrote"}; !slices.Equal(got, want) {
		t.Errorf("rootfs + layers: want %q (later layer on top), got %q\n%s", want, got, r)
	}
	for d, snap := range snaps {
		if diff := diffSnapshots(snap, snapshotTree(t, d)); len(diff) > 0 {
			t.Errorf("%s changed on the host:\n%s", d, strings.Join(diff, "\n"))
		}
	}

	t.Run("over host root", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{}, sh([]string{"--layer", l1}, "cat /marker2; echo; test -x /bin/sh && echo host-sh")...)
		if got := lines(r.stdout); !slices.Equal(got, []string{"layer-one", "host-sh"}) {
			t.Errorf("--layer over the host's directories: got %q\n%s", got, r)
		}
	})
}

func TestRootfsUpperPersists(t *testing.T) {
	t.Parallel()
	upper := tempDir(t)
	name := "e2e-upper-" + randHex(8)
	t.Cleanup(func() { os.Remove("/" + name) })
	mustRun(t, opts{}, sh([]string{"--upper", upper}, "echo keep > /"+name)...)
	r := mustRun(t, opts{}, "run", "--upper", upper, "--", "cat", "/"+name)
	if strings.TrimSpace(r.stdout) != "keep" {
		t.Errorf("--upper: a file written in one run should be visible in the next: %s", r)
	}
	b, err := os.ReadFile(filepath.Join(upper, "upper", name))
	if err != nil || strings.TrimSpace(string(b)) != "keep" {
		t.Errorf("--upper: %s/upper/%s should hold the file: %q, %v", upper, name, b, err)
	}
	if exists("/" + name) {
		t.Errorf("/%s exists on the host", name)
	}
	// Without --upper the change is not there.
	r = run(t, "run", "--", "test", "-e", "/"+name)
	wantCode(t, r, 1)
}

func TestRootHomeHidden(t *testing.T) {
	t.Parallel()
	home := requireHome(t)
	secret := filepath.Join(home, ".e2e-secret-"+randHex(8))
	err := os.WriteFile(secret, []byte("secret"), 0o600)
	requireOrSkip(t, err == nil, "a writable HOME: "+errString(err))
	t.Cleanup(func() { os.Remove(secret) })
	written := filepath.Join(home, ".e2e-written-"+randHex(8))
	t.Cleanup(func() { os.Remove(written) })

	script := `printf '%s\n' "$HOME"; echo ---; ls -A "$HOME"; echo ---; ` +
		`ls -A /home; echo ---; ls -A /root; echo ---; ` +
		`test -e '` + secret + `' && echo SECRET-VISIBLE; touch '` + written + `' && echo writable`
	r := mustRun(t, opts{}, sh([]string{"--cwd=none"}, script)...)
	parts := sections(r.stdout)
	if len(parts) != 5 {
		t.Fatalf("unexpected output: %s", r)
	}
	if got := strings.TrimSpace(parts[0]); got != home {
		t.Errorf("HOME inside = %q, want %q", got, home)
	}
	if got := lines(parts[1]); len(got) != 0 {
		t.Errorf("home inside should be empty, lists %q", got)
	}
	if got := lines(parts[4]); !slices.Equal(got, []string{"writable"}) {
		t.Errorf("want the host's %s hidden and the home writable inside, got %q", secret, got)
	}
	if exists(written) {
		t.Errorf("a file written in the home inside appeared in the host's home")
	}
	for i, dir := range map[int]string{2: "/home", 3: "/root"} {
		var allowed []string // only the path down to $HOME may show
		if rest, ok := strings.CutPrefix(home, dir+"/"); ok {
			allowed = []string{strings.Split(rest, "/")[0]}
		}
		for _, e := range lines(parts[i]) {
			if !slices.Contains(allowed, e) {
				t.Errorf("%s inside should be empty (apart from the way to $HOME), lists %q", dir, lines(parts[i]))
				break
			}
		}
	}
}

func TestRootCwdShared(t *testing.T) {
	t.Parallel()
	t.Run("rw", func(t *testing.T) {
		t.Parallel()
		dir := slashTmpDir(t)
		writeFile(t, filepath.Join(dir, "in"), "from-host", 0o644)
		r := mustRun(t, opts{dir: dir}, sh(nil, "pwd; cat in; echo; echo inside > out")...)
		if got := lines(r.stdout); !slices.Equal(got, []string{dir, "from-host"}) {
			t.Errorf("cwd inside: want pwd %s and the host file, got %q", dir, got)
		}
		b, err := os.ReadFile(filepath.Join(dir, "out"))
		if err != nil || strings.TrimSpace(string(b)) != "inside" {
			t.Errorf("file written at the cwd inside: host sees %q, %v", b, err)
		}
		if st, err := os.Stat(filepath.Join(dir, "out")); err == nil {
			if sys := st.Sys().(*syscall.Stat_t); int(sys.Uid) != os.Getuid() {
				t.Errorf("file written at the cwd is owned by %d, want the caller %d", sys.Uid, os.Getuid())
			}
		}
	})
	t.Run("ro", func(t *testing.T) {
		t.Parallel()
		dir := slashTmpDir(t)
		writeFile(t, filepath.Join(dir, "in"), "from-host", 0o644)
		r := runIn(t, dir, sh([]string{"--cwd=ro"}, "cat in; echo; echo x > out")...)
		wantFail(t, r)
		if !strings.Contains(r.stdout, "from-host") {
			t.Errorf("--cwd=ro: the cwd should be readable: %s", r)
		}
		if !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("--cwd=ro: writing should fail with EROFS: %s", r)
		}
		if exists(filepath.Join(dir, "out")) {
			t.Errorf("--cwd=ro: a file was written to the host cwd")
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		dir := slashTmpDir(t)
		writeFile(t, filepath.Join(dir, "in"), "from-host", 0o644)
		r := mustRun(t, opts{dir: dir}, sh([]string{"--cwd=none"}, "pwd; test -e '"+filepath.Join(dir, "in")+"' && echo VISIBLE; true")...)
		if got := lines(r.stdout); !slices.Equal(got, []string{"/"}) {
			t.Errorf("--cwd=none: want pwd / and the cwd invisible, got %q", got)
		}
	})
	t.Run("chdir", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{}, "run", "--chdir", "/etc", "--", "pwd")
		if strings.TrimSpace(r.stdout) != "/etc" {
			t.Errorf("--chdir /etc: pwd = %q", r.stdout)
		}
	})
}

func TestRootBindMounts(t *testing.T) {
	t.Parallel()
	src := tempDir(t)
	writeFile(t, filepath.Join(src, "f"), "bound", 0o644)
	dst := "/e2e-bind-" + randHex(8)
	t.Cleanup(func() { os.Remove(dst) })

	t.Run("rw", func(t *testing.T) {
		r := mustRun(t, opts{}, sh([]string{"--bind", src + ":" + dst}, "cat "+dst+"/f; echo; echo w > "+dst+"/g")...)
		if strings.TrimSpace(r.stdout) != "bound" {
			t.Errorf("--bind SRC:DST: %s", r)
		}
		if b, err := os.ReadFile(filepath.Join(src, "g")); err != nil || strings.TrimSpace(string(b)) != "w" {
			t.Errorf("write through a rw bind: host sees %q, %v", b, err)
		}
	})
	t.Run("ro", func(t *testing.T) {
		r := runOpts(t, opts{}, sh([]string{"--bind", src + ":" + dst + ":ro"}, "cat "+dst+"/f; echo; echo w > "+dst+"/h")...)
		wantFail(t, r)
		if !strings.Contains(r.stdout, "bound") || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("--bind SRC:DST:ro: want readable and EROFS on write: %s", r)
		}
		if exists(filepath.Join(src, "h")) {
			t.Errorf("write through a ro bind reached the host")
		}
	})
	t.Run("same path", func(t *testing.T) {
		r := mustRun(t, opts{}, "run", "--bind", src, "--", "cat", filepath.Join(src, "f"))
		if r.stdout != "bound" {
			t.Errorf("--bind SRC (DST defaults to SRC): %s", r)
		}
	})
	if exists(dst) {
		t.Errorf("bind destination %s was created on the host", dst)
	}
}

func TestRootTmpfsOption(t *testing.T) {
	t.Parallel()
	dst := "/e2e-tmpfs-" + randHex(8)
	t.Cleanup(func() { os.Remove(dst) })
	r := mustRun(t, opts{}, sh([]string{"--tmpfs", dst}, "ls -A "+dst+"; echo ---; echo x > "+dst+"/f && cat "+dst+"/f; echo ---; cat /proc/self/mountinfo")...)
	parts := sections(r.stdout)
	if len(parts) != 3 {
		t.Fatalf("unexpected output: %s", r)
	}
	if got := lines(parts[0]); len(got) != 0 {
		t.Errorf("--tmpfs %s should start empty, lists %q", dst, got)
	}
	if strings.TrimSpace(parts[1]) != "x" {
		t.Errorf("--tmpfs %s should be writable: %s", dst, r)
	}
	ms, err := parseMountinfo(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := lastMountAt(ms, dst); !ok || m.fstype != "tmpfs" {
		t.Errorf("no tmpfs mounted at %s: %+v", dst, m)
	}
	if exists(dst) {
		t.Errorf("%s was created on the host", dst)
	}

	// Over an existing, non-empty directory.
	if ents, err := os.ReadDir("/usr/share"); err == nil && len(ents) > 0 {
		r := mustRun(t, opts{}, "run", "--tmpfs", "/usr/share", "--", "ls", "-A", "/usr/share")
		if got := lines(r.stdout); len(got) != 0 {
			t.Errorf("--tmpfs /usr/share should hide the host's content, lists %q", got)
		}
	}
}

// TestRootBindDestinationSafety: DST is resolved inside the new root; symlinks
// in the rootfs must not lead the bind (or its mount point) out of it.
func TestRootBindDestinationSafety(t *testing.T) {
	t.Parallel()
	dir := makeRootfs(t, "m")
	base := filepath.Dir(dir)
	outside := filepath.Join(base, "outside") // writable by us, next to the rootfs
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	elsewhere := tempDir(t) // writable by us, absolute path
	links := map[string]string{
		"evil":  "/",
		"evil2": "../../../../",
		"evil3": elsewhere,
		"evil4": "../outside",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	src := tempDir(t)
	writeFile(t, filepath.Join(src, "f"), "bound", 0o644)
	snapBase := snapshotTree(t, base)
	snapElsewhere := snapshotTree(t, elsewhere)

	target := "e2e-target-" + randHex(8)
	hostCandidates := []string{
		"/" + target,
		filepath.Join(dir, "../../../..", target),
		filepath.Join(elsewhere, target),
		filepath.Join(outside, target),
	}
	for _, p := range hostCandidates {
		t.Cleanup(func() { os.Remove(p) })
	}
	for _, dst := range []string{"/evil/" + target, "/evil2/" + target, "/evil3/" + target, "/evil4/" + target, "/../../" + target} {
		r := run(t, "run", "--rootfs", dir, "--bind", src+":"+dst, "--", "/bin/busybox", "cat", dst+"/f")
		t.Logf("--bind %s:%s → exit %d", src, dst, r.code)
		if r.timedOut {
			t.Errorf("timed out: %s", r)
		}
		for _, p := range hostCandidates {
			if exists(p) {
				t.Errorf("--bind SRC:%s created %s on the host (outside the rootfs)", dst, p)
			}
		}
	}
	if d := diffSnapshots(snapBase, snapshotTree(t, base)); len(d) > 0 {
		t.Errorf("the rootfs or its neighbours changed on the host:\n%s", strings.Join(d, "\n"))
	}
	if d := diffSnapshots(snapElsewhere, snapshotTree(t, elsewhere)); len(d) > 0 {
		t.Errorf("%s changed on the host:\n%s", elsewhere, strings.Join(d, "\n"))
	}
}

func TestPivotRoot(t *testing.T) {
	t.Parallel()
	t.Run("root links", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{}, "run", "--", "readlink", "/proc/self/root")
		if strings.TrimSpace(r.stdout) != "/" {
			t.Errorf("readlink /proc/self/root = %q, want /", r.stdout)
		}
		// pid 1's root is either the same as ours or not accessible at all.
		r = mustRun(t, opts{}, sh(nil, "ls -A /proc/1/root/ && echo LS-OK; echo ---; ls -A /")...)
		parts := sections(r.stdout)
		if len(parts) != 2 {
			t.Fatalf("unexpected output: %s", r)
		}
		proc1 := lines(parts[0])
		if !slices.Contains(proc1, "LS-OK") {
			if !strings.Contains(r.stderr, "Permission denied") {
				t.Errorf("ls /proc/1/root/ failed other than with EACCES: %s", r)
			}
			return
		}
		proc1 = slices.DeleteFunc(proc1, func(s string) bool { return s == "LS-OK" })
		if !slices.Equal(proc1, lines(parts[1])) {
			t.Errorf("ls /proc/1/root/ should equal ls /: %s", r)
		}
	})
	t.Run("mountinfo", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{}, "run", "--cwd=none", "--", "cat", "/proc/self/mountinfo")
		ms, err := parseMountinfo(r.stdout)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := lastMountAt(ms, "/"); !ok {
			t.Errorf("no mount at / in mountinfo:\n%s", r.stdout)
		}
		hostInfo, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		hostMounts, err := parseMountinfo(string(hostInfo))
		if err != nil {
			t.Fatal(err)
		}
		hostRoot, _ := lastMountAt(hostMounts, "/")
		for _, m := range ms {
			if !strings.HasPrefix(m.mountPoint, "/") {
				t.Errorf("mount point outside the root: %q", m.mountPoint)
			}
			// The old root still attached somewhere: the host's root
			// filesystem mounted whole.
			if m.majMin == hostRoot.majMin && m.root == hostRoot.root {
				t.Errorf("the host's root filesystem (%s %s) is mounted at %q inside: old root not detached", m.majMin, m.root, m.mountPoint)
			}
			if exists(m.mountPoint) {
				continue // a path the host has too (e.g. a host dir named old_root)
			}
			lower := strings.ToLower(m.mountPoint)
			for _, bad := range []string{"old", "pivot", "staging", ".sandbox"} {
				if strings.Contains(lower, bad) {
					t.Errorf("mount point %q looks like a leftover of the old root or the staging dir", m.mountPoint)
				}
			}
		}
	})
	t.Run("hidden host tmp", func(t *testing.T) {
		t.Parallel()
		hidden := slashTmpDir(t)
		f := filepath.Join(hidden, "secret")
		writeFile(t, f, "secret", 0o644)
		r := mustRun(t, opts{dir: tempDir(t)}, sh(nil, "test -e '"+f+"' && echo VISIBLE; test -e '/proc/1/root"+f+"' && echo VISIBLE-PROC1; true")...)
		if strings.TrimSpace(r.stdout) != "" {
			t.Errorf("a host file under /tmp that is not shared is reachable inside: %s", r)
		}
	})
}

// TestCwdIsSlashTmp: run from /tmp itself, the working directory is not
// shared (other programs keep their sockets there: through a tmux
// server's, a sandbox ran commands on the host), with the warning a home
// gets; /tmp inside is fresh. With --bind /tmp it is the host's. Either
// way it is never the staging tmpfs the root is assembled on.
func TestCwdIsSlashTmp(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp("/tmp", "e2e-cwd-marker-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	for _, bind := range []bool{false, true} {
		args := []string{"run", "--net=none", "--", "ls", "-a", "/tmp"}
		if bind {
			args = []string{"run", "--net=none", "--bind", "/tmp", "--", "ls", "-a", "/tmp"}
		}
		r := mustRun(t, opts{dir: "/tmp"}, args...)
		names := lines(r.stdout)
		if slices.Contains(names, filepath.Base(f.Name())) != bind {
			t.Errorf("--bind /tmp %v: the host's /tmp shared at /tmp is %v (marker %s)\n%s", bind, !bind, f.Name(), r)
		}
		if !bind && !strings.Contains(r.stderr, "the working directory /tmp is not shared") {
			t.Errorf("run from /tmp: no warning that it is not shared\n%s", r)
		}
		for _, staging := range []string{"root", "upper", "work", "files"} {
			if slices.Contains(names, staging) && !exists(filepath.Join("/tmp", staging)) {
				t.Errorf("/tmp inside shows the staging tmpfs (%q)\n%s", staging, r)
			}
		}
	}
}

// TestCwdHomeNotShared: run from the caller's own home (inside /home),
// the home is not shared: it stays hidden, with a warning. Before, only
// the outermost hidden directory (/home) was checked, so the whole home
// (.ssh, .config, …) was shared read-write.
func TestCwdHomeNotShared(t *testing.T) {
	t.Parallel()
	home := requireHome(t)
	marker := filepath.Join(home, ".e2e-cwd-home-"+randHex(8))
	writeFile(t, marker, "secret", 0o600)
	t.Cleanup(func() { os.Remove(marker) })
	r := mustRun(t, opts{dir: home}, "run", "--net=none", "--", "sh", "-c", "pwd; ls -A \"$HOME\"")
	if strings.Contains(r.stdout, filepath.Base(marker)) {
		t.Errorf("run from the home %s shared it\n%s", home, r)
	}
	if !strings.Contains(r.stderr, "is not shared") {
		t.Errorf("run from the home %s: no warning that it is not shared\n%s", home, r)
	}
}

// TestStateDirMasked: a share that holds sandbox's state directory (the
// working directory /tmp when the state is /tmp/sandbox-UID; here the
// XDG_RUNTIME_DIR of a private setup) shows it empty: a sandbox could
// otherwise remove or replace the records of the caller's other
// sandboxes and the holder's socket.
func TestStateDirMasked(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("victim", []string{"--net=none"}, "sleep", "3600")
	state := filepath.Join(l.xdg, "sandbox")
	if !exists(filepath.Join(state, "victim")) {
		t.Fatalf("no record at %s/victim", state)
	}
	for _, flags := range [][]string{{"--net=none"}, {"--net=none", "--cwd=none", "--bind", l.xdg}} {
		o := l.o
		o.dir = l.xdg
		r := runOpts(t, o, append(append([]string{"run"}, flags...), "--", "sh", "-c", "ls -A "+state+"; rm -rf "+state+"/victim; echo done")...)
		wantCode(t, r, 0)
		if strings.Contains(r.stdout, "victim") || !exists(filepath.Join(state, "victim")) {
			t.Errorf("%v from %s: the state directory was visible or changed inside\n%s", flags, l.xdg, r)
		}
	}
	// At another path, and under a --rootfs (its working directory share):
	// before, only the state's own path was masked, in host mode only, and
	// a sandbox could put its own exec socket in another's place.
	rootfs := makeRootfs(t, "state-"+randHex(8))
	for _, c := range []struct {
		flags []string
		at    string
	}{
		{[]string{"--net=none", "--cwd=none", "--bind", l.xdg + ":/elsewhere"}, "/elsewhere/sandbox"},
		{[]string{"--net=none", "--cwd=none", "--bind", filepath.Dir(l.xdg) + ":/up"}, "/up/" + filepath.Base(l.xdg) + "/sandbox"},
		{[]string{"--net=none", "--rootfs", rootfs}, state},
	} {
		o := l.o
		o.dir = l.xdg
		r := runOpts(t, o, append(append([]string{"run"}, c.flags...), "--", "sh", "-c", "ls -A "+c.at+"; echo done")...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "done" {
			t.Errorf("%v: the state directory shows at %s inside\n%s", c.flags, c.at, r)
		}
	}
	// A share from inside the state is refused.
	r := runOpts(t, l.o, "run", "--net=none", "--bind", filepath.Join(state, "victim")+":/v", "--", "true")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "no sandbox may see") {
		t.Errorf("a bind from inside the state directory: %s", r)
	}
	wantCode(t, runOpts(t, l.o, "exec", "victim", "--", "true"), 0)
}

// TestTmpfsDoesNotHideWhatIsBelow: a --tmpfs is mounted before the binds
// and the working directory below it, whatever the flags' order (before,
// it came last and hid them: "No such file or directory", and
// "changing to the working directory: … no such file or directory").
func TestTmpfsDoesNotHideWhatIsBelow(t *testing.T) {
	t.Parallel()
	dir := slashTmpDir(t)
	writeFile(t, filepath.Join(dir, "f"), "below", 0o644)
	r := mustRun(t, opts{}, "run", "--net=none", "--cwd=none", "--bind", dir+":/opt/x", "--tmpfs", "/opt", "--", "cat", "/opt/x/f")
	if strings.TrimSpace(r.stdout) != "below" {
		t.Errorf("--tmpfs /opt hid --bind DIR:/opt/x\n%s", r)
	}
	proj := slashTmpDir(t)
	r = mustRun(t, opts{dir: proj}, "run", "--net=none", "--tmpfs", "/tmp", "--", "pwd")
	if strings.TrimSpace(r.stdout) != proj {
		t.Errorf("--tmpfs /tmp hid the working directory %s\n%s", proj, r)
	}
}

// TestRootSymlinkLeadsNoFileToTheHost: a root whose /etc/hosts and
// /etc/resolv.conf are symlinks into a directory shared from the host
// (a --bind, the working directory) makes nothing there: the run stops
// with 125 naming the step, and the shared directory stays empty. Before,
// sandbox made both files on the host while it built the root, even
// with the share read-only (then the run failed with EROFS instead).
func TestRootSymlinkLeadsNoFileToTheHost(t *testing.T) {
	t.Parallel()
	dir := makeRootfs(t, "symlinked-"+randHex(8))
	shared := tempDir(t)
	for _, name := range []string{"hosts", "resolv.conf"} {
		if err := os.Symlink("/share/"+name, filepath.Join(dir, "etc", name)); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, "run", "--net=host", "--rootfs", dir, "--bind", shared+":/share", "--", "/bin/busybox", "true")
	if ents, _ := os.ReadDir(shared); len(ents) != 0 {
		t.Errorf("the run made %d entries in the shared directory on the host (%v): %s", len(ents), ents, r)
	}
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "/etc/hosts") || !strings.Contains(r.stderr, "shared from the host") {
		t.Errorf("want one line naming /etc/hosts and the share: %s", r)
	}
}

// TestUserBindOverGeneratedFiles: a bind of the user's at /etc/hosts or
// /etc/resolv.conf, or at /etc, is what the command sees: before, the
// generated files were mounted over it without a word, and in a bound
// directory they were made on the host.
func TestUserBindOverGeneratedFiles(t *testing.T) {
	t.Parallel()
	dir := slashTmpDir(t)
	hosts := filepath.Join(dir, "myhosts")
	writeFile(t, hosts, "10.1.2.3 mine\n", 0o644)
	resolv := filepath.Join(dir, "myresolv")
	writeFile(t, resolv, "nameserver 10.9.9.9\n", 0o644)
	r := mustRun(t, opts{}, "run", "--net=none", "--cwd=none", "--bind", hosts+":/etc/hosts", "--bind", resolv+":/etc/resolv.conf",
		"--", "cat", "/etc/hosts", "/etc/resolv.conf")
	if r.stdout != "10.1.2.3 mine\nnameserver 10.9.9.9\n" {
		t.Errorf("the user's binds at /etc/hosts and /etc/resolv.conf are not what the command sees: %s", r)
	}
	etc := slashTmpDir(t)
	r = mustRun(t, opts{}, "run", "--net=host", "--cwd=none", "--bind", etc+":/etc", "--", "ls", "-A", "/etc")
	if strings.TrimSpace(r.stdout) != "" {
		t.Errorf("--bind DIR:/etc: /etc inside holds %q, want DIR's nothing", r.stdout)
	}
	if ents, _ := os.ReadDir(etc); len(ents) != 0 {
		t.Errorf("--bind DIR:/etc made %v in DIR on the host", ents)
	}
}
