package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// overlayDrivers are the --overlay values every overlay test runs under.
var overlayDrivers = []string{"kernel", "fuse"}

// driverNames are what sandbox's messages call them.
var driverNames = map[string]string{"kernel": "kernel overlayfs", "fuse": "fuse-overlayfs"}

// overlaySuite lists the checks of testdata/overlay_suite.py.
var overlaySuite = []string{"copy-up", "whiteout", "opaque", "rename-file", "rename-dir", "hard-links",
	"chmod-chown", "xattrs", "mmap", "sparse", "many-files"}

// makeOverlayLayer writes the lower layer the suite works on: its top
// directory /ovl exists nowhere else, so in host mode it is one overlay of
// this layer alone.
func makeOverlayLayer(t *testing.T) string {
	t.Helper()
	layer := filepath.Join(tempDir(t), "layer")
	for name, content := range map[string]string{
		"file": "lower\n", "del": "d\n", "dir/a": "a\n", "dir/sub/b": "b\n", "mvfile": "mv\n",
		"mvdir/x": "x\n", "link": "l\n", "own": "o\n", "xattr": "x\n", "mm": strings.Repeat("\x00", 8192),
	} {
		writeFile(t, filepath.Join(layer, "ovl", name), content, 0o644)
	}
	if err := os.Mkdir(filepath.Join(layer, "ovl/mvdir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	return layer
}

func requirePython(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	requireOrSkip(t, err == nil, "python3 (the overlay suite's helper; Debian package python3)")
	return p
}

// suiteResults parses the suite's "ok NAME [detail]" lines.
func suiteResults(t *testing.T, drv string, r result) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, ln := range lines(r.stdout) {
		if rest, ok := strings.CutPrefix(ln, "FAIL "); ok {
			t.Errorf("--overlay=%s: %s", drv, rest)
			continue
		}
		if rest, ok := strings.CutPrefix(ln, "ok "); ok {
			name, detail, _ := strings.Cut(rest, " ")
			got[name] = detail
		}
	}
	for _, name := range overlaySuite {
		if _, ok := got[name]; !ok {
			t.Errorf("--overlay=%s: check %s did not pass: %s", drv, name, r)
		}
	}
	if r.code != 0 && !t.Failed() {
		t.Errorf("--overlay=%s: the suite failed: %s", drv, r)
	}
	return got
}

// TestOverlaySemantics runs the same suite over a host-mode root with a
// --layer under both drivers: what a payload sees must not depend on it.
func TestOverlaySemantics(t *testing.T) {
	requireFullMap(t) // chown to ids other than root's
	requirePython(t)
	suite, err := filepath.Abs("testdata/overlay_suite.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, drv := range overlayDrivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			layer := makeOverlayLayer(t)
			r := runOpts(t, opts{timeout: 4 * time.Minute}, "run", "-v", "--overlay="+drv, "--layer", layer,
				"--bind", suite+":/ovlsuite.py:ro", "--", "python3", "/ovlsuite.py", "/ovl")
			got := suiteResults(t, drv, r)
			t.Logf("--overlay=%s: %v", drv, got)
			// Kernel overlayfs (no redirect_dir in a user namespace) and
			// fuse-overlayfs both refuse rename(2) of a lower directory;
			// mv copies instead.
			if d, ok := got["rename-dir"]; ok && d != "rename(2)=EXDEV" {
				t.Errorf("--overlay=%s: rename(2) of a lower directory: %s, want EXDEV as documented", drv, d)
			}
			if want := "overlay on /ovl: " + driverNames[drv]; !strings.Contains(r.stderr, want) {
				t.Errorf("--overlay=%s -v: want %q in the log: %s", drv, want, r)
			}
			// The layer itself is never written.
			for name, want := range map[string]string{"file": "lower\n", "del": "d\n", "dir/a": "a\n", "mvdir/x": "x\n"} {
				if b, err := os.ReadFile(filepath.Join(layer, "ovl", name)); err != nil || string(b) != want {
					t.Errorf("--overlay=%s: the layer's %s changed: %q, %v", drv, name, b, err)
				}
			}
		})
	}
}

// TestOverlayRootfsLayer: --rootfs with a --layer on top, under both drivers.
func TestOverlayRootfsLayer(t *testing.T) {
	for _, drv := range overlayDrivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			root := makeRootfs(t, "m-"+drv)
			layer := filepath.Join(tempDir(t), "layer")
			writeFile(t, filepath.Join(layer, "fromlayer"), "L\n", 0o644)
			writeFile(t, filepath.Join(layer, "marker"), "over\n", 0o644)
			r := mustRun(t, opts{}, sh([]string{"--overlay=" + drv, "--rootfs", root, "--layer", layer, "--cwd=none"},
				`cat /marker /fromlayer; echo new > /new; cat /new; `+
					`echo gone > /removable; /bin/busybox rm /removable; test -e /removable && echo still; `+
					`/bin/busybox rm /fromlayer; ls /`)...)
			out := r.stdout
			if !strings.HasPrefix(out, "over\nL\nnew\n") || strings.Contains(out, "still") ||
				strings.Contains(out, "fromlayer") || strings.Contains(out, "removable") {
				t.Errorf("--overlay=%s over --rootfs and --layer: %s", drv, r)
			}
			if b, err := os.ReadFile(filepath.Join(root, "removable")); err != nil || string(b) != "r" {
				t.Errorf("--overlay=%s: the rootfs changed: %q, %v", drv, b, err)
			}
			if b, err := os.ReadFile(filepath.Join(layer, "fromlayer")); err != nil || string(b) != "L\n" {
				t.Errorf("--overlay=%s: the layer changed: %q, %v", drv, b, err)
			}
		})
	}
}

// TestOverlayFuseDaemonsHidden: the payload (Docker's capabilities, no
// CAP_SYS_PTRACE) cannot reach the host directories fuse-overlayfs holds
// through /proc/PID/{root,cwd,fd}; and the daemons hold no socket (init's
// control socket, the exec socket).
func TestOverlayFuseDaemonsHidden(t *testing.T) {
	requirePython(t)
	probe := `
import os, errno
pids = [p for p in os.listdir("/proc") if p.isdigit() and open("/proc/%s/comm" % p).read().strip() == "fuse-overlayfs"]
print("daemons", len(pids))
for p in pids:
    for what, fn in (("root", lambda: os.listdir("/proc/%s/root/" % p)), ("cwd", lambda: os.listdir("/proc/%s/cwd/" % p)),
                     ("fd", lambda: [os.readlink("/proc/%s/fd/%s" % (p, f)) for f in os.listdir("/proc/%s/fd" % p)])):
        try:
            got = fn()
            print("open", what, p, sorted(got)[:8])
        except OSError as e:
            print("denied" if e.errno in (errno.EACCES, errno.EPERM) else "other", what, p, e.errno)
`
	r := mustRun(t, opts{}, "run", "--overlay=fuse", "--", "python3", "-c", probe)
	if !strings.Contains(r.stdout, "daemons ") || strings.Contains(r.stdout, "daemons 0\n") {
		t.Fatalf("--overlay=fuse: no fuse-overlayfs daemon visible inside: %s", r)
	}
	for _, ln := range lines(r.stdout)[1:] {
		if !strings.HasPrefix(ln, "denied ") {
			t.Errorf("--overlay=fuse: the payload reached a daemon's /proc entry: %q (%s)", ln, r)
		}
	}
	// With every capability the payload may look (as it may mount
	// anything itself): what the daemons hold.
	r = mustRun(t, opts{}, "run", "--overlay=fuse", "--cap-add=ALL", "--", "python3", "-c", probe)
	seen := false
	for _, ln := range lines(r.stdout) {
		if strings.HasPrefix(ln, "open fd ") {
			seen = true
			if strings.Contains(ln, "socket:") {
				t.Errorf("--overlay=fuse: a fuse-overlayfs daemon holds a socket: %q", ln)
			}
		}
	}
	if !seen {
		t.Errorf("--overlay=fuse --cap-add=ALL: could not list a daemon's fds: %s", r)
	}
}

// TestOverlayUpperPersists: a persistent --upper works across runs with the
// driver that made it, records it, and refuses the other one.
func TestOverlayUpperPersists(t *testing.T) {
	requirePython(t)
	// A write through a shared mapping whose fd was closed before (its
	// close would flush), and the payload exits at once, without munmap:
	// the page must reach the upper before the daemon dies with the
	// sandbox (FUSE writes back on the mapping's end; init also syncs).
	mmapWrite := `python3 -c 'import mmap, os; f = open("/ovl/mm", "r+b"); m = mmap.mmap(f.fileno(), 8192); f.close(); m[0:5] = b"hello"; os._exit(0)'`
	for i, drv := range overlayDrivers {
		other := overlayDrivers[1-i]
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			layer := makeOverlayLayer(t)
			upper := filepath.Join(tempDir(t), "upper")
			base := []string{"--overlay=" + drv, "--layer", layer, "--upper", upper, "--cwd=none"}
			mustRun(t, opts{}, sh(base, "echo one > /ovl/p1 && rm /ovl/del && rm -r /ovl/dir && mkdir /ovl/dir && "+mmapWrite)...)
			r := mustRun(t, opts{}, sh(base, "cat /ovl/p1; test -e /ovl/del && echo del-back; ls /ovl/dir; head -c 5 /ovl/mm; echo; echo two > /ovl/p2")...)
			if r.stdout != "one\nhello\n" {
				t.Errorf("--overlay=%s --upper, second run: %s", drv, r)
			}
			if b, err := os.ReadFile(filepath.Join(upper, "overlay-driver")); err != nil || string(b) != drv+"\n" {
				t.Errorf("--overlay=%s: the upper's driver marker: %q, %v", drv, b, err)
			}
			// auto takes the upper's driver.
			r = mustRun(t, opts{}, sh([]string{"-v", "--layer", layer, "--upper", upper, "--cwd=none"}, "cat /ovl/p1 /ovl/p2")...)
			if r.stdout != "one\ntwo\n" || !strings.Contains(r.stderr, "overlay on /ovl: "+driverNames[drv]) {
				t.Errorf("--overlay=auto with an upper made by %s: %s", drv, r)
			}
			r = run(t, sh([]string{"--overlay=" + other, "--layer", layer, "--upper", upper}, "true")...)
			wantCode(t, r, 125)
			for _, want := range []string{driverNames[drv], "--overlay=" + other, "--overlay=" + drv, "new --upper"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("--overlay=%s on an upper made by %s: want %q in the message: %s", other, drv, want, r)
				}
			}
		})
	}
}

// TestOverlayUpperSurvivesSIGKILL: sandbox killed (SIGKILL) while the
// payload writes and fsyncs; the next run with the same upper sees every
// fsynced file whole and can write; no daemon outlives the sandbox.
func TestOverlayUpperSurvivesSIGKILL(t *testing.T) {
	requirePython(t)
	writer := `
import os
os.makedirs("/ovl/k", exist_ok=True)
d = os.open("/ovl/k", os.O_RDONLY)
for i in range(100000):
    with open("/ovl/k/f%d" % i, "wb") as f:
        f.write(bytes([i % 251]) * 65536)
        f.flush()
        os.fsync(f.fileno())
    os.fsync(d)
    print("synced", i, flush=True)
`
	checker := `
import os, sys
n = int(sys.argv[1])
bad = [i for i in range(n + 1) if open("/ovl/k/f%d" % i, "rb").read() != bytes([i % 251]) * 65536]
print("bad", bad[:5])
open("/ovl/k/after", "w").write("ok")
os.fsync(os.open("/ovl/k/after", os.O_RDONLY))
print("wrote")
`
	for _, drv := range overlayDrivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			layer := makeOverlayLayer(t)
			upper := filepath.Join(tempDir(t), "upper")
			base := []string{"run", "--overlay=" + drv, "--layer", layer, "--upper", upper, "--cwd=none", "--"}
			p := start(t, opts{timeout: time.Minute}, append(base, "python3", "-c", writer)...)
			if !p.waitStdout("synced 30\n", 30*time.Second) {
				t.Fatalf("--overlay=%s: the writer did not get going: %s", drv, p.wait())
			}
			pidns := sandboxPidNS(t, p.pid())
			if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			r := p.wait()
			last := -1
			for _, ln := range lines(r.stdout) {
				if n, ok := strings.CutPrefix(ln, "synced "); ok {
					if v, err := strconv.Atoi(n); err == nil {
						last = v
					}
				}
			}
			// Every process of the sandbox (init, the payload, the
			// daemons) goes with it.
			deadline := time.Now().Add(10 * time.Second)
			for left := inPidNS(pidns); len(left) > 0; left = inPidNS(pidns) {
				if time.Now().After(deadline) {
					t.Fatalf("--overlay=%s: processes outlived the SIGKILLed sandbox: %v", drv, left)
				}
				time.Sleep(50 * time.Millisecond)
			}
			r = mustRun(t, opts{timeout: time.Minute}, append(base, "python3", "-c", checker, strconv.Itoa(last))...)
			if !strings.Contains(r.stdout, "bad []\n") || !strings.Contains(r.stdout, "wrote\n") {
				t.Errorf("--overlay=%s: after SIGKILL, the %d fsynced files or a new write: %s", drv, last+1, r)
			}
		})
	}
}

// sandboxPidNS returns the pid namespace of the sandbox whose supervising
// process is pid (its init's), waiting briefly for init to exist.
func sandboxPidNS(t *testing.T, pid int) string {
	t.Helper()
	self, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range descendants(pid) {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.pid)); err == nil && ns != self {
			return ns
		}
	}
	t.Fatalf("no process of sandbox %d in a pid namespace of its own", pid)
	return ""
}

// inPidNS lists the live processes in pid namespace ns.
func inPidNS(ns string) []procInfo {
	var out []procInfo
	for _, p := range allProcs() {
		if p.state == 'Z' || p.state == 'X' {
			continue
		}
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.pid)); err == nil && got == ns {
			out = append(out, p)
		}
	}
	return out
}

// TestUpperPlanted: an --upper below the shared working directory can be
// changed from inside a sandbox; what a sandbox plants there is refused by
// the next run, never followed or waited on. Before, a symlink for upper/
// made any directory of the caller's the next sandbox's root (read,
// written, its mode changed), and a FIFO for the driver marker made the
// next run hang.
func TestUpperPlanted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, plant, want string }{
		{"upper symlink", "rm -rf .layer/upper && ln -s SECRET .layer/upper", ".layer/upper is a symlink or not a directory"},
		{"rootwork symlink", "rm -rf .layer/rootwork && ln -s SECRET .layer/rootwork", ".layer/rootwork is a symlink or not a directory"},
		{"marker fifo", "rm -f .layer/overlay-driver && mkfifo .layer/overlay-driver", "overlay-driver is not a regular file"},
		{"marker symlink", "rm -f .layer/overlay-driver && ln -s SECRET/key .layer/overlay-driver", "overlay-driver is a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proj, secret := slashTmpDir(t), slashTmpDir(t) // the second never shared
			writeFile(t, filepath.Join(secret, "key"), "topsecret", 0o600)
			if err := os.Chmod(secret, 0o700); err != nil {
				t.Fatal(err)
			}
			plant := strings.ReplaceAll(tc.plant, "SECRET", secret)
			wantCode(t, runIn(t, proj, "run", "--net=none", "--upper", ".layer", "--", "sh", "-c", plant), 0)
			r := runOpts(t, opts{dir: proj, timeout: 30 * time.Second}, "run", "--net=none", "--upper", ".layer", "--",
				"sh", "-c", "cat /key; echo pwned > /pwned")
			if r.timedOut {
				t.Fatalf("the run after the plant hung\n%s", r)
			}
			wantCode(t, r, exitSandbox)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr should say %q\n%s", tc.want, r)
			}
			if strings.Contains(r.stdout, "topsecret") || exists(filepath.Join(secret, "pwned")) {
				t.Errorf("ESCAPE: the planted %s was followed into %s\n%s", tc.name, secret, r)
			}
			if st, err := os.Stat(secret); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("%s changed: %v %v", secret, st.Mode(), err)
			}
		})
	}
}

// TestEmptyDirectoryNotLayered: a top-level directory empty in the host and
// in every layer (here one that only a layer has) is not an overlay but a
// directory of the sandbox's own root: not a mount point, with the layer's
// mode, writable by root inside, a bind lands below it; with --upper what
// is written there persists where its overlay's upper would have kept it
// (UPPER/upper/NAME) and shows in the next run. A directory with an entry
// is still layered.
func TestEmptyDirectoryNotLayered(t *testing.T) {
	t.Parallel()
	layer, src := tempDir(t), tempDir(t)
	if err := os.Mkdir(filepath.Join(layer, "emptytop"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(layer, "emptytop"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(layer, "fulltop", "f"), "f\n", 0o644)
	writeFile(t, filepath.Join(src, "inside"), "bound\n", 0o644)
	mounts := `for d in /emptytop /fulltop; do printf '%s %s\n' $d "$(awk -v d=$d '$5 == d { for (i = 7; i < NF; i++) if ($i == "-") { print $(i+1); break } }' /proc/self/mountinfo)"; done`
	r := mustRun(t, opts{}, sh([]string{"--net=none", "--cwd=none", "--layer", layer, "--bind", src + ":/emptytop/sub:ro"},
		mounts+`; stat -c '%a %u' /emptytop; echo x > /emptytop/new && cat /emptytop/new; cat /emptytop/sub/inside; ls /emptytop`)...)
	if want := "/emptytop \n/fulltop overlay\n750 0\nx\nbound\nnew\nsub\n"; r.stdout != want {
		t.Errorf("an empty layer directory:\n%s\nwant stdout:\n%s", r, want)
	}
	upper := filepath.Join(tempDir(t), "upper")
	base := []string{"--net=none", "--cwd=none", "--layer", layer, "--upper", upper}
	mustRun(t, opts{}, sh(base, "echo kept > /emptytop/kept")...)
	if b, err := os.ReadFile(filepath.Join(upper, "upper", "emptytop", "kept")); err != nil || string(b) != "kept\n" {
		t.Errorf("--upper: UPPER/upper/emptytop/kept = %q, %v", b, err)
	}
	if r := mustRun(t, opts{}, sh(base, "cat /emptytop/kept")...); r.stdout != "kept\n" {
		t.Errorf("--upper, the next run: %s", r)
	}
}

// TestClosedDirectoryBound: a top-level host directory no process of the
// sandbox can open (an ext4 root's /lost+found: root's, mode 0700, root
// not mapped) is the host's own, bound read-only, not an overlay: as
// closed inside as on the host (its owner unmapped, listing and creating
// in it refused), and no superblock to mount and free.
func TestClosedDirectoryBound(t *testing.T) {
	t.Parallel()
	const d = "/lost+found"
	var st syscall.Stat_t
	err := syscall.Stat(d, &st)
	requireOrSkip(t, err == nil && st.Uid == 0 && st.Mode&0o777 == 0o700 && os.Getuid() != 0,
		"an ext4 root's "+d+" (root's, mode 0700) and an unprivileged test user")
	mount := `awk -v d=` + d + ` '$5 == d { for (i = 7; i < NF; i++) if ($i == "-") { split($6, o, ","); print o[1], $(i+1); break } }' /proc/self/mountinfo`
	root, ok := lastMountAt(hostMountinfo(t), "/")
	if !ok {
		t.Fatal("no mount of / in this process's mountinfo")
	}
	hostFS := root.fstype // the type of the host's root file system
	// Either overlay driver: the plan binds it before any overlay is made.
	for _, driver := range overlayDrivers {
		r := mustRun(t, opts{}, sh([]string{"--net=none", "--cwd=none", "--overlay=" + driver},
			mount+`; stat -c '%a %u' `+d+`; ls `+d+` >/dev/null 2>&1; echo ls=$?; touch `+d+`/x 2>/dev/null; echo touch=$?`)...)
		if want := "ro " + hostFS + "\n700 65534\nls=2\ntouch=1\n"; r.stdout != want {
			t.Errorf("--overlay=%s: %s inside:\n%s\nwant stdout:\n%s", driver, d, r, want)
		}
	}
}
