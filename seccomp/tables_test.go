package seccomp

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLazyTables: the maps built on first use hold exactly the generated
// entries of every architecture, SyscallNumber and KnownSyscall answer
// from them, and the names of other architectures are sorted, unique and
// known (KnownSyscall binary-searches them).
func TestLazyTables(t *testing.T) {
	for _, ai := range archInfos {
		m := tableFor(ai.arch)
		if len(m) != len(ai.tab.entries) {
			t.Errorf("%s: map of %d names from %d entries (a name twice?)", ai.arch, len(m), len(ai.tab.entries))
		}
		n := 0
		for name, gen := range ai.tab.all() {
			n++
			if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
				t.Errorf("%s: entry %d is named %q", ai.arch, n, name)
			}
			if nr, ok := SyscallNumber(ai.arch, name); !ok || nr != gen {
				t.Errorf("SyscallNumber(%s, %q) = %d, %v; generated %d", ai.arch, name, nr, ok, gen)
			}
			if !KnownSyscall(name) {
				t.Errorf("KnownSyscall(%q) = false; it is in %s's table", name, ai.arch)
			}
		}
		if n != len(ai.tab.entries) || int(ai.tab.entries[n-1].end) != len(ai.tab.names) {
			t.Errorf("%s: %d names of %d entries, the last ending at %d of %d bytes", ai.arch, n, len(ai.tab.entries), ai.tab.entries[n-1].end, len(ai.tab.names))
		}
		if _, ok := SyscallNumber(ai.arch, "no_such_call"); ok {
			t.Errorf("SyscallNumber(%s, no_such_call) found", ai.arch)
		}
	}
	if !slices.IsSorted(syscallsOtherArch) || len(slices.Compact(slices.Clone(syscallsOtherArch))) != len(syscallsOtherArch) {
		t.Error("syscallsOtherArch is not sorted and unique")
	}
	for _, n := range syscallsOtherArch {
		if !KnownSyscall(n) {
			t.Errorf("KnownSyscall(%q) = false; it is in syscallsOtherArch", n)
		}
		for _, ai := range archInfos {
			if _, ok := tableFor(ai.arch)[n]; ok {
				t.Errorf("%q is in syscallsOtherArch and in %s's table", n, ai.arch)
			}
		}
	}
	for _, n := range []string{"", "no_such_call", "READ", "cacheflushx"} {
		if KnownSyscall(n) {
			t.Errorf("KnownSyscall(%q) = true", n)
		}
	}
	// Spot checks against the kernel's headers.
	for _, c := range []struct {
		arch Arch
		name string
		nr   uint32
	}{
		{ArchX86_64, "read", 0}, {ArchX86_64, "pidfd_open", 434}, {ArchX86, "socketcall", 102},
		{ArchAARCH64, "openat", 56}, {ArchARM, "cacheflush", 0x0f0002}, {ArchS390X, "getpid", 20},
	} {
		if nr, ok := SyscallNumber(c.arch, c.name); !ok || nr != c.nr {
			t.Errorf("SyscallNumber(%s, %q) = %d, %v; want %d", c.arch, c.name, nr, ok, c.nr)
		}
	}
}

// TestTablesReproducible: `go generate ./seccomp` (mktables.go, from the
// golang.org/x/sys of go.mod) writes ztables.go byte for byte as committed.
func TestTablesReproducible(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ztables.go")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "mktables.go", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run mktables.go: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("ztables.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("mktables.go writes another ztables.go than the committed one: run go generate ./seccomp")
	}
}

// TestUnknownField: the hand-written match takes what the regexp it
// replaces took.
func TestUnknownField(t *testing.T) {
	re := regexp.MustCompile(`^json: unknown field "(.*)"$`)
	for _, msg := range []string{
		`json: unknown field "sycalls"`, `json: unknown field ""`, `json: unknown field "a"b"`,
		`json: unknown field "a` + "\n" + `b"`, `json: unknown field "x`, `json: unknown field x"`,
		`xjson: unknown field "y"`, `json: unknown field "y" `, `other`, ``,
	} {
		name, ok := unknownField(msg)
		m := re.FindStringSubmatch(msg)
		if ok != (m != nil) || (ok && name != m[1]) {
			t.Errorf("unknownField(%q) = %q, %v; the regexp gives %q", msg, name, ok, m)
		}
	}
}
