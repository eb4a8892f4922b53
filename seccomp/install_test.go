//go:build linux

package seccomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"sandbox/internal/testenv"

	"golang.org/x/sys/unix"
)

// The tests that really load a filter run the test binary again as a
// child process (the filter cannot be removed), chosen by this variable:
// the child prints key=value lines that the parent checks. No privilege
// is needed: no_new_privs allows an unprivileged process to load a filter.
const childEnv = "SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "install":
		childInstall()
	case "probe":
		childProbe()
	case "nonnp":
		childNoNNP()
	case "kernel":
		childKernel()
	default:
		fmt.Println("unknown child mode")
		os.Exit(2)
	}
	os.Exit(0)
}

func errnoName(errno syscall.Errno) string {
	if errno == 0 {
		return "ok"
	}
	if n := unix.ErrnoName(errno); n != "" {
		return n
	}
	return fmt.Sprintf("errno%d", int(errno))
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errnoName(errno)
	}
	return "error"
}

// probes are the system calls the child tries before and after Install.
func probes(emit func(k, v string)) {
	_, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(^uint(2)) /* KEY_SPEC_SESSION_KEYRING = -3 */, 0)
	emit("keyctl", errnoName(e))
	// Multi-threaded: the kernel says EINVAL to CLONE_NEWUSER, the
	// filter EPERM before the kernel sees it.
	_, _, e = unix.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
	emit("unshare_newuser", errnoName(e))
	// A NULL clone_args of size 0: EINVAL from the kernel, so the call is
	// harmless if the filter lets it through.
	_, _, e = unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	emit("clone3", errnoName(e))
	null, err := os.Open(os.DevNull)
	if err != nil {
		emit("devnull", err.Error())
		return
	}
	defer null.Close()
	var b byte = 'x'
	_, _, e = unix.Syscall(unix.SYS_IOCTL, null.Fd(), unix.TIOCSTI, uintptr(unsafe.Pointer(&b)))
	emit("ioctl_tiocsti", errnoName(e))
	high := uint64(1)<<32 | unix.TIOCSTI // the kernel only reads the low 32 bits
	_, _, e = unix.Syscall(unix.SYS_IOCTL, null.Fd(), uintptr(high), uintptr(unsafe.Pointer(&b)))
	emit("ioctl_tiocsti_high", errnoName(e))
	var tio unix.Termios
	_, _, e = unix.Syscall(unix.SYS_IOCTL, null.Fd(), unix.TCGETS, uintptr(unsafe.Pointer(&tio)))
	emit("ioctl_tcgets", errnoName(e))
	_, _, e = unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	emit("personality_query", errnoName(e))
	// A NULL params pointer: EFAULT from the kernel.
	_, _, e = unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0)
	emit("io_uring_setup", errnoName(e))
	_, _, e = unix.Syscall(unix.SYS_MOUNT, 0, 0, 0)
	emit("mount", errnoName(e))
	emit("getpid", fmt.Sprint(unix.Getpid() == os.Getpid() && os.Getpid() > 0))
}

func childInstall() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	emit := func(k, v string) { fmt.Fprintf(w, "%s=%s\n", k, v) }
	probes(func(k, v string) { emit("before_"+k, v) })

	// SetNoNewPrivs's contract: with cgo (go test -race), where it sets
	// no_new_privs on the calling thread only, that thread installs too.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := SetNoNewPrivs(); err != nil {
		emit("nnp", err.Error())
		return
	}
	prog, err := Load("default", Options{}, DefaultOptions{})
	if err != nil {
		emit("load", err.Error())
		return
	}
	emit("len", fmt.Sprint(prog.Len()))
	if err := Install(prog); err != nil {
		emit("install", err.Error())
		return
	}
	emit("install", "ok")
	probes(emit)

	// personality(ADDR_NO_RANDOMIZE) would change this process: try it
	// only now, when the filter denies it.
	_, _, e := unix.Syscall(unix.SYS_PERSONALITY, 0x0040000 /* ADDR_NO_RANDOMIZE */, 0, 0)
	emit("personality_addr_no_randomize", errnoName(e))

	// New threads (clone with CLONE_THREAD) after the filter.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // the thread is discarded when the goroutine ends
			time.Sleep(20 * time.Millisecond)
		}()
	}
	time.Sleep(5 * time.Millisecond)
	tasks, filtered, nnp := threadStatus()
	wg.Wait()
	emit("threads", fmt.Sprint(tasks > 1))
	emit("threads_filtered", fmt.Sprint(filtered == tasks))
	emit("threads_nnp", fmt.Sprint(nnp == tasks))

	// os/exec through Go's fork path (clone(CLONE_VFORK|CLONE_VM), pidfd).
	truePath, err := exec.LookPath("true")
	if err != nil {
		emit("exec_true", "no true: "+err.Error())
	} else {
		emit("exec_true", errName(exec.Command(truePath).Run()))
	}
	// The payload inherits the filter across execve.
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=probe")
	out, err := cmd.Output()
	emit("exec_self", errName(err))
	w.Write(out)
	// Go only uses clone3 for SysProcAttr.UseCgroupFD (and
	// CLONE_NEWTIME), without a fallback: such a start fails.
	if cg, err := os.Open("/sys/fs/cgroup"); err == nil {
		c := exec.Command(truePath)
		c.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		emit("exec_cgroupfd", errName(c.Run()))
		cg.Close()
	}
}

// kernelCalls are system calls that ignore their arguments and that
// neither the Go runtime nor the child uses otherwise: a filter may
// deny them with any errno and the child passes any argument values.
var kernelCalls = []string{"getppid", "getuid", "getgid", "geteuid", "getegid"}

// childKernel installs random argument rules on kernelCalls and compares
// the real kernel's answers with the reference model: the check that the
// program reads struct seccomp_data as the kernel lays it out (the low
// half of an argument first) and that the kernel accepts it.
func childKernel() {
	runtime.LockOSThread() // as in childInstall
	defer runtime.UnlockOSThread()
	if err := SetNoNewPrivs(); err != nil {
		fmt.Printf("nnp=%v\n", err)
		return
	}
	r := rand.New(rand.NewPCG(7, 7))
	vals := []uint64{0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0x100000001,
		0xffffffff00000000, 0xfffffffffffffffe, 0xffffffffffffffff, 0x5412, 0x100005412}
	pick := func() uint64 {
		if r.IntN(3) == 0 {
			return r.Uint64()
		}
		return vals[r.IntN(len(vals))]
	}
	p := &Profile{DefaultAction: ActAllow}
	for i := range 20 {
		e := uint(100 + i)
		s := Syscall{Names: []string{kernelCalls[r.IntN(len(kernelCalls))]}, Action: ActErrno, ErrnoRet: &e}
		for range 1 + r.IntN(3) {
			a := Arg{Index: uint(r.IntN(6)), Op: operators[r.IntN(len(operators))], Value: pick()}
			if a.Op == OpMaskedEqual {
				a.ValueTwo = pick() & a.Value
			}
			s.Args = append(s.Args, a)
		}
		p.Syscalls = append(p.Syscalls, s)
	}
	prog, err := Compile(p, Options{})
	if err != nil {
		fmt.Printf("compile=%v\n", err)
		return
	}
	if err := Install(prog); err != nil {
		fmt.Printf("install=%v\n", err)
		return
	}
	checked, mismatches, denied := 0, 0, 0
	for range 4000 {
		name := kernelCalls[r.IntN(len(kernelCalls))]
		d := data{nr: tableFor(ArchX86_64)[name], arch: auditArchX86_64}
		for i := range d.args {
			s := p.Syscalls[r.IntN(len(p.Syscalls))]
			a := s.Args[r.IntN(len(s.Args))]
			d.args[i] = []uint64{a.Value, a.Value + 1, a.Value - 1, a.ValueTwo, pick()}[r.IntN(5)]
		}
		want := model(exitFatal{}, p, ArchX86_64, d)
		_, _, e := unix.Syscall6(uintptr(d.nr), uintptr(d.args[0]), uintptr(d.args[1]), uintptr(d.args[2]),
			uintptr(d.args[3]), uintptr(d.args[4]), uintptr(d.args[5]))
		got := uint32(retAllow)
		if e != 0 {
			got = retErrno | uint32(e)
		}
		checked++
		if e != 0 {
			denied++
		}
		if got != want && mismatches < 5 {
			fmt.Printf("mismatch=%s%#x: kernel %s, model %s\n", name, d.args, retString(got), retString(want))
		}
		if got != want {
			mismatches++
		}
	}
	fmt.Printf("checked=%d\nmismatches=%d\ndenied_enough=%v\ndenied=%d\n", checked, mismatches, denied > checked/10 && denied < checked*19/20, denied)
}

// childProbe runs in a process started by a filtered one.
func childProbe() {
	_, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(^uint(2)), 0)
	fmt.Printf("probe_keyctl=%s\n", errnoName(e))
	fmt.Printf("probe_seccomp=%s\n", statusField("/proc/self/status", "Seccomp"))
}

func childNoNNP() {
	if statusField("/proc/self/status", "NoNewPrivs") == "1" {
		fmt.Println("nnp_already=1")
		return
	}
	prog, err := Load("default", Options{}, DefaultOptions{})
	if err != nil {
		fmt.Printf("load=%v\n", err)
		return
	}
	err = Install(prog)
	fmt.Printf("install_is_errnonewprivs=%v\n", errors.Is(err, ErrNoNewPrivs))
	fmt.Printf("seccomp=%s\n", statusField("/proc/self/status", "Seccomp"))
}

func statusField(path, field string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// threadStatus counts the process's threads, those in seccomp filter mode
// and those with no_new_privs.
func threadStatus() (tasks, filtered, nnp int) {
	dirs, _ := filepath.Glob("/proc/self/task/*/status")
	for _, d := range dirs {
		mode, nn := statusField(d, "Seccomp"), statusField(d, "NoNewPrivs")
		if mode == "?" || nn == "?" {
			continue // the thread ended between the glob and the read
		}
		tasks++
		if mode == "2" {
			filtered++
		}
		if nn == "1" {
			nnp++
		}
	}
	return
}

func runChild(t *testing.T, mode string) map[string]string {
	t.Helper()
	testenv.RequireOrSkip(t, runtime.GOARCH == "amd64" || runtime.GOARCH == "386", "amd64 or 386 (the filters are compiled for these only)")
	testenv.RequireOrSkip(t, statusField("/proc/self/status", "Seccomp") != "?", "seccomp in this kernel")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s%s", err, out, stderr.Bytes())
	}
	t.Logf("child output:\n%s", out)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestInstall(t *testing.T) {
	m := runChild(t, "install")
	if m["install"] != "ok" {
		t.Fatalf("install: %q (load: %q, nnp: %q)", m["install"], m["load"], m["nnp"])
	}
	// Before: the kernel's own answers, so the ones after are the filter's.
	for k, want := range map[string]string{
		"before_unshare_newuser": "EINVAL",
		"before_clone3":          "EINVAL",
		"before_ioctl_tiocsti":   "ENOTTY",
	} {
		if m[k] != want {
			t.Logf("%s = %q (expected %q): this kernel answers differently; the check after Install still counts", k, m[k], want)
		}
	}
	for k, want := range map[string]string{
		"keyctl":                        "EPERM",
		"unshare_newuser":               "EPERM",
		"clone3":                        "ENOSYS",
		"ioctl_tiocsti":                 "EPERM",
		"ioctl_tiocsti_high":            "EPERM",
		"ioctl_tcgets":                  "ENOTTY", // allowed: /dev/null is no terminal
		"personality_query":             "ok",
		"personality_addr_no_randomize": "EPERM",
		"mount":                         "EPERM",
		"io_uring_setup":                "ENOSYS",
		"getpid":                        "true",
		"threads":                       "true",
		"threads_filtered":              "true",
		"threads_nnp":                   "true",
		"exec_true":                     "ok",
		"exec_self":                     "ok",
		"probe_keyctl":                  "EPERM",
		"probe_seccomp":                 "2",
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	if v, ok := m["exec_cgroupfd"]; ok && v != "ENOSYS" {
		t.Logf("exec with UseCgroupFD: %s (Go's clone3 path; ENOSYS expected)", v)
	}
}

func TestInstallKernelAgrees(t *testing.T) {
	testenv.RequireOrSkip(t, runtime.GOARCH == "amd64", "amd64 (the test issues x86_64 system calls)")
	m := runChild(t, "kernel")
	if m["checked"] != "4000" || m["mismatches"] != "0" || m["denied_enough"] != "true" {
		t.Errorf("the kernel and the model disagree: %v", m)
	}
}

func TestInstallNeedsNoNewPrivs(t *testing.T) {
	m := runChild(t, "nonnp")
	// no_new_privs cannot be cleared: a test started with it cannot see Install refuse.
	testenv.RequireOrSkip(t, m["nnp_already"] != "1", "a test process without no_new_privs (it is inherited and cannot be cleared)")
	if m["install_is_errnonewprivs"] != "true" || m["seccomp"] != "0" {
		t.Errorf("Install without no_new_privs: %v", m)
	}
}
