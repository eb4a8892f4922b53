package seccomp

import (
	"iter"
	"slices"
	"strings"
	"sync"
)

// The tables are in ztables.go, generated from golang.org/x/sys's
// zsysnum_linux_*.go (see mktables.go): after updating golang.org/x/sys,
// run go generate to pick up new system calls.

//go:generate go run mktables.go

// sysEntry is one system call of a generated table: its number and where
// its name ends in the table's names (it starts where the previous one's
// ends).
type sysEntry struct {
	end uint16
	nr  uint32
}

// sysTable is one architecture's generated table, and its map by name,
// built on first use: a map literal of ~400 entries per architecture
// would be built at every start of every program that links this package
// (~1 ms for the nine), though most starts never compile a filter.
type sysTable struct {
	names   string
	entries []sysEntry
	once    sync.Once
	m       map[string]uint32
}

// all yields the table's names and numbers, in the generated order.
func (t *sysTable) all() iter.Seq2[string, uint32] {
	return func(yield func(string, uint32) bool) {
		start := uint16(0)
		for _, e := range t.entries {
			if !yield(t.names[start:e.end], e.nr) {
				return
			}
			start = e.end
		}
	}
}

func (t *sysTable) byName() map[string]uint32 {
	t.once.Do(func() {
		t.m = make(map[string]uint32, len(t.entries))
		for name, nr := range t.all() {
			t.m[name] = nr
		}
	})
	return t.m
}

// KnownSyscall reports whether name is a system call on some Linux
// architecture this package knows of.
func KnownSyscall(name string) bool {
	for _, ai := range archInfos {
		if _, ok := ai.table()[name]; ok {
			return true
		}
	}
	_, ok := slices.BinarySearch(syscallsOtherArch, name)
	return ok
}

// SyscallNumber returns the number of the system call name on arch
// (ArchX86_64, ArchAARCH64, ...).
func SyscallNumber(arch Arch, name string) (uint32, bool) {
	t := tableFor(arch)
	if t == nil {
		return 0, false
	}
	nr, ok := t[name]
	return nr, ok
}

func tableFor(arch Arch) map[string]uint32 {
	ai, ok := infoOf(arch)
	if !ok {
		return nil
	}
	return ai.table()
}

// scmpArch: s is one of libseccomp's architecture names, lower case,
// without the SCMP_ARCH_ prefix. (A switch, as archAlias: a map literal
// is built by code at every start of a program that links the package.)
func scmpArch(s string) bool {
	switch s {
	case "x86", "x86_64", "x32", "arm", "aarch64",
		"loongarch64", "m68k", "mips", "mipsel",
		"mips64", "mipsel64", "mips64n32", "mipsel64n32",
		"parisc", "parisc64", "ppc", "ppc64",
		"ppc64le", "s390", "s390x", "riscv64",
		"sh", "sheb":
		return true
	}
	return false
}

// archAlias maps Go's GOARCH names (Docker's "includes.arches" uses
// them) and a few common spellings to libseccomp's names.
func archAlias(s string) (string, bool) {
	switch s {
	case "amd64":
		return "x86_64", true
	case "386", "i386", "i686":
		return "x86", true
	case "arm64":
		return "aarch64", true
	case "loong64":
		return "loongarch64", true
	case "mipsle":
		return "mipsel", true
	case "mips64le":
		return "mipsel64", true
	case "sparc64":
		return "sparc64", true
	}
	return "", false
}

// canonArch returns libseccomp's lower-case name for an architecture
// given as SCMP_ARCH_X, a libseccomp name or a GOARCH name.
func canonArch(s string) (string, bool) {
	l := strings.ToLower(s)
	if rest, ok := strings.CutPrefix(l, "scmp_arch_"); ok {
		if strings.HasPrefix(s, "SCMP_ARCH_") && scmpArch(rest) {
			return rest, true
		}
		return "", false
	}
	if a, ok := archAlias(l); ok {
		return a, true
	}
	if scmpArch(l) {
		return l, true
	}
	return "", false
}

// knownSCMPArch reports whether a is "SCMP_ARCH_" and a libseccomp name.
func knownSCMPArch(a Arch) bool {
	rest, ok := strings.CutPrefix(string(a), "SCMP_ARCH_")
	return ok && rest == strings.ToUpper(rest) && scmpArch(strings.ToLower(rest))
}
