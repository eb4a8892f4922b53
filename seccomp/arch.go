package seccomp

import "strings"

// Architectures with system call tables, besides ArchX86_64, ArchX86 and
// ArchX32 (profile.go).
const (
	ArchAARCH64     Arch = "SCMP_ARCH_AARCH64"
	ArchARM         Arch = "SCMP_ARCH_ARM"
	ArchRISCV64     Arch = "SCMP_ARCH_RISCV64"
	ArchPPC64LE     Arch = "SCMP_ARCH_PPC64LE"
	ArchPPC64       Arch = "SCMP_ARCH_PPC64"
	ArchS390X       Arch = "SCMP_ARCH_S390X"
	ArchLOONGARCH64 Arch = "SCMP_ARCH_LOONGARCH64"
)

// AUDIT_ARCH_* values (linux/audit.h): seccomp_data.arch. Bit 31 is
// __AUDIT_ARCH_64BIT, bit 30 __AUDIT_ARCH_LE.
const (
	auditArchX86_64      = 0xc000003e
	auditArchI386        = 0x40000003
	auditArchAARCH64     = 0xc00000b7
	auditArchARM         = 0x40000028
	auditArchRISCV64     = 0xc00000f3
	auditArchPPC64LE     = 0xc0000015
	auditArchPPC64       = 0x80000015
	auditArchS390X       = 0x80000016
	auditArchLOONGARCH64 = 0xc0000102
	auditArchLE          = 0x40000000
	auditArch64Bit       = 0x80000000
)

// archInfo describes one architecture section of a program.
type archInfo struct {
	arch   Arch
	goarch string // the GOARCH that runs natively as this arch
	audit  uint32
	tab    *sysTable
	// family: the architectures one kernel can report for the processes
	// of a given native one (x86_64 and i386 on an x86_64 kernel, aarch64
	// and arm on an arm64 one). A filter is inherited across execve, so a
	// 386 sandbox may see x86_64 calls; only these sections are compiled.
	family   string
	highZero bool // 32-bit ABI: the upper halves of arguments are always 0
	x32      bool // deny numbers with the x32 bit
}

// bigEndian: the kernel loads seccomp_data's 32-bit words natively, so on
// a big-endian arch an argument's upper half comes first.
func (ai archInfo) bigEndian() bool { return ai.audit&auditArchLE == 0 }

// table is the arch's system call numbers by name.
func (ai archInfo) table() map[string]uint32 { return ai.tab.byName() }

// archInfos are the architectures filters are compiled for, in the order
// of the sections of a program.
//
// Compat ABIs that have no table here reach the bad-arch action:
// ppc64's 32-bit ppc (AUDIT_ARCH_PPC), s390x's 31-bit s390
// (AUDIT_ARCH_S390) and riscv64's rv32 (AUDIT_ARCH_RISCV32), all rare
// (and usually built out of distribution kernels). x32 shares
// AUDIT_ARCH_X86_64 and is told apart by bit 30 of the number.
var archInfos = []archInfo{
	{arch: ArchX86_64, goarch: "amd64", audit: auditArchX86_64, tab: &syscallsX86_64, family: "x86", x32: true},
	{arch: ArchX86, goarch: "386", audit: auditArchI386, tab: &syscallsI386, family: "x86", highZero: true},
	{arch: ArchAARCH64, goarch: "arm64", audit: auditArchAARCH64, tab: &syscallsAarch64, family: "arm"},
	{arch: ArchARM, goarch: "arm", audit: auditArchARM, tab: &syscallsArm, family: "arm", highZero: true},
	{arch: ArchRISCV64, goarch: "riscv64", audit: auditArchRISCV64, tab: &syscallsRiscv64, family: "riscv64"},
	{arch: ArchPPC64LE, goarch: "ppc64le", audit: auditArchPPC64LE, tab: &syscallsPpc64le, family: "ppc64le"},
	{arch: ArchPPC64, goarch: "ppc64", audit: auditArchPPC64, tab: &syscallsPpc64, family: "ppc64"},
	{arch: ArchS390X, goarch: "s390x", audit: auditArchS390X, tab: &syscallsS390x, family: "s390x"},
	{arch: ArchLOONGARCH64, goarch: "loong64", audit: auditArchLOONGARCH64, tab: &syscallsLoong64, family: "loong64"},
}

// SupportedArchs are the GOARCH values Compile has a native section for.
func SupportedArchs() []string {
	s := make([]string, len(archInfos))
	for i, ai := range archInfos {
		s[i] = ai.goarch
	}
	return s
}

// Supported reports whether Compile can build filters for goarch.
func Supported(goarch string) bool {
	_, ok := nativeInfo(goarch)
	return ok
}

func nativeInfo(goarch string) (archInfo, bool) {
	for _, ai := range archInfos {
		if ai.goarch == goarch {
			return ai, true
		}
	}
	return archInfo{}, false
}

func infoOf(a Arch) (archInfo, bool) {
	for _, ai := range archInfos {
		if ai.arch == a {
			return ai, true
		}
	}
	return archInfo{}, false
}

// UnsupportedError is Compile's error for a native architecture it has
// no tables for.
type UnsupportedError struct{ Arch string }

func (e *UnsupportedError) Error() string {
	return "seccomp: unsupported architecture " + `"` + e.Arch + `"` +
		" (filters compile for " + strings.Join(SupportedArchs(), ", ") + ")"
}

// UnconfinedCost says what running without a filter (--seccomp=unconfined)
// gives up, for messages that suggest it.
const UnconfinedCost = "no system-call filter: the command may then use whatever the kernel allows " +
	"an unprivileged user namespace, keyrings, bpf, perf_event_open, userfaultfd, the new mount API, " +
	"io_uring, nested user namespaces and TIOCSTI included"
