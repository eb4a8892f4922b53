//go:build linux && (amd64 || arm64)

package sigdrop

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var faults = []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, unix.SIGSTKFLT}

var ends = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGABRT}

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

// TestMain runs the child modes of the tests in a process of their own.
func TestMain(m *testing.M) {
	mode := os.Getenv("SIGDROP_CHILD")
	switch mode {
	case "":
		os.Exit(m.Run())
	case "gated":
		// One first, then all: those gated already are passed over, the
		// rest gated (a return at the first gated one left them open).
		for _, sigs := range [][]syscall.Signal{faults[:1], faults} {
			if err := Faults(sigs...); err != nil {
				println("Faults:", err.Error())
				os.Exit(2)
			}
		}
	case "dropped":
		for range 2 {
			if err := All(ends...); err != nil {
				println("All:", err.Error())
				os.Exit(2)
			}
		}
	}
	if mode == "gated" || mode == "ungated" {
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
	} else {
		for _, s := range ends {
			syscall.Kill(os.Getpid(), s)
			sendQueued(s, -1)
		}
		time.Sleep(50 * time.Millisecond)
		// A child's exec resets them to their defaults: none ignored.
		out, err := exec.Command("/bin/cat", "/proc/self/status").Output()
		if err != nil {
			println("cat:", err.Error())
			os.Exit(2)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
				mask, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				for _, s := range ends {
					if mask&(1<<(s-1)) != 0 {
						println("ignored in the child:", s.String())
					}
				}
			}
		}
	}
	println("alive")
	os.Exit(0)
}

func child(t *testing.T, mode string) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SIGDROP_CHILD="+mode, "GOTRACEBACK=single")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestFaults: a process with the gate survives fault signals sent with a
// siginfo of their own (SI_QUEUE and other codes below zero, SI_USER),
// and its own nil dereference is still the runtime's panic; without the
// gate, the first SI_QUEUE SIGSEGV kills it with a stack trace (what
// happened to PID 1 when a process inside sent one).
func TestFaults(t *testing.T) {
	out, err := child(t, "gated")
	if err != nil || !strings.Contains(out, "recovered\nalive") {
		t.Errorf("with the gate, the process did not survive sent faults and recover its own (%v):\n%s", err, out)
	}
	out, err = child(t, "ungated")
	if err == nil || strings.Contains(out, "alive") || !strings.Contains(out, "SIGSEGV") {
		t.Errorf("without the gate, a sent SIGSEGV must kill the process (else this test proves nothing) (%v):\n%s", err, out)
	}
}

// TestAll: a process whose HUP, INT, TERM, QUIT and ABRT handlers are
// drop survives each, sent with kill and with sigqueue, and a child it
// starts has none of them ignored; without it, the first (SIGHUP) ends it.
func TestAll(t *testing.T) {
	out, err := child(t, "dropped")
	if err != nil || !strings.HasSuffix(out, "alive\n") || strings.Contains(out, "ignored") {
		t.Errorf("with drop, the process did not survive or its child inherited an ignored signal (%v):\n%s", err, out)
	}
	out, err = child(t, "undropped")
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGHUP || strings.Contains(out, "alive") {
		t.Errorf("without drop, SIGHUP must end the process (else this test proves nothing) (%v):\n%s", err, out)
	}
}

// TestRefusesDefault: a signal without the runtime's handler is not
// replaced (for a fault: there would be nothing to pass a real one on to).
func TestRefusesDefault(t *testing.T) {
	if err := Faults(syscall.SIGKILL); err == nil {
		t.Error("Faults(SIGKILL) succeeded: SIGKILL has no handler")
	}
	if err := All(syscall.SIGKILL); err == nil {
		t.Error("All(SIGKILL) succeeded: SIGKILL has no handler")
	}
}
