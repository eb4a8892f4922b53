//go:build linux && (amd64 || arm64)

package faultgate

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var faults = []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, unix.SIGSTKFLT}

// siginfo is the kernel's siginfo_t as rt_sigqueueinfo(2) takes it.
type siginfo struct {
	signo, errno, code, _ int32
	pid, uid              uint32
	_                     [112]byte
}

func sendQueued(s syscall.Signal, code int32) error {
	info := siginfo{signo: int32(s), code: code, pid: uint32(os.Getpid()), uid: uint32(os.Getuid())}
	if _, _, e := unix.RawSyscall(unix.SYS_RT_SIGQUEUEINFO, uintptr(os.Getpid()), uintptr(s), uintptr(unsafe.Pointer(&info))); e != 0 {
		return e
	}
	return nil
}

var nilInt *int

// TestMain runs the child modes of TestSentFaults in a process of their own.
func TestMain(m *testing.M) {
	switch os.Getenv("FAULTGATE_CHILD") {
	case "":
		os.Exit(m.Run())
	case "gated":
		if err := Install(faults...); err != nil {
			println("install:", err.Error())
			os.Exit(2)
		}
		if err := Install(faults...); err != nil { // again: a no-op
			println("install again:", err.Error())
			os.Exit(2)
		}
	}
	for _, s := range faults {
		for _, code := range []int32{-1, -60} { // SI_QUEUE; SI_ASYNCNL, any other code below zero
			if err := sendQueued(s, code); err != nil {
				println("rt_sigqueueinfo:", err.Error())
				os.Exit(2)
			}
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGSEGV) // SI_USER
	time.Sleep(50 * time.Millisecond)
	// A fault of the program's own still reaches the runtime: a panic.
	func() {
		defer func() {
			if r := recover(); r != nil && strings.Contains(r.(error).Error(), "nil pointer") {
				println("recovered")
			}
		}()
		println(*nilInt)
	}()
	println("alive")
	os.Exit(0)
}

// TestSentFaults: a process with the gate survives fault signals sent with
// a siginfo of their own (SI_QUEUE and other codes below zero, SI_USER),
// and its own nil dereference is still the runtime's panic; without the
// gate, the first SI_QUEUE SIGSEGV kills it with a stack trace (what
// happened to PID 1 when a process inside sent one).
func TestSentFaults(t *testing.T) {
	for _, mode := range []string{"gated", "ungated"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "FAULTGATE_CHILD="+mode, "GOTRACEBACK=single")
			out, err := cmd.CombinedOutput()
			alive := err == nil && strings.Contains(string(out), "recovered\nalive")
			if mode == "gated" && !alive {
				t.Fatalf("with the gate, the process did not survive sent faults and recover its own (%v):\n%s", err, out)
			}
			if mode == "ungated" && (alive || !strings.Contains(string(out), "SIGSEGV")) {
				t.Fatalf("without the gate, a sent SIGSEGV must kill the process (else this test proves nothing) (%v):\n%s", err, out)
			}
		})
	}
}

// TestInstallRefusesDefault: a signal without the runtime's handler is
// not gated (there would be nothing to pass a real fault on to).
func TestInstallRefusesDefault(t *testing.T) {
	if err := Install(syscall.SIGKILL); err == nil {
		t.Fatal("Install(SIGKILL) succeeded: SIGKILL has no handler")
	}
}
