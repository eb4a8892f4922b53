//go:build linux && vmguest

package guest

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tests of the architecture the guest runs. TestArchSeccomp* hold on every
// guest; the TestArm64 ones need what only the arm64 guest has (the
// sandbox-netstack helper next to sandbox, the tun module, the guest tests
// built for 32-bit arm), and the amd64 guest's pass skips them. Under TCG
// arm64 one `sandbox run` takes ~20 s on a loaded host, so each test makes
// as few as it can.

func init() {
	helpers["syscalls"] = probeSyscalls
	helpers["connect"] = connectHelper
}

// probeSyscalls (inside the sandbox) prints the machine and, for a few
// system calls the default filter denies or allows, the errno each got
// ("ok" for success).
func probeSyscalls() int {
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		fmt.Printf("MACHINE: %s\n", unix.ByteSliceToString(u.Machine[:]))
	}
	fmt.Printf("GOARCH: %s\n", runtime.GOARCH)
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			fmt.Printf("SECCOMP: %s\n", strings.TrimSpace(v))
		}
	}
	res := func(name string, err error) {
		if err == nil {
			fmt.Printf("%s: ok\n", name)
			return
		}
		fmt.Printf("%s: %s\n", name, unix.ErrnoName(err.(unix.Errno)))
	}
	// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0): works for
	// anyone, unless the filter denies it.
	_, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd) /* -3 */, 0)
	res("KEYCTL", errnoOrNil(e))
	// unshare(CLONE_NEWUSER) from a multithreaded process: EINVAL from the
	// kernel, EPERM when the filter stops it first.
	_, _, e = unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
	res("UNSHARE_NEWUSER", errnoOrNil(e))
	// clone3 with no arguments: EFAULT/EINVAL from the kernel, ENOSYS from the filter.
	_, _, e = unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
	res("CLONE3", errnoOrNil(e))
	_, _, e = unix.RawSyscall(unix.SYS_IO_URING_SETUP, 0, 0, 0)
	res("IO_URING_SETUP", errnoOrNil(e))
	// personality: the query is allowed, ADDR_NO_RANDOMIZE is not.
	_, _, e = unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	res("PERSONALITY_QUERY", errnoOrNil(e))
	_, _, e = unix.RawSyscall(unix.SYS_PERSONALITY, 0x0040000 /* ADDR_NO_RANDOMIZE */, 0, 0)
	res("PERSONALITY_NORANDOM", errnoOrNil(e))
	_, _, e = unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	res("GETPID", errnoOrNil(e))
	// A fault signal queued to PID 1 (si_code SI_QUEUE): init drops it
	// (internal/sigdrop), where Go's runtime took it for its own fault
	// and died, ending the sandbox before the next line.
	var info [128]byte
	binary.LittleEndian.PutUint32(info[0:], uint32(unix.SIGSEGV))
	binary.LittleEndian.PutUint32(info[8:], ^uint32(0)) // SI_QUEUE, -1
	_, _, e = unix.RawSyscall(unix.SYS_RT_SIGQUEUEINFO, 1, uintptr(unix.SIGSEGV), uintptr(unsafe.Pointer(&info)))
	res("INIT_SIGQUEUE", errnoOrNil(e))
	// And the signals whose default in Go's runtime ends a program: init
	// drops them with a handler of its own (internal/sigdrop).
	for _, s := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGABRT} {
		unix.Kill(1, s)
	}
	time.Sleep(300 * time.Millisecond)
	fmt.Println("INIT_ALIVE: yes")
	return 0
}

func errnoOrNil(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// connectHelper (inside the sandbox) connects to $VMTEST_ADDR and prints
// what it reads.
func connectHelper() int {
	c, err := net.DialTimeout("tcp", os.Getenv("VMTEST_ADDR"), 20*time.Second)
	if err != nil {
		fmt.Printf("ERR: %v\n", err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 64)
	n, _ := c.Read(b)
	fmt.Printf("GOT: %s\n", strings.TrimSpace(string(b[:n])))
	return 0
}

// seccompWant is what probeSyscalls reports under the default filter:
// EPERM (ENOSYS for clone3 and io_uring) where the kernel alone answers
// otherwise (keyctl works, a multithreaded unshare(CLONE_NEWUSER) is
// EINVAL, clone3 without arguments EFAULT), and allowed calls working.
func seccompWant(goarch string) map[string]string {
	return map[string]string{
		"GOARCH": goarch, "SECCOMP": "2",
		"KEYCTL": "EPERM", "UNSHARE_NEWUSER": "EPERM", "CLONE3": "ENOSYS", "IO_URING_SETUP": "ENOSYS",
		"PERSONALITY_QUERY": "ok", "PERSONALITY_NORANDOM": "EPERM", "GETPID": "ok",
		"INIT_SIGQUEUE": "ok", "INIT_ALIVE": "yes",
	}
}

func checkFields(t *testing.T, what string, r result, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got := fieldOr(r.stdout, k); got != w {
			t.Errorf("%s: %s = %q, want %q\n%s", what, k, got, w, r)
		}
	}
}

// TestArchSeccompDefault: the default filter is compiled for this
// architecture and installed.
func TestArchSeccompDefault(t *testing.T) {
	dir := t.TempDir()
	helper := helperCopy(t, dir)
	r := start(t, dir, "run", "--net=none", "-e", helperEnv+"=syscalls", "--", helper).wait()
	wantCode(t, r, 0)
	want := seccompWant(runtime.GOARCH)
	if runtime.GOARCH == "arm64" {
		want["MACHINE"] = "aarch64"
	}
	checkFields(t, "with the default filter", r, want)
}

// TestArchSeccompUnconfined: the kernel's own answers to the same calls,
// so the EPERMs above are the filter's.
func TestArchSeccompUnconfined(t *testing.T) {
	dir := t.TempDir()
	helper := helperCopy(t, dir)
	r := start(t, dir, "run", "--net=none", "--seccomp=unconfined", "-e", helperEnv+"=syscalls", "--", helper).wait()
	wantCode(t, r, 0)
	checkFields(t, "--seccomp=unconfined", r, map[string]string{"SECCOMP": "0", "KEYCTL": "ok", "UNSHARE_NEWUSER": "EINVAL"})
	if got := fieldOr(r.stdout, "CLONE3"); got == "ENOSYS" {
		t.Errorf("--seccomp=unconfined: clone3 still ENOSYS\n%s", r)
	}
}

// TestArm64Basics: in one run, the full id mapping (newuidmap/newgidmap),
// the kernel overlay root written to without reaching the guest, and the
// MS_MOVE+chroot fallback (the guest's / is an initramfs).
func TestArm64Basics(t *testing.T) {
	r := run(t, "run", "-v", "--map=full", "--net=none", "--", "sh", "-c",
		"id; cat /proc/self/uid_map /proc/self/gid_map; echo x >/etc/arm64-x && cat /etc/arm64-x; grep ' /etc ' /proc/self/mountinfo")
	wantCode(t, r, 0)
	out := r.stdout
	if !strings.HasPrefix(out, "uid=0(root) gid=0(root)") {
		t.Errorf("`id` inside: want uid=0(root) gid=0(root)…\n%s", r)
	}
	var maps []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && !strings.Contains(l, "=") {
			maps = append(maps, strings.Join(f, " ")) // a uid_map or gid_map line
		}
	}
	if strings.Join(maps, ",") != "0 1000 1,1 100000 65536,0 1000 1,1 100000 65536" {
		t.Errorf("uid_map + gid_map inside: %q, want the full mapping\n%s", maps, r)
	}
	if !strings.Contains(out, "\nx\n") || !strings.Contains(out, " - overlay ") {
		t.Errorf("writing /etc/arm64-x on the overlay root failed, or /etc is not a kernel overlay\n%s", r)
	}
	if _, err := os.Stat("/etc/arm64-x"); !os.IsNotExist(err) {
		t.Errorf("the write inside reached the guest's /etc/arm64-x (stat: %v)", err)
	}
	if !strings.Contains(r.stderr, "entered the new root (MS_MOVE+chroot)") {
		t.Errorf("-v output does not report the MS_MOVE+chroot fallback:\n%s", r.stderr)
	}
}

// TestArm64Holder: the arm64 build's holder stage (cmd/sandbox-stage, with
// its own system calls for arm64) creates init in the holder's namespace.
// A first run finds no holder, writes its maps with newuidmap/newgidmap and
// starts one; once it answers, a second run (in the same scope, so that
// the holder is not the last process of its cgroup) has its maps written
// by the stage, the full mapping, and init from the holder's copy.
func TestArm64Holder(t *testing.T) {
	dir := t.TempDir()
	xdg := filepath.Join(dir, "xdg")
	if err := os.Mkdir(xdg, 0o700); err != nil {
		t.Fatal(err)
	}
	// The holder's socket is put in place once it is ready; ~20 s a run here.
	script := `export XDG_RUNTIME_DIR="$1"
"$0" run -v --net=none -- true 2>&1 || exit 1
echo ==== second
i=0
while [ ! -S "$1/sandbox/.holder/holder.sock" ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done
"$0" run -v --net=none -- cat /proc/self/uid_map /proc/self/gid_map 2>&1`
	r := startProgram(t, dir, "/bin/sh", "-c", script, sandboxBin(t), xdg).wait()
	wantCode(t, r, 0)
	first, second, ok := strings.Cut(r.stdout, "==== second\n")
	if !ok {
		t.Fatalf("no second run:\n%s", r)
	}
	if !strings.Contains(first, "wrote uid and gid maps (0:1000:1 1:100000:65536, newuidmap/newgidmap)") {
		t.Errorf("the first run's maps were not written by newuidmap/newgidmap (no holder yet):\n%s", first)
	}
	if !strings.Contains(second, "by init's stage in the holder's namespace") || !strings.Contains(second, "init's program: the holder's sealed copy") {
		t.Errorf("the second run did not go through the holder's stage and copy of init:\n%s", second)
	}
	var maps []string
	for _, l := range strings.Split(second, "\n") {
		if f := strings.Fields(l); len(f) == 3 && !strings.Contains(l, "sandbox[") {
			maps = append(maps, strings.Join(f, " "))
		}
	}
	if strings.Join(maps, ",") != "0 1000 1,1 100000 65536,0 1000 1,1 100000 65536" {
		t.Errorf("uid_map + gid_map inside, through the holder: %q, want the full mapping\n%s", maps, second)
	}
}

// TestArm64NetBuiltin: the builtin (in-process gvisor) network driver,
// built for this architecture, carries a TCP connection from the sandbox
// to the guest's loopback (--allow-host-loopback, as 10.0.2.2).
func TestArm64NetBuiltin(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the guest\n"))
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	helper := helperCopy(t, dir)
	r := start(t, dir, "run", "--net=builtin", "--allow-host-loopback", "-e", helperEnv+"=connect",
		"-e", fmt.Sprintf("VMTEST_ADDR=10.0.2.2:%d", port), "--", helper).wait()
	wantCode(t, r, 0)
	if got := fieldOr(r.stdout, "GOT"); got != "hello from the guest" {
		t.Errorf("through --net=builtin: %q\n%s", got, r)
	}
}

// TestArm64CompatArm: the guest tests built for 32-bit arm (guest-arm.test
// next to this binary) run in the sandbox under arm64's compat ABI: the
// filter's arm section applies, with arm's numbers, instead of the
// bad-arch kill, and denies what it denies natively.
func TestArm64CompatArm(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "guest-arm.test"))
	if err != nil {
		t.Fatalf("the arm build of the guest tests: %v", err)
	}
	dir := t.TempDir()
	helper := filepath.Join(dir, "vmhelper-arm")
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	r := start(t, dir, "run", "--net=none", "-e", helperEnv+"=syscalls", "--", helper).wait()
	wantCode(t, r, 0)
	checkFields(t, "a 32-bit arm program under the default filter", r, seccompWant("arm"))
}
