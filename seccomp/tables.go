package seccomp

import (
	"slices"
	"strings"
	"sync"
)

// The tables are in ztables.go, generated from golang.org/x/sys's
// zsysnum_linux_*.go (see mktables.go): after updating golang.org/x/sys,
// run go generate to pick up new system calls.

//go:generate go run mktables.go

// sysEntry is one system call of a generated table.
type sysEntry struct {
	name string
	nr   uint32
}

// sysTable is one architecture's generated table, and its map by name,
// built on first use: a map literal of ~400 entries per architecture
// would be built at every start of every program that links this package
// (~1 ms for the nine), though most starts never compile a filter.
type sysTable struct {
	entries []sysEntry
	once    sync.Once
	m       map[string]uint32
}

func (t *sysTable) byName() map[string]uint32 {
	t.once.Do(func() {
		t.m = make(map[string]uint32, len(t.entries))
		for _, e := range t.entries {
			t.m[e.name] = e.nr
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

// scmpArches are libseccomp's architecture names, lower case, without the
// SCMP_ARCH_ prefix.
var scmpArches = map[string]bool{
	"x86": true, "x86_64": true, "x32": true, "arm": true, "aarch64": true,
	"loongarch64": true, "m68k": true, "mips": true, "mipsel": true,
	"mips64": true, "mipsel64": true, "mips64n32": true, "mipsel64n32": true,
	"parisc": true, "parisc64": true, "ppc": true, "ppc64": true,
	"ppc64le": true, "s390": true, "s390x": true, "riscv64": true,
	"sh": true, "sheb": true,
}

// archAliases maps Go's GOARCH names (Docker's "includes.arches" uses
// them) and a few common spellings to libseccomp's names.
var archAliases = map[string]string{
	"amd64":    "x86_64",
	"386":      "x86",
	"i386":     "x86",
	"i686":     "x86",
	"arm64":    "aarch64",
	"loong64":  "loongarch64",
	"mipsle":   "mipsel",
	"mips64le": "mipsel64",
	"sparc64":  "sparc64",
}

// canonArch returns libseccomp's lower-case name for an architecture
// given as SCMP_ARCH_X, a libseccomp name or a GOARCH name.
func canonArch(s string) (string, bool) {
	l := strings.ToLower(s)
	if rest, ok := strings.CutPrefix(l, "scmp_arch_"); ok {
		if strings.HasPrefix(s, "SCMP_ARCH_") && scmpArches[rest] {
			return rest, true
		}
		return "", false
	}
	if a, ok := archAliases[l]; ok {
		return a, true
	}
	if scmpArches[l] {
		return l, true
	}
	return "", false
}

// knownSCMPArch reports whether a is "SCMP_ARCH_" and a libseccomp name.
func knownSCMPArch(a Arch) bool {
	rest, ok := strings.CutPrefix(string(a), "SCMP_ARCH_")
	return ok && rest == strings.ToUpper(rest) && scmpArches[strings.ToLower(rest)]
}
