package memexec

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// script is a program embedded the way sandbox embeds its helpers.
//
//go:embed testdata/hello.sh
var script string

func TestRunsSealedCopy(t *testing.T) {
	if _, ok := fileOffset(script); !ok {
		t.Error("the embedded program is not found in a read-only mapping of the executable: a big one would not be copied by the kernel")
	}
	m, err := New("hello", script)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// A script cannot run from a close-on-exec memfd (its interpreter opens
	// the path after the exec), so compare the bytes; TestCopyFromMemory runs
	// an ELF.
	got, err := os.ReadFile(m.Path())
	if err != nil || string(got) != script {
		t.Fatalf("memfd holds %q (%v), want %q", got, err, script)
	}
	// Sealed: the code cannot be changed after the fact.
	if _, err := unix.Write(int(m.f.Fd()), []byte("x")); err == nil {
		t.Fatal("the memfd is writable")
	}
	sealed, err := unix.FcntlInt(m.f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || sealed&seals != seals {
		t.Fatalf("seals %#x, want %#x: %v", sealed, seals, err)
	}
}

// TestCopyFromMemory: data that is not in the executable's file (here a
// string built at run time) is copied from memory, byte for byte.
func TestCopyFromMemory(t *testing.T) {
	elf, err := os.ReadFile("/bin/echo")
	if err != nil {
		t.Fatalf("reading /bin/echo: %v", err)
	}
	if _, ok := fileOffset(string(elf)); ok {
		t.Fatal("heap data taken for part of the executable")
	}
	m, err := New("echo-copy", string(elf))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out, err := exec.Command(m.Path(), "hi").Output()
	if err != nil || strings.TrimSpace(string(out)) != "hi" {
		t.Fatalf("running %s: %q %v", m.Path(), out, err)
	}
}

// TestPathAbove: the memfd moves above the fds a child gets.
func TestPathAbove(t *testing.T) {
	m, err := New("low", script)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.PathAbove(200)
	if err != nil {
		t.Fatal(err)
	}
	if int(m.f.Fd()) < 200 || p != fmt.Sprintf("/proc/self/fd/%d", m.f.Fd()) {
		t.Fatalf("fd %d, path %s", m.f.Fd(), p)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != script {
		t.Fatalf("after the move: %q %v", got, err)
	}
}

// TestSelf: the running executable's sealed copy is byte for byte the
// executable.
func TestSelf(t *testing.T) {
	m, err := Self("self")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := os.ReadFile(m.Path())
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("copy of %d bytes differs from the executable's %d", len(got), len(want))
	}
	if _, err := unix.Write(int(m.f.Fd()), []byte("x")); err == nil {
		t.Fatal("the memfd is writable")
	}
}

// TestAdopt: a copy made elsewhere is taken only as New makes one: a
// sealed memfd of the program's size.
func TestAdopt(t *testing.T) {
	m, err := New("hello", script)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dup := func(f *os.File) *os.File {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fd), f.Name())
	}
	got, err := Adopt(dup(m.f), "hello", len(script))
	if err != nil {
		t.Fatalf("a sealed copy of the right size: %v", err)
	}
	b, err := os.ReadFile(got.Path())
	got.Close()
	if err != nil || string(b) != script {
		t.Fatalf("the adopted copy holds %q (%v)", b, err)
	}
	if _, err := Adopt(dup(m.f), "hello", len(script)+1); err == nil {
		t.Error("a copy of another size was taken")
	}
	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	unsealed := os.NewFile(uintptr(fd), "unsealed")
	if _, err := unsealed.WriteString(script); err != nil {
		t.Fatal(err)
	}
	if _, err := Adopt(unsealed, "hello", len(script)); err == nil {
		t.Error("an unsealed memfd was taken: its code could change after the check")
	}
	plain, err := os.Open("testdata/hello.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Adopt(plain, "hello", len(script)); err == nil {
		t.Error("a plain file was taken")
	}
}
