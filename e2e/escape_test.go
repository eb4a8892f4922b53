//go:build linux

package e2e

// Escape tests: each test is one attempt to break out of the sandbox (see the
// threat list in the test names). Every attempt must fail: the attacker's
// command fails with an access error and the host-side effect is absent.
// Attempts that depend on the root's construction run as subtests in the
// default (host) mode, with --read-only and with --rootfs DIR (busybox).

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------------------
// 1. See or signal a host process.

func TestEscapeHostProcess(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "tr")
	escForModes(t, []string{"default", "read-only", "rootfs"}, func(t *testing.T, m escMode) {
		hp, hstart, arg := escHostSleep(t)
		script := strings.NewReplacer("@HP@", strconv.Itoa(hp)).Replace(`
for p in /proc/[0-9]*; do echo "PID ${p#/proc/}"; done
for p in /proc/[0-9]*; do echo "CMD ${p#/proc/}: $(tr '\000' ' ' < $p/cmdline 2>/dev/null)"; done
test -e /proc/@HP@ && echo VISIBLE
kill -0 @HP@ 2>/dev/null && echo KILL0-OK
kill -STOP @HP@ 2>/dev/null && echo KILLSTOP-OK
kill -KILL @HP@ 2>/dev/null && echo KILLKILL-OK
echo end
`)
		r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, script)...)
		for _, bad := range []string{"VISIBLE", "KILL0-OK", "KILLSTOP-OK", "KILLKILL-OK"} {
			if slices.Contains(lines(r.stdout), bad) {
				t.Errorf("ESCAPE: the host process %d is reachable inside (%s)\n%s", hp, bad, r)
			}
		}
		if strings.Contains(r.stdout, arg) {
			t.Errorf("ESCAPE: the host `sleep %s` (pid %d) is listed in /proc inside\n%s", arg, hp, r)
		}
		pids := escLinesWith(r.stdout, "PID ")
		if !slices.Contains(pids, "PID 1") || len(pids) > 4 {
			t.Errorf("/proc inside should list only the sandbox's few processes (pid 1, the shell): %q", pids)
		}
		escHostProcOK(t, hp, hstart)
	})
}

// ---------------------------------------------------------------------------
// 2. ptrace a host process, or the sandbox's own init.

func TestEscapePtrace(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	hp, hstart, _ := escHostSleep(t)
	script := escPyPrelude + strings.NewReplacer("@HP@", strconv.Itoa(hp)).Replace(`
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
def pt(req, pid):
    ctypes.set_errno(0)
    return libc.ptrace(req, pid, None, None), ctypes.get_errno()
for name, req in (("attach", 16), ("seize", 0x4206)):
    for pid in (@HP@, 1):
        r, e = pt(req, pid)
        print("%s %d %d %d" % (name, pid, r, e))
        if r == 0:
            pt(17, pid)
try:
    open("/proc/1/mem", "rb").read(1)
    print("mem 0")
except OSError as e:
    print("mem %d" % e.errno)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
remote = iovec(0x400000, 8)
libc.process_vm_readv.restype = ctypes.c_ssize_t
ctypes.set_errno(0)
r = libc.process_vm_readv(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
print("vmread %d %d" % (r, ctypes.get_errno()))
print("end")
`)
	r := escMustRun(t, opts{dir: tempDir(t)}, escPyArgs(nil, script)...)
	want := map[string][]int{
		fmt.Sprintf("attach %d", hp): {-1, int(syscall.ESRCH)},
		fmt.Sprintf("seize %d", hp):  {-1, int(syscall.ESRCH)},
		"attach 1":                   {-1, int(syscall.EPERM)},
		"seize 1":                    {-1, int(syscall.EPERM)},
	}
	for k, w := range want {
		v, ok := escField(r.stdout, k)
		if !ok {
			t.Errorf("no result for ptrace %s:\n%s", k, r)
			continue
		}
		if v != fmt.Sprintf("%d %d", w[0], w[1]) {
			t.Errorf("ptrace %s inside: got `ret errno` = %q, want \"%d %d\" (%v)", k, v, w[0], w[1], syscall.Errno(w[1]))
		}
	}
	if v, _ := escField(r.stdout, "mem"); v != strconv.Itoa(int(syscall.EACCES)) && v != strconv.Itoa(int(syscall.EPERM)) {
		t.Errorf("ESCAPE?: reading /proc/1/mem (the sandbox init's memory) should fail with EACCES/EPERM, got errno %q\n%s", v, r)
	}
	if v, _ := escField(r.stdout, "vmread"); v != fmt.Sprintf("-1 %d", syscall.EPERM) && v != fmt.Sprintf("-1 %d", syscall.EACCES) {
		t.Errorf("process_vm_readv of pid 1 should fail with EPERM, got %q\n%s", v, r)
	}
	escHostProcOK(t, hp, hstart)
}

// ---------------------------------------------------------------------------
// 3. setns into the host's (or init's) namespaces; nested user namespaces.

func TestEscapeSetns(t *testing.T) {
	t.Parallel()
	t.Run("host pid namespaces via /proc", func(t *testing.T) {
		t.Parallel()
		escRequirePython(t)
		hp, _, _ := escHostSleep(t)
		hostMnt, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			t.Fatal(err)
		}
		script := escPyPrelude + strings.NewReplacer("@HP@", strconv.Itoa(hp)).Replace(`
for pid in (@HP@, 1):
    for ns in ("mnt", "user", "pid", "net"):
        p = "/proc/%d/ns/%s" % (pid, ns)
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError as e:
            print("open %d %s %d" % (pid, ns, e.errno))
            continue
        ctypes.set_errno(0)
        r = libc.setns(fd, 0)
        print("open %d %s 0 setns %d %d" % (pid, ns, r, ctypes.get_errno()))
print("selfmnt " + os.readlink("/proc/self/ns/mnt"))
print("end")
`)
		r := escMustRun(t, opts{dir: tempDir(t)}, escPyArgs(nil, script)...)
		for _, ns := range []string{"mnt", "user", "pid", "net"} {
			if v, _ := escField(r.stdout, fmt.Sprintf("open %d %s", hp, ns)); v != strconv.Itoa(int(syscall.ENOENT)) {
				t.Errorf("ESCAPE?: /proc/%d/ns/%s (host process) should not exist inside (ENOENT), got %q", hp, ns, v)
			}
			v, _ := escField(r.stdout, "open 1 "+ns)
			if strings.HasPrefix(v, "0 setns 0") {
				t.Errorf("ESCAPE: setns into init's %s namespace succeeded\n%s", ns, r)
			} else if v != strconv.Itoa(int(syscall.EACCES)) && v != strconv.Itoa(int(syscall.EPERM)) &&
				!strings.HasPrefix(v, fmt.Sprintf("0 setns -1 %d", syscall.EPERM)) && !strings.HasPrefix(v, fmt.Sprintf("0 setns -1 %d", syscall.EINVAL)) {
				t.Errorf("/proc/1/ns/%s: want open to fail with EACCES (or setns with EPERM), got %q", ns, v)
			}
		}
		if v, _ := escField(r.stdout, "selfmnt"); v == hostMnt {
			t.Errorf("ESCAPE: the payload is in the host's mount namespace %s", v)
		}
	})
	for _, mode := range []string{"default", "rootfs"} {
		t.Run("nsenter and unshare without CAP_SYS_ADMIN/"+mode, func(t *testing.T) {
			t.Parallel()
			m := escModes(t, mode)[0]
			escRequireTool(t, "nsenter")
			escRequireTool(t, "unshare")
			script := escTryFn + `
try nsenter-mnt nsenter -t 1 -m true
try unshare-mnt unshare -m true
try unshare-net unshare -n true
try unshare-ipc unshare -i true
try unshare-uts unshare -u true
try unshare-pid unshare -p -f true
`
			labels := []string{"nsenter-mnt", "unshare-mnt", "unshare-net", "unshare-ipc", "unshare-uts", "unshare-pid"}
			if m.rootfs == "" {
				script += "try nsenter-all nsenter -t 1 -a true\n"
				labels = append(labels, "nsenter-all")
			}
			r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, script)...)
			escCheckTries(t, r, labels)
			for _, l := range labels {
				if msg, ok := escField(r.stdout, "FAIL "+l); ok && !escDenied(msg) {
					t.Errorf("`%s` should fail with EPERM/EACCES, got %q", l, msg)
				}
			}
		})
		// Depends on the seccomp filter (--allow-nested-userns).
		t.Run("nested userns blocked by seccomp/"+mode, func(t *testing.T) {
			t.Parallel()
			m := escModes(t, mode)[0]
			escRequireTool(t, "unshare")
			script := escTryFn + "try userns unshare -U true\ntry userns-root unshare -Ur true\ntry userns-mnt unshare -Urm true\n"
			r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, script)...)
			labels := []string{"userns", "userns-root", "userns-mnt"}
			escCheckTries(t, r, labels)
			for _, l := range labels {
				if msg, ok := escField(r.stdout, "FAIL "+l); ok && !escDenied(msg) {
					t.Errorf("`%s` should fail with EPERM (seccomp), got %q", l, msg)
				}
			}
		})
		t.Run("nested userns with --allow-nested-userns/"+mode, func(t *testing.T) {
			t.Parallel()
			m := escModes(t, mode)[0]
			escRequireTool(t, "unshare")
			flags := append(slices.Clone(m.flags), "--allow-nested-userns")
			r := escRun(t, opts{dir: tempDir(t)}, sh(flags, "unshare -U true && echo userns-ok; unshare -Ur id -u && echo userns-root-ok")...)
			if r.code != 0 || !slices.Contains(lines(r.stdout), "userns-ok") || !slices.Contains(lines(r.stdout), "userns-root-ok") {
				t.Errorf("--allow-nested-userns: `unshare -U` and `unshare -Ur` should work inside\n%s", r)
			}
			// Root of a nested user namespace has every capability again, over
			// namespaces it creates: the sandbox's read-only binds and masks
			// must stay as they are for it.
			src := tempDir(t)
			writeFile(t, filepath.Join(src, "file"), "original", 0o644)
			before := snapshotTree(t, src)
			dst := "/mnt/escape-ro-" + randHex(6)
			script := strings.NewReplacer("@D@", dst).Replace(`
unshare -Urm sh -c 'mount -o remount,bind,rw @D@; echo changed > @D@/file && echo WROTE-NESTED-MNTNS; umount /proc/keys; umount -l /proc/keys; echo "KEYS: $(wc -c < /proc/keys)"' 2>&1
unshare -Ur sh -c 'echo changed > @D@/file && echo WROTE-NESTED-USERNS' 2>&1
echo end
`)
			r = escRun(t, opts{dir: tempDir(t)}, sh(append(flags, "--bind", src+":"+dst+":ro"), script)...)
			wantCode(t, r, 0)
			for _, bad := range []string{"WROTE-NESTED-MNTNS", "WROTE-NESTED-USERNS"} {
				if slices.Contains(lines(r.stdout), bad) {
					t.Errorf("ESCAPE: a nested user namespace's root wrote through the read-only bind (%s)\n%s", bad, r)
				}
			}
			if v, ok := escField(r.stdout, "KEYS"); ok && v != "0" {
				t.Errorf("ESCAPE: a nested user namespace's root removed the mask on /proc/keys (%s bytes)", v)
			}
			if d := diffSnapshots(before, snapshotTree(t, src)); len(d) > 0 {
				t.Errorf("ESCAPE: the read-only bind's source changed on the host:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 4. Read a host file outside the exposed paths (the caller's $HOME).

func TestEscapeReadHostFile(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "timeout")
	content := "escape-secret-" + randHex(24)
	secret := escHomeFile(t, ".escape-secret-", content)
	handle, _, herr := unix.NameToHandleAt(unix.AT_FDCWD, secret, 0)

	shell := strings.NewReplacer("@S@", secret).Replace(`S='@S@'
rd() { if c=$(timeout 5 cat "$1" 2>&1); then echo "READ $1: $c"; else echo "NOREAD $1: $c"; fi; }
rd "$S"
rd "/proc/self/root$S"
rd "/proc/1/root$S"
rd "/proc/self/cwd/../../../../../../../../../..$S"
rd "/..$S"
for d in /proc/[0-9]*; do rd "$d/root$S"; rd "$d/cwd$S"; done
echo "HOMEDIR: $(ls -A "$(dirname "$S")" 2>&1 | tr '\n' ' ')"
echo end
`)
	check := func(t *testing.T, r result) {
		t.Helper()
		wantCode(t, r, 0)
		if reads := escLinesWith(r.stdout, "READ "); len(reads) > 0 {
			t.Errorf("ESCAPE: the host secret %s was readable inside:\n%s", secret, strings.Join(reads, "\n"))
		}
		if strings.Contains(r.stdout+r.stderr, content) {
			t.Errorf("ESCAPE: the content of the host secret %s appears inside\n%s", secret, r)
		}
		if home, _ := escField(r.stdout, "HOMEDIR"); strings.Contains(home, filepath.Base(secret)) {
			t.Errorf("ESCAPE: %s is listed in the home directory inside: %q", filepath.Base(secret), home)
		}
	}
	pyScript := func() string {
		return escPyPrelude + strings.NewReplacer("@HB@", hex.EncodeToString(handle.Bytes()),
			"@HT@", strconv.Itoa(int(handle.Type()))).Replace(`
HB = bytes.fromhex("@HB@")
class FH(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * len(HB))]
fh = FH(len(HB), @HT@, (ctypes.c_ubyte * len(HB)).from_buffer_copy(HB))
for mp in (".", "/", "/usr", "/etc", "/home", "/tmp", os.environ.get("HOME", "/")):
    try:
        mfd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        continue
    ctypes.set_errno(0)
    fd = libc.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY)
    e = ctypes.get_errno()
    if fd >= 0:
        print("OBH-OPENED %s %r" % (mp, os.read(fd, 4096)))
    else:
        print("obh %s %d" % (mp, e))
print("end")
`)
	}
	escForModes(t, []string{"default", "read-only", "rootfs"}, func(t *testing.T, m escMode) {
		dir := tempDir(t)
		check(t, escRun(t, opts{dir: dir}, sh(m.flags, shell)...))
		if !m.python {
			return
		}
		requireOrSkip(t, herr == nil, fmt.Sprintf("name_to_handle_at on $HOME's filesystem: %v", herr))
		r := escMustRun(t, opts{dir: dir}, escPyArgs(m.flags, pyScript())...)
		if strings.Contains(r.stdout, "OBH-OPENED") || strings.Contains(r.stdout, content) {
			t.Errorf("ESCAPE: open_by_handle_at opened the host secret %s\n%s", secret, r)
		}
		obh := escLinesWith(r.stdout, "obh ")
		if len(obh) == 0 {
			t.Errorf("open_by_handle_at was not attempted\n%s", r)
		}
		for _, l := range obh {
			if !strings.HasSuffix(l, fmt.Sprintf(" %d", syscall.EPERM)) {
				t.Errorf("open_by_handle_at should fail with EPERM (no CAP_DAC_READ_SEARCH; seccomp): %q", l)
			}
		}
	})
	// Even with every capability inside, a file handle must not reach outside
	// the mounts the sandbox has.
	t.Run("default --cap-add ALL", func(t *testing.T) {
		t.Parallel()
		escRequirePython(t)
		dir := tempDir(t)
		flags := []string{"--cap-add", "ALL"}
		check(t, escRun(t, opts{dir: dir}, sh(flags, shell)...))
		requireOrSkip(t, herr == nil, fmt.Sprintf("name_to_handle_at on $HOME's filesystem: %v", herr))
		r := escMustRun(t, opts{dir: dir}, escPyArgs(flags, pyScript())...)
		if strings.Contains(r.stdout, "OBH-OPENED") || strings.Contains(r.stdout, content) {
			t.Errorf("ESCAPE: open_by_handle_at with --cap-add ALL opened the host secret %s\n%s", secret, r)
		}
		if len(escLinesWith(r.stdout, "obh ")) == 0 {
			t.Errorf("open_by_handle_at was not attempted\n%s", r)
		}
	})
}

// ---------------------------------------------------------------------------
// 5. Write read-only paths.

func TestEscapeWriteReadOnlyPaths(t *testing.T) {
	t.Parallel()
	hostName, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	escForModes(t, []string{"default", "read-only", "rootfs", "rootfs-ro"}, func(t *testing.T, m escMode) {
		rnd := randHex(8)
		type target struct{ path, value string }
		targets := []target{
			{"/proc/sys/kernel/hostname", "evil-" + rnd},
			{"/proc/sys/kernel/domainname", "evil-" + rnd},
			{"/proc/sysrq-trigger", "h"},
		}
		for _, name := range []string{"uevent_helper", "rcu_expedited", "rcu_normal", "profiling"} {
			p := "/sys/kernel/" + name
			if b, err := os.ReadFile(p); err == nil {
				// The host's own value: even a successful write would change nothing.
				targets = append(targets, target{p, strings.TrimSpace(string(b))})
			}
		}
		var roRoot []string
		if strings.Contains(strings.Join(m.flags, " "), "--read-only") {
			for _, d := range []string{"/usr", "/etc", "", "/bin", "/var"} {
				p := d + "/escape-ro-" + rnd
				roRoot = append(roRoot, p)
				targets = append(targets, target{p, "x"})
				t.Cleanup(func() { os.Remove(p) })
			}
		}
		var before map[string]string
		if m.rootfs != "" {
			before = snapshotTree(t, m.rootfs)
		}
		script := escWriteFn
		var paths []string
		for _, tg := range targets {
			script += fmt.Sprintf("w '%s' '%s'\n", tg.path, tg.value)
			paths = append(paths, tg.path)
		}
		r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, script)...)
		escCheckWrites(t, r, paths, func(p string) bool { return !exists(p) && !slices.Contains(roRoot, p) })
		for _, p := range roRoot {
			if msg, ok := escField(r.stdout, "DENIED "+p); ok && !strings.Contains(msg, "Read-only file system") {
				t.Errorf("--read-only: writing %s should fail with EROFS, got %q", p, msg)
			}
			if m.rootfs == "" && exists(p) {
				t.Errorf("ESCAPE: %s exists on the host", p)
			}
		}
		if h, _ := os.Hostname(); h != hostName {
			t.Errorf("ESCAPE: the host's hostname changed from %q to %q", hostName, h)
		}
		if m.rootfs != "" {
			if d := diffSnapshots(before, snapshotTree(t, m.rootfs)); len(d) > 0 {
				t.Errorf("ESCAPE: the rootfs dir changed on the host:\n%s", strings.Join(d, "\n"))
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 6. Reach the old root (the host's /) after pivot_root.

func TestEscapeOldRoot(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "stat")
	hostRoot := escHostRootMount(t)
	markerContent := "escape-oldroot-" + randHex(16)
	marker := escHomeFile(t, ".escape-oldroot-", markerContent)
	escForModes(t, []string{"default", "read-only", "rootfs"}, func(t *testing.T, m escMode) {
		script := strings.NewReplacer("@M@", marker).Replace(`M='@M@'
echo "ROOT: $(ls -a / | sort | tr '\n' ' ')"
echo "DOTDOT: $(cd /.. && ls -a | sort | tr '\n' ' ')"
echo "DOTDOT3: $(cd /../../.. && ls -a | sort | tr '\n' ' ')"
echo "SELFROOT: $(ls -a /proc/self/root/ | sort | tr '\n' ' ')"
if l=$(ls -a /proc/1/root/ 2>&1); then echo "INITROOT: $(echo "$l" | sort | tr '\n' ' ')"; else echo "INITROOT-DENIED: $l"; fi
echo "STAT: $(stat -L -c %d:%i / /.. /../.. /proc/self/root /proc/self/root/.. | tr '\n' ' ')"
for p in "$M" "/..$M" "/../../..$M" "/proc/self/root/../..$M" "/proc/1/root$M" "/proc/1/cwd$M"; do test -e "$p" && echo "FOUND $p"; done
echo "MARK: $(cat /../../marker 2>/dev/null)"
echo ---
cat /proc/self/mountinfo
`)
		r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, script)...)
		out := escSection(r.stdout, 0)
		root, _ := escField(out, "ROOT")
		if root == "" {
			t.Fatalf("no listing of / inside\n%s", r)
		}
		for _, k := range []string{"DOTDOT", "DOTDOT3", "SELFROOT"} {
			if v, _ := escField(out, k); v != root {
				t.Errorf("ESCAPE?: %s lists %q, but / lists %q", k, v, root)
			}
		}
		if v, ok := escField(out, "INITROOT"); ok && v != root {
			t.Errorf("ESCAPE?: /proc/1/root lists %q, but / lists %q", v, root)
		}
		if st, _ := escField(out, "STAT"); len(slices.Compact(strings.Fields(st))) != 1 {
			t.Errorf("ESCAPE?: /, /.., /../.., /proc/self/root and /proc/self/root/.. should all be the same inode: %q", st)
		}
		if found := escLinesWith(out, "FOUND "); len(found) > 0 {
			t.Errorf("ESCAPE: the host marker %s is reachable inside:\n%s", marker, strings.Join(found, "\n"))
		}
		if m.rootfs != "" {
			if v, _ := escField(out, "MARK"); v != m.marker {
				t.Errorf("/../../marker inside --rootfs should be the rootfs's marker %q, got %q", m.marker, v)
			}
		}
		ms, err := parseMountinfo(escSection(r.stdout, 1))
		if err != nil {
			t.Fatal(err)
		}
		atRoot := 0
		for _, e := range ms {
			if e.mountPoint == "/" {
				atRoot++
			}
			if e.majMin == hostRoot.majMin && e.root == hostRoot.root {
				t.Errorf("ESCAPE: the host's root filesystem (%s %s) is mounted inside at %s", e.majMin, e.root, e.mountPoint)
			}
			if !strings.HasPrefix(e.mountPoint, "/") {
				t.Errorf("mount point outside the root inside: %q", e.mountPoint)
			}
		}
		if atRoot != 1 {
			t.Errorf("want exactly one mount at / inside, got %d", atRoot)
		}
		if !m.python {
			return
		}
		// The classic chroot escape (CAP_SYS_CHROOT is in the default set):
		// chroot into a subdirectory, keep a directory fd outside it, climb.
		py := strings.NewReplacer("@M@", marker).Replace(`
import os
st = os.stat("/")
print("BEFORESTAT: %d:%d" % (st.st_dev, st.st_ino))
os.makedirs("/tmp/escjail", exist_ok=True)
fd = os.open("/", os.O_RDONLY)
os.chroot("/tmp/escjail")
os.fchdir(fd)
for _ in range(64):
    os.chdir("..")
os.chroot(".")
print("CHROOT: " + " ".join(sorted(os.listdir("/") + [".", ".."])))
print("CHROOTMARK: %s" % os.path.exists("@M@"))
st = os.stat("/")
print("CHROOTSTAT: %d:%d" % (st.st_dev, st.st_ino))
`)
		r = escMustRun(t, opts{dir: tempDir(t)}, escPyArgs(m.flags, py)...)
		if v, _ := escField(r.stdout, "CHROOTMARK"); v != "False" {
			t.Errorf("ESCAPE: after the chroot escape the host marker %s is reachable\n%s", marker, r)
		}
		if v, _ := escField(r.stdout, "CHROOT"); v != strings.Join(slices.Sorted(slices.Values(strings.Fields(root))), " ") {
			t.Errorf("ESCAPE?: after the chroot escape / lists %q, the sandbox's / is %q", v, root)
		}
		// Device numbers differ between runs: compare within this one.
		st, _ := escField(r.stdout, "BEFORESTAT")
		if v, _ := escField(r.stdout, "CHROOTSTAT"); v == "" || v != st {
			t.Errorf("ESCAPE?: after the chroot escape / is %q, the sandbox's / is %q", v, st)
		}
	})
}

// ---------------------------------------------------------------------------
// 7. Remount, unmount the masks, mount anew.

func TestEscapeMount(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "mount")
	escRequireTool(t, "umount")
	mountScript := escTryFn + `cat /proc/self/mountinfo
echo ---
try remount-proc-sys mount -o remount,rw /proc/sys
try remount-bind-proc-sys mount -o remount,bind,rw /proc/sys
try remount-sys mount -o remount,rw /sys
try remount-root mount -o remount,rw /
try umount-keys umount /proc/keys
try umount-lazy-timer-list umount -l /proc/timer_list
try umount-kcore umount /proc/kcore
try umount-acpi umount /proc/acpi
try umount-sys-firmware umount /sys/firmware
try mount-proc mount -t proc proc /mnt
try mount-sysfs mount -t sysfs sys /mnt
try mount-bind-root mount -o bind / /mnt
try mount-rbind-proc mount -o rbind /proc /mnt
try mount-tmpfs mount -t tmpfs none /mnt
try mount-devpts mount -t devpts none /mnt
echo ---
echo "KEYS: $(wc -c < /proc/keys)"
echo "TIMER: $(wc -c < /proc/timer_list)"
if test -e /proc/kcore; then echo "KCORE: $(wc -c < /proc/kcore 2>/dev/null)"; else echo "KCORE: 0"; fi
echo "ACPI: $(ls -A /proc/acpi | wc -l)"
echo ---
cat /proc/self/mountinfo
`
	labels := []string{"remount-proc-sys", "remount-bind-proc-sys", "remount-sys", "remount-root", "umount-keys",
		"umount-lazy-timer-list", "umount-kcore", "umount-acpi", "umount-sys-firmware", "mount-proc", "mount-sysfs",
		"mount-bind-root", "mount-rbind-proc", "mount-tmpfs", "mount-devpts"}
	escForModes(t, []string{"default", "read-only", "rootfs"}, func(t *testing.T, m escMode) {
		r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, mountScript)...)
		escCheckTries(t, r, labels)
		after := escSection(r.stdout, 2)
		for _, k := range []string{"KEYS", "TIMER", "KCORE", "ACPI"} {
			if v, _ := escField(after, k); strings.TrimSpace(v) != "0" {
				t.Errorf("ESCAPE: masked /proc entry %s is no longer empty after the attempts: %q", k, v)
			}
		}
		ms, err := parseMountinfo(escSection(r.stdout, 3))
		if err != nil {
			t.Fatal(err)
		}
		beforeLines, afterLines := lines(escSection(r.stdout, 0)), lines(escSection(r.stdout, 3))
		for _, l := range afterLines {
			if !slices.Contains(beforeLines, l) {
				t.Errorf("ESCAPE: a mount appeared or changed inside: %s", l)
			}
		}
		for _, l := range beforeLines {
			if !slices.Contains(afterLines, l) {
				t.Errorf("ESCAPE: a mount disappeared or changed inside: %s", l)
			}
		}
		if e, ok := lastMountAt(ms, "/proc/sys"); !ok || !slices.Contains(e.options, "ro") {
			t.Errorf("ESCAPE: /proc/sys is no longer mounted read-only: %+v", e)
		}
		if e, ok := lastMountAt(ms, "/sys"); !ok || !slices.Contains(e.options, "ro") {
			t.Errorf("ESCAPE: /sys is no longer mounted read-only: %+v", e)
		}
		if _, ok := lastMountAt(ms, "/proc/keys"); !ok {
			t.Errorf("ESCAPE: the mask on /proc/keys is gone")
		}
		if !m.python {
			return
		}
		nr := escSyscalls(t)
		py := escPyPrelude + strings.NewReplacer("@FSOPEN@", strconv.Itoa(nr["fsopen"]),
			"@OPENTREE@", strconv.Itoa(nr["open_tree"])).Replace(`
r, e = sc(@FSOPEN@, ctypes.c_char_p(b"proc"), 0)
print("fsopen-proc %d %d" % (r, e))
r, e = sc(@FSOPEN@, ctypes.c_char_p(b"tmpfs"), 0)
print("fsopen-tmpfs %d %d" % (r, e))
r, e = sc(@OPENTREE@, -100, ctypes.c_char_p(b"/"), 1 | 0x8000)
print("open_tree-clone-root %d %d" % (r, e))
r, e = sc(@OPENTREE@, -100, ctypes.c_char_p(b"/proc"), 1)
print("open_tree-clone-proc %d %d" % (r, e))
class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]
a = MountAttr(0, 1, 0, 0)
r, e = sc(442, -100, ctypes.c_char_p(b"/proc/sys"), 0, ctypes.byref(a), ctypes.sizeof(a))
print("mount_setattr-rw-proc-sys %d %d" % (r, e))
print("end")
`)
		r = escMustRun(t, opts{dir: tempDir(t)}, escPyArgs(m.flags, py)...)
		for _, k := range []string{"fsopen-proc", "fsopen-tmpfs", "open_tree-clone-root", "open_tree-clone-proc", "mount_setattr-rw-proc-sys"} {
			if v, ok := escField(r.stdout, k); !ok || v != fmt.Sprintf("-1 %d", syscall.EPERM) {
				t.Errorf("%s inside should fail with EPERM, got %q\n%s", k, v, r)
			}
		}
	})
	t.Run("read-only bind", func(t *testing.T) {
		t.Parallel()
		src := tempDir(t)
		writeFile(t, filepath.Join(src, "file"), "original", 0o644)
		before := snapshotTree(t, src)
		dst := "/srv/escape-ro-" + randHex(6)
		script := escTryFn + escWriteFn + strings.NewReplacer("@D@", dst).Replace(`
w @D@/file changed
w @D@/new x
try rm rm -f @D@/file
try remount-rw mount -o remount,bind,rw @D@
w @D@/file changed-after-remount
try umount umount @D@
`)
		r := escMustRun(t, opts{dir: tempDir(t)}, sh([]string{"--bind", src + ":" + dst + ":ro"}, script)...)
		escCheckTries(t, r, []string{"rm", "remount-rw", "umount"})
		escCheckWrites(t, r, []string{dst + "/file", dst + "/new"}, nil)

		if d := diffSnapshots(before, snapshotTree(t, src)); len(d) > 0 {
			t.Errorf("ESCAPE: a read-only bind's source changed on the host:\n%s", strings.Join(d, "\n"))
		}
	})
}

// ---------------------------------------------------------------------------
// 8. Write /proc/sys and /sys knobs that act on the whole host.

func TestEscapeProcSysWrite(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "mount")
	type knob struct{ path, value string }
	var knobs []knob
	hostValues := map[string]string{}
	for _, p := range []string{"/proc/sys/kernel/sysrq", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
		"/sys/kernel/uevent_helper", "/proc/sys/vm/panic_on_oom", "/proc/sys/kernel/panic"} {
		b, err := os.ReadFile(p)
		v := strings.TrimSpace(string(b))
		if err != nil {
			v = "1" // absent on this kernel: the write must fail anyway
		}
		hostValues[p] = string(b)
		// The host's own value: a write that got through would change nothing.
		knobs = append(knobs, knob{p, v})
	}
	binfmtName := "escape-" + randHex(8)
	const register = "/proc/sys/fs/binfmt_misc/register"
	for _, variant := range []struct {
		name  string
		flags []string
	}{
		{"default", nil},
		{"cap-add ALL", []string{"--cap-add", "ALL"}},
		{"rootfs", nil},
	} {
		t.Run(variant.name, func(t *testing.T) {
			t.Parallel()
			flags := variant.flags
			if variant.name == "rootfs" {
				flags = escModes(t, "rootfs")[0].flags
			}
			// With every capability, the mounts can be made writable: the kernel's
			// own checks (sysctls owned by the host's root) must still refuse.
			script := escWriteFn + `mount -o remount,rw /proc/sys 2>/dev/null && echo "REMOUNTED /proc/sys"
mount -o remount,rw /sys 2>/dev/null && echo "REMOUNTED /sys"
# binfmt_misc: the host's instance must refuse (an invalid registration: a
# write that passed the permission checks would fail with EINVAL and register
# nothing); an instance mounted in the sandbox's own user namespace (kernel
# >= 6.7, CAP_SYS_ADMIN) is private: a registration there must not reach the host.
if mount -t binfmt_misc none /proc/sys/fs/binfmt_misc 2>/dev/null; then
  echo "MOUNTED binfmt_misc"
  w ` + register + ` ':` + binfmtName + `:E::escx::/bin/true:'
  test -e /proc/sys/fs/binfmt_misc/` + binfmtName + ` && echo "REGISTERED-PRIVATE"
else
  w ` + register + ` escape-invalid
fi
`
			var paths []string
			for _, k := range knobs {
				script += fmt.Sprintf("w '%s' '%s'\n", k.path, k.value)
				paths = append(paths, k.path)
			}
			r := escMustRun(t, opts{dir: tempDir(t)}, sh(flags, script)...)
			t.Logf("mount changes inside (allowed only with CAP_SYS_ADMIN): %q", append(escLinesWith(r.stdout, "REMOUNTED"), escLinesWith(r.stdout, "MOUNTED")...))
			if !slices.Contains(lines(r.stdout), "MOUNTED binfmt_misc") {
				paths = append(paths, register)
			}
			escCheckWrites(t, r, paths, func(p string) bool { return !exists(p) })
			if exists("/proc/sys/fs/binfmt_misc/" + binfmtName) {
				t.Errorf("ESCAPE: the binfmt_misc handler %s registered inside exists on the host", binfmtName)
			}
			for p, v := range hostValues {
				if b, _ := os.ReadFile(p); string(b) != v {
					t.Errorf("ESCAPE: host %s changed from %q to %q", p, v, b)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 9. Read kernel addresses.

func TestEscapeKernelAddresses(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "awk")
	script := `
echo "KALLSYMS-LINES: $(wc -l < /proc/kallsyms 2>/dev/null)"
awk '$1 !~ /^0+$/ { print "NONZERO " $0 }' /proc/kallsyms 2>/dev/null | head -3
if test -e /proc/kcore; then echo "KCORE: $(head -c 4096 /proc/kcore 2>/dev/null | wc -c)"; else echo "KCORE: 0"; fi
if test -r /proc/modules; then awk '$6 ~ /^0x/ && $6 !~ /^0x0+$/ { print "NONZERO-MODULE " $0 }' /proc/modules | head -3; fi
if (cat /proc/self/stack) >/dev/null 2>&1; then echo "STACK-READ"; else echo "STACK-DENIED"; fi
echo end
`
	escForModes(t, []string{"default", "rootfs"}, func(t *testing.T, m escMode) {
		r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, script)...)
		if nz := escLinesWith(r.stdout, "NONZERO"); len(nz) > 0 {
			t.Errorf("ESCAPE: kernel addresses are visible inside:\n%s", strings.Join(nz, "\n"))
		}
		if v, _ := escField(r.stdout, "KCORE"); v != "0" {
			t.Errorf("ESCAPE: /proc/kcore is readable inside (%s bytes)", v)
		}
		if slices.Contains(lines(r.stdout), "STACK-READ") {
			t.Errorf("ESCAPE: /proc/self/stack (kernel stack addresses) is readable inside")
		}
		t.Logf("/proc/kallsyms lines inside: %s (all addresses zero or unreadable)", func() string { v, _ := escField(r.stdout, "KALLSYMS-LINES"); return v }())
	})
}

// ---------------------------------------------------------------------------
// 10. Create device nodes.

func TestEscapeMknod(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "mknod")
	script := `
for n in sda:b:8:0 mem:c:1:1 kmsg:c:1:11 port:c:1:4; do
  name=${n%%:*}; rest=${n#*:}; typ=${rest%%:*}; rest=${rest#*:}; maj=${rest%%:*}; min=${rest#*:}
  for d in . /tmp /dev /dev/shm; do
    p=$d/esc-$name
    if msg=$(mknod "$p" $typ $maj $min 2>&1); then
      if (head -c1 "$p" >/dev/null) 2>/dev/null; then echo "OPENED $p"; else echo "CREATED-UNUSABLE $p"; fi
    else echo "DENIED $p: $msg"; fi
  done
done
echo end
`
	run := func(t *testing.T, flags []string) {
		dir := tempDir(t)
		r := escMustRun(t, opts{dir: dir}, sh(flags, script)...)
		if opened := escLinesWith(r.stdout, "OPENED "); len(opened) > 0 {
			t.Errorf("ESCAPE: a device node made inside could be opened:\n%s", strings.Join(opened, "\n"))
		}
		if len(escLinesWith(r.stdout, "DENIED "))+len(escLinesWith(r.stdout, "CREATED-UNUSABLE ")) != 16 {
			t.Errorf("want 16 denied or unusable mknod attempts\n%s", r)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if info, err := e.Info(); err == nil && info.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0 {
				t.Errorf("ESCAPE: a device node %s (%v) was created in the shared directory on the host", e.Name(), info.Mode())
			}
		}
	}
	for _, mode := range []string{"default", "rootfs"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			run(t, escModes(t, mode)[0].flags)
		})
	}
	t.Run("cap-add ALL", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"--cap-add", "ALL"})
	})
}

// ---------------------------------------------------------------------------
// 11. TIOCSTI: push input into the caller's terminal.

func TestEscapeTIOCSTI(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	master, slave := escOpenPty(t)
	// Non-canonical input: an injected byte would be counted by TIOCINQ at once.
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ICANON
	tio.Lflag |= unix.ECHO
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	script := escPyPrelude + `
import fcntl, termios
def sti(label, fd):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"Z")
        print("INJECTED " + label)
    except OSError as e:
        print("sti %s %d" % (label, e.errno))
sti("stdin", 0)
try:
    fd = os.open("/dev/tty", os.O_RDWR)
    print("DEVTTY-OPENED")
    sti("devtty", fd)
except OSError as e:
    print("devtty %d" % e.errno)
pid = os.fork()
if pid == 0:
    os.setsid()
    for force in (0, 1):
        try:
            fcntl.ioctl(0, termios.TIOCSCTTY, force)
            print("SCTTY-OK %d" % force)
        except OSError as e:
            print("sctty%d %d" % (force, e.errno))
    sti("after-setsid", 0)
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
print("end")
`
	p := start(t, opts{timeout: escTimeout, prepare: func(c *exec.Cmd) {
		c.Stdin = slave
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}}, escPyArgs([]string{"--tty=never"}, script)...)
	r := p.wait()
	wantCode(t, r, 0)
	for _, bad := range []string{"INJECTED", "DEVTTY-OPENED", "SCTTY-OK"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("ESCAPE: %s\n%s", bad, r)
		}
	}
	for _, k := range []string{"sti stdin", "sti after-setsid"} {
		if v, ok := escField(r.stdout, k); !ok || (v != strconv.Itoa(int(syscall.EPERM)) && v != strconv.Itoa(int(syscall.EIO))) {
			t.Errorf("TIOCSTI (%s) should fail with EPERM (or EIO with dev.tty.legacy_tiocsti=0), got %q\n%s", k, v, r)
		}
	}
	if v, ok := escField(r.stdout, "devtty"); !ok || v != strconv.Itoa(int(syscall.ENXIO)) {
		t.Errorf("opening /dev/tty inside --tty=never should fail with ENXIO (no controlling terminal), got %q", v)
	}
	n, err := unix.IoctlGetInt(int(slave.Fd()), unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("ESCAPE: %d byte(s) were injected into the caller's terminal input", n)
	}
	_ = master.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	echoed, _ := io.ReadAll(master)
	if strings.Contains(string(echoed), "Z") {
		t.Errorf("ESCAPE: the terminal echoed injected input: %q", echoed)
	}
}

// ---------------------------------------------------------------------------
// 12. Read an fd or the working directory inherited from the caller.

func TestEscapeInheritedFD(t *testing.T) {
	t.Parallel()
	type setup struct {
		secretContent, secretName, hidden, cwdSecretContent, cwdSecretName string
		extra                                                              []*os.File
	}
	mk := func(t *testing.T) setup {
		s := setup{secretContent: "fd-secret-" + randHex(16), secretName: "secret-" + randHex(6),
			cwdSecretContent: "cwd-secret-" + randHex(16), cwdSecretName: "cwd-secret-" + randHex(6)}
		s.hidden = slashTmpDir(t) // /tmp is a fresh tmpfs inside: hidden
		writeFile(t, filepath.Join(s.hidden, s.secretName), s.secretContent, 0o600)
		f, err := os.Open(filepath.Join(s.hidden, s.secretName))
		if err != nil {
			t.Fatal(err)
		}
		d, err := os.Open(s.hidden)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close(); d.Close() })
		s.extra = []*os.File{f, d}
		return s
	}
	script := func(s setup) string {
		// No pipeline for the listing: a shell holds the pipe's fds while it
		// starts the commands of a pipeline.
		return strings.NewReplacer("@N@", s.secretName, "@C@", s.cwdSecretName).Replace(`
ls /proc/$$/fd
echo ---
readlink /proc/self/cwd
echo ---
pwd -P
echo ---
for p in /proc/[0-9]*; do
  for f in $p/fd/[3-9] $p/fd/[1-9][0-9]*; do
    test -e "$f" || continue
    echo "FD $f -> $(readlink $f 2>&1)"
    timeout 2 cat "$f" 2>/dev/null | head -c 200; echo
    timeout 2 cat "$f/@N@" 2>/dev/null
  done
  timeout 2 cat "$p/cwd/@C@" 2>/dev/null
done
(cat <&3) 2>/dev/null
(ls -a /proc/self/fd/4/ <&4) 2>/dev/null
echo end
`)
	}
	check := func(t *testing.T, s setup, r result, wantFDs []string, wantCwd string) {
		t.Helper()
		wantCode(t, r, 0)
		if got := slices.Sorted(slices.Values(lines(escSection(r.stdout, 0)))); !slices.Equal(got, wantFDs) {
			t.Errorf("ESCAPE?: the shell's fds inside are %q, want %q\n%s", got, wantFDs, r)
		}
		if wantCwd != "" {
			for i, what := range []string{"readlink /proc/self/cwd", "pwd -P"} {
				if got := strings.TrimSpace(escSection(r.stdout, i+1)); got != wantCwd {
					t.Errorf("%s inside = %q, want %q", what, got, wantCwd)
				}
			}
		}
		all := r.stdout + r.stderr
		for _, leak := range []string{s.secretContent, s.secretName, s.cwdSecretContent, s.hidden} {
			if strings.Contains(all, leak) {
				t.Errorf("ESCAPE: %q (an inherited fd's or the caller's cwd's content) is visible inside\n%s", leak, r)
			}
		}
	}
	escForModes(t, []string{"default", "read-only", "rootfs"}, func(t *testing.T, m escMode) {
		s := mk(t)
		dir := tempDir(t)
		writeFile(t, filepath.Join(dir, "visible"), "shared", 0o644)
		r := escRun(t, opts{dir: dir, extra: s.extra}, sh(m.flags, script(s))...)
		check(t, s, r, []string{"0", "1", "2"}, dir)

		// The caller's cwd is not shared: nothing of it may be reachable.
		cwd := tempDir(t)
		writeFile(t, filepath.Join(cwd, s.cwdSecretName), s.cwdSecretContent, 0o600)
		flags := append(slices.Clone(m.flags), "--cwd=none")
		r = escRun(t, opts{dir: cwd, extra: s.extra}, sh(flags, script(s))...)
		check(t, s, r, []string{"0", "1", "2"}, "/")
	})
	// Positive control: --preserve-fds passes exactly the fds asked for, so
	// the method above does detect an inherited fd.
	t.Run("preserve-fds control", func(t *testing.T) {
		t.Parallel()
		s := mk(t)
		dir := tempDir(t)
		r := escRun(t, opts{dir: dir, extra: s.extra}, sh([]string{"--preserve-fds", "1"}, "ls /proc/$$/fd; echo ---; cat <&3")...)
		wantCode(t, r, 0)
		if got := slices.Sorted(slices.Values(lines(escSection(r.stdout, 0)))); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
			t.Errorf("--preserve-fds 1: the shell's fds inside are %q, want [0 1 2 3]\n%s", got, r)
		}
		if strings.TrimSpace(escSection(r.stdout, 1)) != s.secretContent {
			t.Errorf("--preserve-fds 1: fd 3 should read the file the caller passed\n%s", r)
		}
		// One more than the caller passed is not the caller's, even if
		// `sandbox` itself has something open there (the Go runtime kept a
		// cgroup file open at fd 4 until it was told not to).
		n := len(s.extra) + 1
		r = escRun(t, opts{dir: dir, extra: s.extra}, sh([]string{"--preserve-fds", strconv.Itoa(n)}, "ls -l /proc/$$/fd")...)
		wantCode(t, r, exitSandbox)
		if want := fmt.Sprintf("file descriptor %d is not open", 2+n); !strings.Contains(r.stderr, want) {
			t.Errorf("--preserve-fds %d with fds 3..%d open: want %q, got %s", n, 1+n, want, r)
		}
	})
}

// ---------------------------------------------------------------------------
// 13. Escalate through a setuid-root binary (or file capabilities).

func TestEscapeSetuid(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"setpriv", "su", "newuidmap", "id", "cp", "chmod"} {
		escRequireTool(t, tool)
	}
	dir := tempDir(t)
	fcaps := ""
	if findHelper("setcap") {
		// fcat: capabilities outside the bounding set (the kernel refuses the
		// exec); fcat2: inside it (no_new_privs must keep them from the exec).
		fcaps = `cp /bin/cat ./fcat && setcap cap_dac_read_search,cap_sys_admin,cap_setuid+ep ./fcat && echo FCAP-SET
echo "FCAT: $(setpriv --reuid 1000 --regid 1000 --clear-groups ./fcat /proc/self/status 2>&1 | grep -E '^(Uid|CapPrm|CapEff):|execute' | tr '\t\n' '  '; echo rc=$?)"
cp /bin/cat ./fcat2 && setcap cap_dac_override,cap_setuid,cap_chown+ep ./fcat2 && echo FCAP2-SET
setpriv --reuid 1000 --regid 1000 --clear-groups ./fcat2 /proc/self/status | grep -E '^(Uid|CapPrm|CapEff):' | sed 's/^/FCAT2-/'
`
	}
	script := `grep NoNewPrivs /proc/self/status
cp /usr/bin/id ./sid && chmod 4755 ./sid && test -u ./sid && echo SETUID-SET
cp /bin/cat ./scat && chmod 4755 ./scat
echo "SID: $(setpriv --reuid 1000 --regid 1000 --clear-groups ./sid 2>&1)"
setpriv --reuid 1000 --regid 1000 --clear-groups ./scat /proc/self/status | grep -E '^(Uid|CapPrm|CapEff|NoNewPrivs):' | sed 's/^/SCAT-/'
echo "SU: $(setpriv --reuid 1000 --regid 1000 --clear-groups su -c id root </dev/null 2>&1; echo rc=$?)"
echo "NEWUIDMAP-USER: $(setpriv --reuid 1000 --regid 1000 --clear-groups newuidmap $$ 0 0 1 2>&1; echo rc=$?)"
echo "NEWUIDMAP-ROOT: $(newuidmap $$ 0 0 1 2>&1; echo rc=$?)"
` + fcaps + "echo end\n"
	r := escMustRun(t, opts{dir: dir}, sh(nil, script)...)
	if v, _ := escField(r.stdout, "NoNewPrivs"); v != "1" {
		t.Errorf("NoNewPrivs inside = %q, want 1", v)
	}
	if !slices.Contains(lines(r.stdout), "SETUID-SET") {
		t.Fatalf("could not make the setuid copy inside (the attack did not run)\n%s", r)
	}
	if v, _ := escField(r.stdout, "SID"); !strings.Contains(v, "uid=1000") || strings.Contains(v, "euid=0") {
		t.Errorf("ESCAPE: a setuid-root copy of id run by uid 1000 inside: %q (want no euid=0)", v)
	}
	if v, _ := escField(r.stdout, "SCAT-Uid"); len(strings.Fields(v)) != 4 || strings.Join(slices.Compact(strings.Fields(v)), "") != "1000" {
		t.Errorf("ESCAPE: a setuid-root copy of cat run by uid 1000 inside has uids %q (want all 1000)\n%s", v, r)
	}
	for _, k := range []string{"SCAT-CapPrm", "SCAT-CapEff"} {
		if v, _ := escField(r.stdout, k); strings.Trim(v, "0") != "" || v == "" {
			t.Errorf("ESCAPE: the setuid-root copy run by uid 1000 got %s = %q", k, v)
		}
	}
	if v, _ := escField(r.stdout, "SU"); strings.Contains(v, "uid=0") || strings.HasSuffix(v, "rc=0") {
		t.Errorf("ESCAPE: `su -c id root` as uid 1000 inside: %q", v)
	}
	for _, k := range []string{"NEWUIDMAP-USER", "NEWUIDMAP-ROOT"} {
		if v, _ := escField(r.stdout, k); strings.HasSuffix(v, "rc=0") || v == "" {
			t.Errorf("ESCAPE: the setuid-root newuidmap wrote a map from inside (%s): %q", k, v)
		}
	}
	if fcaps != "" {
		if !slices.Contains(lines(r.stdout), "FCAP-SET") || !slices.Contains(lines(r.stdout), "FCAP2-SET") {
			t.Errorf("setcap inside failed: the file-capability attack did not run\n%s", r)
		}
		// Either the exec is refused (EPERM) or it runs without capabilities.
		v, _ := escField(r.stdout, "FCAT")
		if !strings.Contains(v, "Operation not permitted") {
			f := strings.Fields(v)
			for i := range f {
				if (f[i] == "CapPrm:" || f[i] == "CapEff:") && i+1 < len(f) && strings.Trim(f[i+1], "0") != "" {
					t.Errorf("ESCAPE: a copy with file capabilities (outside the bounding set) run by uid 1000 got %s %s", f[i], f[i+1])
				}
			}
		}
		// no_new_privs should also keep file capabilities from the exec
		// (prctl(2)); some kernels grant them anyway. Within the sandbox
		// that is no escape as long as they stay inside the bounding set and
		// the user namespace: check both.
		for _, k := range []string{"FCAT2-CapPrm", "FCAT2-CapEff"} {
			v, _ := escField(r.stdout, k)
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Errorf("no %s in the output\n%s", k, r)
				continue
			}
			if n != 0 {
				t.Logf("note: this kernel grants file capabilities despite no_new_privs (%s = %#x for uid 1000 inside)", k, n)
			}
			if n&^escDockerCaps != 0 {
				t.Errorf("ESCAPE: file capabilities gave uid 1000 inside capabilities outside the bounding set: %s = %#x", k, n)
			}
		}
		// The capability xattr written inside must be namespaced (v3, root id
		// = the caller): a v2 one would give the file its capabilities on the host.
		for _, f := range []string{"fcat", "fcat2"} {
			buf := make([]byte, 64)
			n, err := unix.Getxattr(filepath.Join(dir, f), "security.capability", buf)
			if err != nil {
				continue
			}
			magic := uint32(buf[0]) | uint32(buf[1])<<8 | uint32(buf[2])<<16 | uint32(buf[3])<<24
			if magic&0xff000000 != 0x03000000 || n < 24 {
				t.Errorf("ESCAPE: %s made inside has a host-wide (non-namespaced, revision %#x) file capability on the host", f, magic>>24)
				continue
			}
			rootid := uint32(buf[20]) | uint32(buf[21])<<8 | uint32(buf[22])<<16 | uint32(buf[23])<<24
			if int(rootid) != os.Getuid() {
				t.Errorf("ESCAPE: %s made inside carries file capabilities for host root id %d (want the caller's uid %d)", f, rootid, os.Getuid())
			}
		}
	}
}

// ---------------------------------------------------------------------------
// 14. Share the caller's keyring.

func TestEscapeKeyring(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	binary(t) // fail here, not in the goroutine, when the binary is missing
	nr := escSyscalls(t)
	rnd := randHex(10)
	ringName, desc, secret := "sbx-escape-ring-"+rnd, "sbx-escape-key-"+rnd, "sbx-escape-payload-"+rnd
	type outcome struct {
		ring, key int
		err       error
		res       result
	}
	done := make(chan outcome, 1)
	dir := tempDir(t)
	go func() {
		// Keyrings belong to a thread's credentials: this thread gets a new
		// session keyring with the key, starts the sandbox (fork happens on
		// this thread) and is never unlocked, so it dies with its keyring.
		runtime.LockOSThread()
		var o outcome
		defer func() { done <- o }()
		if o.ring, o.err = unix.KeyctlJoinSessionKeyring(ringName); o.err != nil {
			o.err = fmt.Errorf("joining a new session keyring: %w", o.err)
			return
		}
		if o.key, o.err = unix.AddKey("user", desc, []byte(secret), unix.KEY_SPEC_SESSION_KEYRING); o.err != nil {
			o.err = fmt.Errorf("add_key: %w", o.err)
			return
		}
		defer unix.KeyctlInt(unix.KEYCTL_INVALIDATE, o.key, 0, 0, 0)
		if found, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", desc, 0); err != nil || found != o.key {
			o.err = fmt.Errorf("the key is not found in the host session keyring (control): %d %v", found, err)
			return
		}
		script := escPyPrelude + strings.NewReplacer("@NR@", strconv.Itoa(nr["keyctl"]), "@RING@", strconv.Itoa(o.ring),
			"@KEY@", strconv.Itoa(o.key), "@DESC@", desc, "@RINGNAME@", ringName).Replace(`
K = @NR@
buf = ctypes.create_string_buffer(4096)
def out(label, r, e, data=False):
    s = "%s %d %d" % (label, r, e)
    if data and r > 0:
        s += " " + repr(buf.raw[:min(r, 4096)])
    print(s)
print("prockeys %d" % len(open("/proc/keys").read()))
r, e = sc(K, 0, -3, 0); out("getid", r, e)
r, e = sc(K, 10, -3, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"@DESC@"), 0); out("search", r, e)
r, e = sc(K, 11, @KEY@, buf, 4096); out("read-key", r, e, True)
r, e = sc(K, 1, ctypes.c_char_p(b"@RINGNAME@")); out("join", r, e)
r, e = sc(K, 10, -3, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"@DESC@"), 0); out("search-after-join", r, e)
r, e = sc(K, 6, @KEY@, buf, 4096); out("describe-key", r, e, True)
r, e = sc(K, 11, @RING@, buf, 4096); out("read-ring", r, e, True)
r, e = sc(K, 8, -3, @KEY@); out("link-key", r, e)
print("end")
`)
		p := start(t, opts{dir: dir, timeout: escTimeout}, escPyArgs(nil, script)...)
		o.res = p.wait()
	}()
	o := <-done
	requireOrSkip(t, o.err == nil, fmt.Sprintf("a usable kernel keyring on the host: %v", o.err))
	r := o.res
	wantCode(t, r, 0)
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("ESCAPE: the host key's payload is readable inside\n%s", r)
	}
	eperm := strconv.Itoa(int(syscall.EPERM))
	t.Run("session keyring", func(t *testing.T) {
		if v, _ := escField(r.stdout, "prockeys"); v != "0" {
			t.Errorf("/proc/keys inside should be empty (masked), has %s bytes", v)
		}
		for _, k := range []string{"getid", "join"} {
			v, _ := escField(r.stdout, k)
			f := strings.Fields(v)
			if len(f) != 2 || (f[1] != eperm && f[0] == strconv.Itoa(o.ring)) || (f[1] != eperm && f[1] != "0") {
				t.Errorf("ESCAPE?: keyctl %s inside: want EPERM (seccomp) or a keyring other than the host's %d, got %q", k, o.ring, v)
			}
		}
		for _, k := range []string{"search", "search-after-join", "read-key"} {
			if v, _ := escField(r.stdout, k); !strings.HasPrefix(v, "-1 ") {
				t.Errorf("ESCAPE: keyctl %s inside found/read the host key: %q", k, v)
			}
		}
	})
	// By serial number the keys are not namespaced: only the seccomp filter
	// (keyctl → EPERM) keeps a payload that guessed a serial from describing
	// the caller's key or listing the caller's session keyring.
	t.Run("by serial (seccomp)", func(t *testing.T) {
		for _, k := range []string{"describe-key", "read-ring", "link-key"} {
			if v, _ := escField(r.stdout, k); v != "-1 "+eperm {
				t.Errorf("keyctl %s of the host's key %d / keyring %d inside: want \"-1 %s\" (EPERM, seccomp), got %q", k, o.key, o.ring, eperm, v)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 15. SysV IPC of the host.

func TestEscapeSysVIPC(t *testing.T) {
	t.Parallel()
	key := 0x5e5e0000 | int(escRandUint16())
	id, err := unix.SysvShmGet(key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	requireOrSkip(t, err == nil, fmt.Sprintf("SysV shared memory on the host (shmget key %#x): %v", key, err))
	t.Cleanup(func() { unix.SysvShmCtl(id, unix.IPC_RMID, nil) })
	hostShm, _ := os.ReadFile("/proc/sysvipc/shm")
	requireOrSkip(t, slices.Contains(strings.Fields(string(hostShm)), strconv.Itoa(key)), "the host's /proc/sysvipc/shm listing our segment (control)")
	escRequireTool(t, "ipcs")
	hexKey := fmt.Sprintf("0x%08x", key)
	escForModes(t, []string{"default", "rootfs"}, func(t *testing.T, m escMode) {
		script := "cat /proc/sysvipc/shm; echo ---\n"
		if m.rootfs == "" {
			script += "ipcs -m\n"
		}
		r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, script)...)
		for _, f := range strings.Fields(escSection(r.stdout, 0)) {
			if f == strconv.Itoa(key) {
				t.Errorf("ESCAPE: the host's shm segment (key %d) is listed in /proc/sysvipc/shm inside\n%s", key, r)
			}
		}
		if strings.Contains(strings.ToLower(r.stdout), hexKey) {
			t.Errorf("ESCAPE: `ipcs -m` inside lists the host's segment %s\n%s", hexKey, r)
		}
		if !m.python {
			return
		}
		py := escPyPrelude + strings.NewReplacer("@KEY@", strconv.Itoa(key), "@ID@", strconv.Itoa(id)).Replace(`
libc.shmat.restype = ctypes.c_void_p
ctypes.set_errno(0)
r = libc.shmat(@ID@, None, 0)
print("shmat %d %d" % (-1 if r in (None, ctypes.c_void_p(-1).value) else 0, ctypes.get_errno()))
ctypes.set_errno(0)
r = libc.shmget(@KEY@, 0, 0)
print("shmget %d %d" % (r, ctypes.get_errno()))
ctypes.set_errno(0)
r = libc.shmctl(@ID@, 0, None)
print("shmrmid %d %d" % (r, ctypes.get_errno()))
print("end")
`)
		r = escMustRun(t, opts{dir: tempDir(t)}, escPyArgs(m.flags, py)...)
		if v, _ := escField(r.stdout, "shmget"); v != fmt.Sprintf("-1 %d", syscall.ENOENT) {
			t.Errorf("ESCAPE?: shmget(%s) of the host's key inside: want -1 ENOENT, got %q", hexKey, v)
		}
		if v, _ := escField(r.stdout, "shmat"); !strings.HasPrefix(v, "-1 ") {
			t.Errorf("ESCAPE: shmat of the host's segment id %d succeeded inside: %q", id, v)
		}
		if v, _ := escField(r.stdout, "shmrmid"); !strings.HasPrefix(v, "-1 ") {
			t.Errorf("ESCAPE?: IPC_RMID of the host's segment id %d succeeded inside: %q", id, v)
		}
		var ds unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
			t.Errorf("ESCAPE: the host's shm segment is gone after the sandbox ran: %v", err)
		}
	})
}

// ---------------------------------------------------------------------------
// 16. Abstract and path unix sockets of the host.

func escUnixListener(t *testing.T, addr string) *atomic.Int32 {
	t.Helper()
	l, err := net.Listen("unix", addr)
	requireOrSkip(t, err == nil, fmt.Sprintf("listening on the unix socket %q: %v", addr, err))
	return countingServer(t, l, "leak")
}

func TestEscapeUnixSockets(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	name := "sbx-escape-" + randHex(10)
	abstract := escUnixListener(t, "@"+name)
	path := filepath.Join(slashTmpDir(t), "s.sock")
	pathConns := escUnixListener(t, path)
	script := strings.NewReplacer("@NAME@", name, "@PATH@", path).Replace(`
import os, socket
for label, addr in (("abstract", "\0@NAME@"), ("path", "@PATH@")):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(addr)
        print("CONNECTED-%s %r" % (label, s.recv(16)))
    except OSError as e:
        print("%s %d" % (label, e.errno))
print("pathexists %s" % os.path.exists("@PATH@"))
print("end")
`)
	r := escMustRun(t, opts{dir: tempDir(t)}, escPyArgs(nil, script)...)
	if strings.Contains(r.stdout, "CONNECTED") {
		t.Errorf("ESCAPE: a host unix socket was reachable inside\n%s", r)
	}
	if v, _ := escField(r.stdout, "abstract"); v != strconv.Itoa(int(syscall.ECONNREFUSED)) {
		t.Errorf("connecting to the host's abstract socket @%s inside: want ECONNREFUSED (own network namespace), got %q", name, v)
	}
	if v, _ := escField(r.stdout, "path"); v != strconv.Itoa(int(syscall.ENOENT)) {
		t.Errorf("connecting to the host's socket %s inside: want ENOENT (not visible), got %q", path, v)
	}
	if v, _ := escField(r.stdout, "pathexists"); v != "False" {
		t.Errorf("ESCAPE: %s is visible inside", path)
	}
	if n := abstract.Load() + pathConns.Load(); n != 0 {
		t.Errorf("ESCAPE: the host's listeners accepted %d connection(s) from inside", n)
	}
	// Control: with --net=host the abstract namespace is shared, so the
	// method above does detect a reachable socket.
	r = escMustRun(t, opts{dir: tempDir(t)}, escPyArgs([]string{"--net=host"}, script)...)
	if !strings.Contains(r.stdout, "CONNECTED-abstract b'leak'") {
		t.Errorf("control: with --net=host the abstract socket should be reachable\n%s", r)
	}
}

// ---------------------------------------------------------------------------
// 17. The host's loopback.

func TestEscapeHostLoopback(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	requireOrSkip(t, err == nil, fmt.Sprintf("listening on 127.0.0.1: %v", err))
	accepted := countingServer(t, l, "leak")
	port := l.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf(`
import socket
try:
    s = socket.create_connection(("127.0.0.1", %d), 2)
    print("CONNECTED %%r" %% s.recv(16))
except OSError as e:
    print("errno %%s" %% e.errno)
`, port)
	r := escMustRun(t, opts{dir: tempDir(t)}, escPyArgs(nil, script)...)
	if strings.Contains(r.stdout, "CONNECTED") || accepted.Load() != 0 {
		t.Errorf("ESCAPE: the host's 127.0.0.1:%d was reachable inside (--net=none)\n%s", port, r)
	}
	if v, _ := escField(r.stdout, "errno"); v != strconv.Itoa(int(syscall.ECONNREFUSED)) && v != strconv.Itoa(int(syscall.ENETUNREACH)) {
		t.Errorf("connecting to 127.0.0.1:%d inside: want ECONNREFUSED (own loopback) or ENETUNREACH, got %q", port, v)
	}
	r = escMustRun(t, opts{dir: tempDir(t)}, escPyArgs([]string{"--net=host"}, script)...)
	if !strings.Contains(r.stdout, "CONNECTED b'leak'") {
		t.Errorf("control: with --net=host 127.0.0.1:%d should be reachable\n%s", port, r)
	}
}

// ---------------------------------------------------------------------------
// 18. Change the host's hostname.

func TestEscapeHostname(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "hostname")
	hostName, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"default", "rootfs"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			m := escModes(t, mode)[0]
			evil := "evil-" + randHex(6)
			r := escMustRun(t, opts{dir: tempDir(t)}, sh(m.flags, escTryFn+"try sethostname hostname "+evil+"\necho \"NAME: $(hostname)\"\n")...)
			escCheckTries(t, r, []string{"sethostname"})
			if v, _ := escField(r.stdout, "NAME"); v == evil {
				t.Errorf("`hostname %s` inside should have failed (no CAP_SYS_ADMIN)\n%s", evil, r)
			}
			if h, _ := os.Hostname(); h != hostName {
				t.Errorf("ESCAPE: the host's hostname changed to %q", h)
			}
		})
	}
	t.Run("cap-add SYS_ADMIN", func(t *testing.T) {
		t.Parallel()
		evil := "evil-" + randHex(6)
		r := escMustRun(t, opts{dir: tempDir(t)}, sh([]string{"--cap-add", "SYS_ADMIN"}, "hostname "+evil+" && hostname")...)
		if strings.TrimSpace(r.stdout) != evil {
			t.Errorf("with CAP_SYS_ADMIN the sandbox's own hostname should change to %s\n%s", evil, r)
		}
		if h, _ := os.Hostname(); h != hostName {
			t.Errorf("ESCAPE: the host's hostname changed from %q to %q", hostName, h)
		}
	})
}

// ---------------------------------------------------------------------------
// 19. Write a cgroup's cgroup.procs (leave the caller's cgroup).

func TestEscapeCgroup(t *testing.T) {
	t.Parallel()
	escRequireTool(t, "awk")
	escRequireTool(t, "mount")
	script := escWriteFn + escTryFn + `
cat /proc/self/cgroup > /tmp/cg.before
awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print "CGMOUNT " $(i+1) " " $5; break } }' /proc/self/mountinfo
for mp in $(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print $5; break } }' /proc/self/mountinfo); do
  for f in "$mp/cgroup.procs" "$mp"/*/cgroup.procs "$mp/../cgroup.procs"; do test -e "$f" && w "$f" $$; done
done
for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/unified/cgroup.procs /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/systemd/cgroup.procs; do w "$f" $$; done
echo "SYSFSCG: $(ls -A /sys/fs/cgroup 2>&1 | tr '\n' ' ')"
try mount-cgroup2 mount -t cgroup2 none /mnt
try mount-cgroup1 mount -t cgroup -o pids none /mnt
test "$(cat /proc/self/cgroup)" = "$(cat /tmp/cg.before)" || echo "CGCHANGED $(cat /proc/self/cgroup | tr '\n' ' ')"
echo end
`
	for _, v := range []struct {
		name, mode string
		flags      []string
	}{
		{"default", "default", nil}, {"rootfs", "rootfs", nil}, {"cap-add SYS_ADMIN", "default", []string{"--cap-add", "SYS_ADMIN"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			m := escModes(t, v.mode)[0]
			flags := append(slices.Clone(m.flags), v.flags...)
			r := escMustRun(t, opts{dir: tempDir(t)}, sh(flags, script)...)
			mounts := escLinesWith(r.stdout, "CGMOUNT ")
			if len(mounts) == 0 {
				t.Logf("no cgroup filesystem is mounted inside (the confinement): %s", func() string { v, _ := escField(r.stdout, "SYSFSCG"); return v }())
			}
			if w := escLinesWith(r.stdout, "WROTE "); len(w) > 0 {
				t.Errorf("ESCAPE: a cgroup.procs was writable inside:\n%s", strings.Join(w, "\n"))
			}
			escCheckTries(t, r, []string{"mount-cgroup2", "mount-cgroup1"})
			if c := escLinesWith(r.stdout, "CGCHANGED "); len(c) > 0 {
				t.Errorf("ESCAPE: the payload moved to another cgroup: %q", c)
			}
		})
	}
}

// 20. (A fork bomb past --pids: its enforcement needs the pids controller in
// cgroup v2, which this hybrid CI host lacks; the VM harness tests it.)

// ---------------------------------------------------------------------------
// 21. Symlinks in the root that point out of it, used as bind destinations.

func TestEscapeBindSymlinks(t *testing.T) {
	t.Parallel()
	t.Run("rootfs", func(t *testing.T) {
		t.Parallel()
		dir, _ := escRootfs(t)
		if err := os.RemoveAll(filepath.Join(dir, "etc")); err != nil {
			t.Fatal(err)
		}
		for name, target := range map[string]string{"etc": "/", "evil": "../../..", "evil2": "../../../../../../../../../..",
			"evilabs": filepath.Dir(dir)} {
			if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		src := tempDir(t)
		writeFile(t, filepath.Join(src, "payload"), "payload", 0o644)
		before := snapshotTree(t, dir)
		x := "x-escape-" + randHex(8)
		// Where each destination would land if resolved on the host.
		hostPaths := []string{"/" + x, filepath.Join(dir, "../../..", x), filepath.Join(filepath.Dir(dir), x), "/hosts"}
		var hostBefore []bool
		for _, p := range hostPaths {
			hostBefore = append(hostBefore, exists(p))
		}
		t.Cleanup(func() {
			for i, p := range hostPaths {
				if !hostBefore[i] && strings.Contains(p, x) {
					os.RemoveAll(p) // only a leak of this test's own, randomly named path
				}
			}
		})
		for _, flags := range [][]string{
			{"--bind", src + ":/etc/" + x},
			{"--bind", src + ":/evil/" + x},
			{"--bind", src + ":/evil2/" + x},
			{"--bind", src + ":/evilabs/" + x},
			{"--bind", src + ":/evil/" + x + "/deeper"},
			{"--tmpfs", "/evil/" + x},
			{"--tmpfs", "/etc/" + x},
		} {
			args := append(append([]string{"run", "--rootfs", dir}, flags...), "--", "/bin/busybox", "true")
			r := escRun(t, opts{dir: tempDir(t)}, args...)
			if r.code != 0 && r.code != exitSandbox {
				t.Errorf("want exit 0 (mounted inside the root) or 125 (refused), got %s", r)
			}
		}
		for i, p := range hostPaths {
			if !hostBefore[i] && exists(p) {
				t.Errorf("ESCAPE: %s was created on the host through a symlink in the rootfs", p)
			}
		}
		if d := diffSnapshots(before, snapshotTree(t, dir)); len(d) > 0 {
			t.Errorf("ESCAPE: the rootfs dir changed on the host:\n%s", strings.Join(d, "\n"))
		}
	})
	t.Run("host mode cwd", func(t *testing.T) {
		t.Parallel()
		cwd := tempDir(t)
		if err := os.Symlink("/", filepath.Join(cwd, "root")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../..", filepath.Join(cwd, "up")); err != nil {
			t.Fatal(err)
		}
		src := tempDir(t)
		x := "x-escape-" + randHex(8)
		hostPaths := []string{"/" + x, filepath.Join(cwd, "../../..", x)}
		t.Cleanup(func() {
			for _, p := range hostPaths {
				os.RemoveAll(p)
			}
		})
		for _, dst := range []string{cwd + "/root/" + x, cwd + "/up/" + x, cwd + "/up/" + x + "/deeper"} {
			r := escRun(t, opts{dir: cwd}, "run", "--bind", src+":"+dst, "--", "true")
			if r.code != 0 && r.code != exitSandbox {
				t.Errorf("want exit 0 or 125, got %s", r)
			}
		}
		for _, p := range hostPaths {
			if exists(p) {
				t.Errorf("ESCAPE: %s was created on the host through a symlink in the shared cwd", p)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 22. Capabilities.

func TestEscapeCapabilities(t *testing.T) {
	t.Parallel()
	const dockerCaps = escDockerCaps
	t.Run("default bounding set", func(t *testing.T) {
		t.Parallel()
		r := escMustRun(t, opts{dir: tempDir(t)}, "run", "--", "cat", "/proc/self/status")
		if v := capField(t, r.stdout, "CapBnd"); v != dockerCaps {
			t.Errorf("CapBnd inside = %#x, want Docker's %#x (missing: %#x, extra: %#x)", v, dockerCaps, dockerCaps&^v, v&^dockerCaps)
		}
		if v := capField(t, r.stdout, "CapEff"); v&^dockerCaps != 0 {
			t.Errorf("ESCAPE: CapEff inside has capabilities outside Docker's set: %#x", v&^dockerCaps)
		}
	})
	t.Run("cap-drop ALL", func(t *testing.T) {
		t.Parallel()
		script := escTryFn + `grep -E '^Cap(Prm|Eff|Bnd|Amb|Inh):' /proc/self/status
echo secret > f && chmod 000 f
try read-mode-000 cat f
try chown chown 1:1 f
try chroot chroot / true
echo end
`
		r := escMustRun(t, opts{dir: tempDir(t)}, sh([]string{"--cap-drop", "ALL"}, script)...)
		for _, f := range []string{"CapPrm", "CapEff", "CapBnd", "CapAmb", "CapInh"} {
			if v := capField(t, r.stdout, f); v != 0 {
				t.Errorf("--cap-drop ALL: %s = %#x for root inside, want 0", f, v)
			}
		}
		escCheckTries(t, r, []string{"read-mode-000", "chown", "chroot"})
	})
	t.Run("bogus names", func(t *testing.T) {
		t.Parallel()
		for _, flag := range []string{"--cap-add", "--cap-drop"} {
			r := escRun(t, opts{dir: tempDir(t)}, "run", flag, "bogus", "--", "true")
			wantCode(t, r, exitSandbox)
			if !strings.Contains(r.stderr, "bogus") {
				t.Errorf("%s bogus: the error should name the capability: %q", flag, r.stderr)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 23. Seccomp (depends on --seccomp and the default filter).

func TestEscapeSeccomp(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	nr := escSyscalls(t)
	denied := []string{"keyctl", "bpf", "perf_event_open", "userfaultfd", "kexec_load", "init_module", "add_key", "request_key"}
	t.Run("default filter", func(t *testing.T) {
		t.Parallel()
		script := escPyPrelude + "\nprint(\"status \" + [l for l in open(\"/proc/self/status\") if l.startswith(\"Seccomp:\")][0].split()[1])\n"
		for _, name := range denied {
			script += fmt.Sprintf("r, e = sc(%d, 0, 0, 0, 0, 0)\nprint(\"%s %%d %%d\" %% (r, e))\n", nr[name], name)
		}
		script += "print(\"end\")\n"
		r := escRun(t, opts{dir: tempDir(t)}, escPyArgs(nil, script)...)
		if r.code != 0 || !slices.Contains(lines(r.stdout), "end") {
			t.Fatalf("the python payload should survive the denied syscalls (errno, not a kill)\n%s", r)
		}
		if v, _ := escField(r.stdout, "status"); v != "2" {
			t.Errorf("Seccomp: in /proc/self/status inside = %q, want 2 (filter)", v)
		}
		for _, name := range denied {
			if v, _ := escField(r.stdout, name); v != fmt.Sprintf("-1 %d", syscall.EPERM) {
				t.Errorf("%s inside: want -1 EPERM from the default filter, got %q", name, v)
			}
		}
	})
	t.Run("unconfined", func(t *testing.T) {
		t.Parallel()
		escRequireTool(t, "unshare")
		r := escRun(t, opts{dir: tempDir(t)}, sh([]string{"--seccomp=unconfined"}, "grep '^Seccomp:' /proc/self/status; unshare -U true && echo userns-ok")...)
		wantCode(t, r, 0)
		if v, _ := escField(r.stdout, "Seccomp"); v != "0" || !slices.Contains(lines(r.stdout), "userns-ok") {
			t.Errorf("--seccomp=unconfined: want no filter and `unshare -U` working\n%s", r)
		}
	})
	t.Run("missing profile", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(tempDir(t), "nonexistent-"+randHex(6)+".json")
		r := escRun(t, opts{dir: tempDir(t)}, "run", "--seccomp="+p, "--", "true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, p) {
			t.Errorf("--seccomp=%s: the error should name the file: %q", p, r.stderr)
		}
	})
	t.Run("custom profile", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(tempDir(t), "deny-mkdir.json")
		writeFile(t, p, `{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
  ]
}
`, 0o644)
		r := escRun(t, opts{dir: tempDir(t)}, sh([]string{"--seccomp=" + p}, escTryFn+"try mkdir mkdir /tmp/x\ntry touch touch /tmp/y\n")...)
		wantCode(t, r, 0)
		if v, ok := escField(r.stdout, "FAIL mkdir"); !ok || !strings.Contains(v, "Permission denied") {
			t.Errorf("with a profile denying mkdir (errnoRet 13), `mkdir /tmp/x` should fail with Permission denied\n%s", r)
		}
		if !slices.Contains(lines(r.stdout), "OK touch") {
			t.Errorf("with a profile denying only mkdir, `touch /tmp/y` should work\n%s", r)
		}
	})
	t.Run("malformed profile", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(tempDir(t), "bad.json")
		writeFile(t, p, `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [ {"names": ["mkdir"], `, 0o644)
		r := escRun(t, opts{dir: tempDir(t)}, "run", "--seccomp="+p, "--", "true")
		wantCode(t, r, exitSandbox)
	})
}

// ---------------------------------------------------------------------------
// 24. Landlock.

func TestEscapeLandlock(t *testing.T) {
	t.Parallel()
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1)
	requireOrSkip(t, errno == 0 && abi > 0, fmt.Sprintf("Landlock in the kernel (landlock_create_ruleset: %v)", errno))
	rnd := randHex(8)
	etcFile := "/etc/escape-ll-" + rnd
	t.Cleanup(func() { os.Remove(etcFile) })
	t.Run("with --landlock", func(t *testing.T) {
		t.Parallel()
		dir := tempDir(t)
		script := escWriteFn + escTryFn + strings.NewReplacer("@R@", rnd).Replace(`
w /etc/escape-ll-@R@ x
w /usr/escape-ll-@R@ x
w ./cwd-file ok
w /tmp/tmp-file ok
ln -s /etc ./etclink
w ./etclink/escape-ll2-@R@ x
try mkdir-usr mkdir /usr/escape-lldir-@R@
try rename-into-etc mv ./cwd-file /etc/escape-ll3-@R@
`)
		r := escMustRun(t, opts{dir: dir}, sh([]string{"--landlock"}, script)...)
		escCheckWrites(t, r, []string{"/etc/escape-ll-" + rnd, "/usr/escape-ll-" + rnd, "./etclink/escape-ll2-" + rnd}, nil)
		for _, p := range []string{"./cwd-file", "/tmp/tmp-file"} {
			if !slices.Contains(lines(r.stdout), "WROTE "+p) {
				t.Errorf("--landlock: %s should stay writable\n%s", p, r)
			}
		}
		escCheckTries(t, r, []string{"mkdir-usr", "rename-into-etc"})
		if !exists(filepath.Join(dir, "cwd-file")) {
			t.Errorf("--landlock: the file written in the shared cwd is missing on the host")
		}
		if exists(etcFile) {
			t.Errorf("ESCAPE: %s exists on the host", etcFile)
		}
	})
	t.Run("without --landlock", func(t *testing.T) {
		t.Parallel()
		r := escMustRun(t, opts{dir: tempDir(t)}, sh(nil, escWriteFn+"w "+etcFile+" x\n")...)
		if !slices.Contains(lines(r.stdout), "WROTE "+etcFile) {
			t.Errorf("without --landlock, writing %s inside should succeed (ephemeral overlay)\n%s", etcFile, r)
		}
		if exists(etcFile) {
			t.Errorf("ESCAPE: %s written inside exists on the host", etcFile)
		}
	})
}

// ---------------------------------------------------------------------------
// 25. Overwrite the sandbox binary through /proc/1/exe (CVE-2019-5736 style):
// init runs the caller's binary, which the caller owns and can write.

func TestEscapeSandboxBinary(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	b, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(tempDir(t), "sandbox")
	if err := os.WriteFile(own, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	script := `
import os
for p in ("/proc/1/exe", "/proc/self/../1/exe"):
    for label, flags in (("opath", os.O_PATH), ("rdonly", os.O_RDONLY), ("wronly", os.O_WRONLY)):
        try:
            fd = os.open(p, flags)
            print("OPENED %s %s" % (label, p))
            try:
                fd2 = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY)
                print("REOPENED-WRITE %s" % p)
            except OSError as e:
                print("reopen %d" % e.errno)
        except OSError as e:
            print("%s %d" % (label, e.errno))
print("end")
`
	r := escRun(t, opts{dir: tempDir(t), prepare: func(c *exec.Cmd) { c.Path = own; c.Args[0] = own }}, escPyArgs(nil, script)...)
	wantCode(t, r, 0)
	if strings.Contains(r.stdout, "OPENED") {
		t.Errorf("ESCAPE: the sandbox binary (the caller's own file) is reachable through /proc/1/exe inside\n%s", r)
	}
	for _, l := range []string{"opath", "rdonly", "wronly"} {
		if v, _ := escField(r.stdout, l); v != strconv.Itoa(int(syscall.EACCES)) && v != strconv.Itoa(int(syscall.EPERM)) {
			t.Errorf("opening /proc/1/exe (%s) inside: want EACCES, got %q", l, v)
		}
	}
	if after, err := os.ReadFile(own); err != nil || sha256.Sum256(after) != sum {
		t.Errorf("ESCAPE: the sandbox binary %s changed on the host (%v)", own, err)
	}
}

// ---------------------------------------------------------------------------
// 26. Confinement that reaches only some of init's threads. Capability
// bounding set, no_new_privs, the session keyring (and a seccomp filter
// without TSYNC) are per-thread attributes: if init applies them on one OS
// thread and starts the payload from another, the payload runs unconfined.
// Many concurrent starts make such a race visible.

func TestEscapeConfinementRace(t *testing.T) {
	t.Parallel()
	escRequirePython(t)
	binary(t)
	nr := escSyscalls(t)
	rnd := randHex(10)
	ringName, desc, secret := "sbx-race-ring-"+rnd, "sbx-race-key-"+rnd, "sbx-race-payload-"+rnd
	py := strings.NewReplacer("@NR@", strconv.Itoa(nr["keyctl"]), "@DESC@", desc).Replace(`
import ctypes
L = ctypes.c_long
l = ctypes.CDLL(None, use_errno=True)
l.syscall.restype = L
b = ctypes.create_string_buffer(256)
k = l.syscall(L(@NR@), L(10), L(-3), b"user", b"@DESC@", L(0))
n = l.syscall(L(@NR@), L(11), L(k), b, L(256)) if k > 0 else -1
print("KEY %d %r" % (k, b.raw[:max(n, 0)]))
`)
	script := "grep -E '^(CapBnd|CapAmb|NoNewPrivs):' /proc/self/status\n" + escPy + " -c '" + py + "'\n"
	const runs, batch = 40, 8
	type outcome struct {
		err error
		res []result
	}
	done := make(chan outcome, 1)
	dir := tempDir(t)
	go func() {
		// See TestEscapeKeyring: the key lives in this thread's new session
		// keyring, which every sandbox started here inherits.
		runtime.LockOSThread()
		var o outcome
		defer func() { done <- o }()
		if _, o.err = unix.KeyctlJoinSessionKeyring(ringName); o.err != nil {
			return
		}
		key, err := unix.AddKey("user", desc, []byte(secret), unix.KEY_SPEC_SESSION_KEYRING)
		if o.err = err; err != nil {
			return
		}
		defer unix.KeyctlInt(unix.KEYCTL_INVALIDATE, key, 0, 0, 0)
		for i := 0; i < runs; i += batch {
			var ps []*proc
			for j := i; j < i+batch && j < runs; j++ {
				ps = append(ps, start(t, opts{dir: dir, timeout: escTimeout}, sh(nil, script)...))
			}
			for _, p := range ps {
				o.res = append(o.res, p.wait())
			}
		}
	}()
	o := <-done
	requireOrSkip(t, o.err == nil, fmt.Sprintf("a usable kernel keyring on the host: %v", o.err))
	var bad []string
	for i, r := range o.res {
		var why []string
		if r.code != 0 {
			why = append(why, fmt.Sprintf("exit %d", r.code))
		}
		if v, _ := escField(r.stdout, "CapBnd"); v != fmt.Sprintf("%016x", escDockerCaps) {
			why = append(why, "CapBnd "+v)
		}
		if v, _ := escField(r.stdout, "CapAmb"); strings.Trim(v, "0") != "" || v == "" {
			why = append(why, "CapAmb "+v)
		}
		if v, _ := escField(r.stdout, "NoNewPrivs"); v != "1" {
			why = append(why, "NoNewPrivs "+v)
		}
		if v, _ := escField(r.stdout, "KEY"); !strings.HasPrefix(v, "-1 ") || strings.Contains(r.stdout, secret) {
			why = append(why, "the caller's session key found/read: "+v)
		}
		if len(why) > 0 {
			bad = append(bad, fmt.Sprintf("run %d: %s", i, strings.Join(why, ", ")))
		}
	}
	if len(bad) > 0 {
		t.Errorf("ESCAPE: %d of %d concurrent runs started the payload without (all of) its confinement:\n%s",
			len(bad), len(o.res), strings.Join(bad, "\n"))
	}
}

// TestEscapeInitFDs: what init holds open is nothing of the host's that a
// payload allowed to look into it (CAP_SYS_PTRACE: --cap-add ALL) could
// take: no user namespace of the caller (the proof `sandbox exec` asks
// for), no host file, only its control socket and stdio.
func TestEscapeInitFDs(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--net=none", "--cap-add", "ALL", "--seccomp=unconfined", "--",
		"sh", "-c", `sleep 0.5; for f in /proc/1/fd/*; do printf '%s -> %s\n' "$f" "$(readlink "$f")"; done`)
	var links []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.Contains(l, " -> ") {
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		t.Fatalf("no fd of init listed (the payload could not look into init):\n%s", r)
	}
	for _, l := range links {
		target := l[strings.Index(l, " -> ")+4:]
		switch {
		case strings.HasPrefix(target, "user:["), strings.HasPrefix(target, "mnt:["), strings.HasPrefix(target, "pid:["):
			t.Errorf("init holds a namespace of the host: %s", l)
		case strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "/dev/") && !strings.HasPrefix(target, "/memfd:"):
			t.Errorf("init holds a file: %s", l)
		}
	}
}
