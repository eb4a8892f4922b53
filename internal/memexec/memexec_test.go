package memexec

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRunsSealedCopy(t *testing.T) {
	elf, err := os.ReadFile("/bin/echo")
	if err != nil {
		t.Fatalf("reading /bin/echo: %v", err)
	}
	m, err := New("echo-copy", elf)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out, err := exec.Command(m.Path(), "hello").Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("running %s: %q %v", m.Path(), out, err)
	}
	// Sealed: the code cannot be changed after the fact.
	if _, err := unix.Write(int(m.f.Fd()), []byte("x")); err == nil {
		t.Fatal("the memfd is writable")
	}
	got, err := unix.FcntlInt(m.f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || got&seals != seals {
		t.Fatalf("seals %#x, want %#x: %v", got, seals, err)
	}
}
