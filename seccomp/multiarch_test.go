package seccomp

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sectionsOf returns the architectures a filter compiled for goarch has
// rules for (the native one and those of its family).
func sectionsOf(t testing.TB, goarch string) []archInfo {
	t.Helper()
	native, ok := nativeInfo(goarch)
	if !ok {
		t.Fatalf("no arch %s", goarch)
	}
	var s []archInfo
	for _, ai := range archInfos {
		if ai.family == native.family {
			s = append(s, ai)
		}
	}
	return s
}

// cloneFlagsArg is the index of clone's flags argument on arch.
func cloneFlagsArg(arch Arch) int {
	if arch == ArchS390X {
		return 1 // CLONE_BACKWARDS2: clone(stack, flags, ...)
	}
	return 0
}

// foreignAudits are AUDIT_ARCH values no compiled table has: compat ABIs
// without one, and other architectures.
var foreignAudits = []uint32{
	unix.AUDIT_ARCH_PPC, unix.AUDIT_ARCH_S390, unix.AUDIT_ARCH_RISCV32, unix.AUDIT_ARCH_MIPSEL64,
	unix.AUDIT_ARCH_MIPS, unix.AUDIT_ARCH_MIPSEL64N32, unix.AUDIT_ARCH_SPARC64, unix.AUDIT_ARCH_ARMEB, 0, 0xffffffff,
}

func TestAuditArchConstants(t *testing.T) {
	want := map[Arch]uint32{
		ArchX86_64: unix.AUDIT_ARCH_X86_64, ArchX86: unix.AUDIT_ARCH_I386, ArchAARCH64: unix.AUDIT_ARCH_AARCH64,
		ArchARM: unix.AUDIT_ARCH_ARM, ArchRISCV64: unix.AUDIT_ARCH_RISCV64, ArchPPC64LE: unix.AUDIT_ARCH_PPC64LE,
		ArchPPC64: unix.AUDIT_ARCH_PPC64, ArchS390X: unix.AUDIT_ARCH_S390X, ArchLOONGARCH64: unix.AUDIT_ARCH_LOONGARCH64,
	}
	if len(want) != len(archInfos) {
		t.Fatalf("%d archInfos, %d expected", len(archInfos), len(want))
	}
	for _, ai := range archInfos {
		if ai.audit != want[ai.arch] {
			t.Errorf("%s: audit %#x, want %#x", ai.arch, ai.audit, want[ai.arch])
		}
		if c, ok := canonArch(ai.goarch); !ok || "SCMP_ARCH_"+strings.ToUpper(c) != string(ai.arch) {
			t.Errorf("%s: GOARCH %s is %q in libseccomp's names", ai.arch, ai.goarch, c)
		}
		if !knownSCMPArch(ai.arch) {
			t.Errorf("%s: not a libseccomp name", ai.arch)
		}
		if ai.highZero != (ai.audit&auditArch64Bit == 0) {
			t.Errorf("%s: highZero %v, audit %#x", ai.arch, ai.highZero, ai.audit)
		}
		if len(ai.table()) < 280 {
			t.Errorf("%s: table of %d system calls", ai.arch, len(ai.table()))
		}
	}
	for _, c := range []struct {
		arch Arch
		name string
		nr   uint32
	}{
		// From the kernel's tables (asm-generic/unistd.h, arch/*/syscall.tbl).
		{ArchAARCH64, "read", 63}, {ArchAARCH64, "clone", 220}, {ArchAARCH64, "unshare", 97},
		{ArchAARCH64, "ioctl", 29}, {ArchAARCH64, "clone3", 435}, {ArchAARCH64, "keyctl", 219},
		{ArchARM, "read", 3}, {ArchARM, "clone", 120}, {ArchARM, "arm_fadvise64_64", 270},
		{ArchARM, "breakpoint", 0xf0001}, {ArchARM, "set_tls", 0xf0005}, {ArchARM, "cacheflush", 0xf0002},
		{ArchRISCV64, "riscv_flush_icache", 259}, {ArchRISCV64, "read", 63},
		{ArchPPC64LE, "read", 3}, {ArchPPC64LE, "clone", 120}, {ArchPPC64LE, "sync_file_range2", 308},
		{ArchPPC64, "unshare", 282}, {ArchS390X, "read", 3}, {ArchS390X, "clone", 120},
		{ArchS390X, "s390_runtime_instr", 342}, {ArchLOONGARCH64, "read", 63}, {ArchLOONGARCH64, "clone3", 435},
	} {
		if nr, ok := SyscallNumber(c.arch, c.name); !ok || nr != c.nr {
			t.Errorf("%s %s = %d, %v; want %d", c.arch, c.name, nr, ok, c.nr)
		}
	}
	for _, c := range []struct {
		arch Arch
		name string
	}{{ArchAARCH64, "open"}, {ArchAARCH64, "fork"}, {ArchRISCV64, "renameat"}, {ArchS390X, "socketcall_x"}, {ArchARM, "arch_prctl"}} {
		if _, ok := SyscallNumber(c.arch, c.name); ok {
			t.Errorf("%s has %s", c.arch, c.name)
		}
	}
}

// TestDefaultEveryArch runs the default filter compiled for every
// supported GOARCH over allowed, denied and bad-arch records of every
// section, and every system call of every section against the model.
func TestDefaultEveryArch(t *testing.T) {
	const (
		sigchld    = 17
		cloneNewNS = 0x00020000
		tcgets     = 0x5401
		perLinux32 = 0x8
		addrNoRand = 0x0040000
	)
	p := Default(DefaultOptions{})
	for _, native := range archInfos {
		t.Run(native.goarch, func(t *testing.T) {
			prog, err := Compile(p, Options{Arch: native.goarch})
			if err != nil {
				t.Fatal(err)
			}
			v := newVM(t, prog)
			t.Logf("%s: %d instructions", native.goarch, prog.Len())
			secs := sectionsOf(t, native.goarch)
			for _, sec := range secs {
				call := func(name string, args ...uint64) (uint32, bool) {
					nr, ok := sec.table()[name]
					if !ok {
						return 0, false
					}
					d := data{nr: nr, arch: sec.audit}
					copy(d.args[:], args)
					return v.run(d), true
				}
				check := func(want uint32, name string, args ...uint64) {
					t.Helper()
					got, ok := call(name, args...)
					if !ok {
						if name == "read" || name == "clone" || name == "ioctl" || name == "keyctl" || name == "mount" {
							t.Errorf("%s has no %s", sec.arch, name)
						}
						return
					}
					if got != want {
						t.Errorf("%s on %s: %s%#x = %s, want %s", sec.arch, native.goarch, name, args, retString(got), retString(want))
					}
				}
				cl := func(flags uint64) []uint64 {
					a := make([]uint64, 2)
					a[cloneFlagsArg(sec.arch)] = flags
					a[1-cloneFlagsArg(sec.arch)] = cloneNewUser // the other argument (stack) may hold anything
					return a
				}
				for _, n := range []string{"read", "write", "close", "execve", "futex", "exit_group", "getpid", "ptrace", "chroot", "wait4", "pidfd_open"} {
					check(allow, n)
				}
				for _, n := range []string{"keyctl", "add_key", "bpf", "mount", "umount2", "pivot_root", "init_module", "finit_module",
					"kexec_load", "setns", "kcmp", "userfaultfd", "reboot", "fsopen", "open_by_handle_at", "perf_event_open"} {
					check(eperm, n)
				}
				check(enosys, "clone3")
				check(enosys, "io_uring_setup")
				check(allow, "clone", cl(sigchld)...)
				check(eperm, "clone", cl(cloneNewUser|sigchld)...)
				check(allow, "unshare", cloneNewNS)
				check(eperm, "unshare", cloneNewUser|cloneNewNS)
				check(allow, "ioctl", 0, tcgets)
				check(eperm, "ioctl", 0, ioctlTIOCSTI)
				check(eperm, "ioctl", 1, ioctlTIOCLNX)
				check(allow, "personality", 0)
				check(allow, "personality", perLinux32)
				check(eperm, "personality", addrNoRand)
				if !sec.highZero {
					// The argument halves are where this arch's kernel
					// puts them: a flag in the other half must not count,
					// garbage above a 32-bit request must not hide it.
					check(allow, "unshare", cloneNewUser<<32)
					check(eperm, "unshare", 0xdead0000<<32|cloneNewUser)
					check(eperm, "ioctl", 0, 0xffffffff<<32|ioctlTIOCSTI)
					check(allow, "ioctl", 0, ioctlTIOCSTI<<32)
				}
				// x32: the x86_64 arch with bit 30 in the number; elsewhere
				// such numbers are no system call (the profile's default).
				x32 := uint32(allow)
				if sec.x32 {
					x32 = enosys
				}
				for _, nr := range []uint32{x32SyscallBit, x32SyscallBit | sec.table()["read"], 0x7fffffff} {
					if got := v.run(data{nr: nr, arch: sec.audit}); got != x32 {
						t.Errorf("%s: nr %#x = %s, want %s", sec.arch, nr, retString(got), retString(x32))
					}
				}
				// Every system call against the model.
				for name, nr := range sec.table() {
					for _, args := range [][6]uint64{{}, {cloneNewUser, ioctlTIOCSTI}, {0x40000, ioctlTIOCLNX}, {0xffffffff, cloneNewUser}} {
						d := data{nr: nr, arch: sec.audit, args: args}
						if want, got := model(t, p, native.arch, d), v.run(d); got != want {
							t.Errorf("%s on %s: %s%#x: got %s, model %s", sec.arch, native.goarch, name, args[:2], retString(got), retString(want))
						}
					}
				}
			}
			// Bad arch: every arch outside the family, and foreign ones.
			bad := append([]uint32(nil), foreignAudits...)
			for _, ai := range archInfos {
				if ai.family != native.family {
					bad = append(bad, ai.audit)
				}
			}
			for _, a := range bad {
				for _, nr := range []uint32{0, 3, 63, 220} {
					if got := v.run(data{nr: nr, arch: a}); got != retKillProcess {
						t.Errorf("arch %#x nr %d = %s, want KILL_PROCESS", a, nr, retString(got))
					}
				}
			}
			// The bad-arch action is configurable.
			for act, want := range map[Action]uint32{ActErrno: enosys, ActTrap: retTrap, ActKillThread: retKillThread} {
				prog, err := Compile(p, Options{Arch: native.goarch, BadArchAction: act})
				if err != nil {
					t.Fatal(err)
				}
				v := newVM(t, prog)
				for _, a := range bad {
					if got := v.run(data{nr: 3, arch: a}); got != want {
						t.Errorf("BadArchAction %s: arch %#x = %s, want %s", act, a, retString(got), retString(want))
					}
				}
			}
		})
	}
}

// TestDefaultCompatNeedsListing: a profile that does not list the compat
// arch sends its calls to the bad-arch action; listing it (or archMap)
// compiles the same rules for it.
func TestDefaultCompatNeedsListing(t *testing.T) {
	for _, c := range []struct{ native, compat Arch }{{ArchX86_64, ArchX86}, {ArchAARCH64, ArchARM}, {ArchARM, ArchAARCH64}, {ArchX86, ArchX86_64}} {
		ni, _ := infoOf(c.native)
		ci, _ := infoOf(c.compat)
		p := &Profile{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"getpid"}, Action: ActErrno}}}
		prog, err := Compile(p, Options{Arch: ni.goarch})
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, prog)
		if got := v.run(data{nr: ci.table()["getpid"], arch: ci.audit}); got != retKillProcess {
			t.Errorf("%s native, %s not listed: %s", c.native, c.compat, retString(got))
		}
		if got := v.run(data{nr: ni.table()["getpid"], arch: ni.audit}); got != eperm {
			t.Errorf("%s native getpid: %s", c.native, retString(got))
		}
		p.ArchMap = []ArchMap{{Architecture: c.native, SubArchitectures: []Arch{c.compat}}}
		if prog, err = Compile(p, Options{Arch: ni.goarch}); err != nil {
			t.Fatal(err)
		}
		v = newVM(t, prog)
		if got := v.run(data{nr: ci.table()["getpid"], arch: ci.audit}); got != eperm {
			t.Errorf("%s native, %s through archMap: %s", c.native, c.compat, retString(got))
		}
	}
}

// TestComparisonsEveryArch checks the argument comparisons on a
// little-endian and a big-endian 64-bit arch and a 32-bit one.
func TestComparisonsEveryArch(t *testing.T) {
	for _, goarch := range []string{"arm64", "s390x", "ppc64", "riscv64"} {
		t.Run(goarch, func(t *testing.T) { comparisons(t, goarch) })
	}
}

// TestRandomProfilesEveryArch: random profiles, VM against the model, for
// each supported GOARCH (TestRandomProfiles does amd64 at length).
func TestRandomProfilesEveryArch(t *testing.T) {
	for _, ai := range archInfos {
		if ai.goarch == "amd64" {
			continue
		}
		t.Run(ai.goarch, func(t *testing.T) { randomProfiles(t, ai.goarch, 8) })
	}
}

func TestUnsupportedArch(t *testing.T) {
	for _, goarch := range []string{"mips64le", "mips", "sparc64", "wasm"} {
		_, err := Compile(Default(DefaultOptions{}), Options{Arch: goarch})
		var ue *UnsupportedError
		if !errors.As(err, &ue) || ue.Arch != goarch {
			t.Errorf("%s: err = %v", goarch, err)
		}
		if Supported(goarch) {
			t.Errorf("%s supported", goarch)
		}
	}
	for _, goarch := range []string{"amd64", "386", "arm64", "arm", "riscv64", "ppc64le", "ppc64", "s390x", "loong64"} {
		if !Supported(goarch) {
			t.Errorf("%s not supported", goarch)
		}
	}
}

// dockerCaps are the capabilities Docker gives a container by default.
var dockerCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// TestDockerDefaultEveryArch compiles Docker's own default profile
// (testdata/docker-default.json, moby/profiles v0.3.0) for every GOARCH and
// checks a sample of system calls against what Docker documents for it:
// an allow-list with EPERM as the default, clone without namespace flags
// (flags in the second argument on s390x), clone3 ENOSYS, personality's
// few values, socket families, the arch-specific allowances, and the
// archMap compat arches. Every system call is also checked against the
// model (without capabilities).
func TestDockerDefaultEveryArch(t *testing.T) {
	f, err := os.Open("testdata/docker-default.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	const (
		sigchld    = 17
		cloneNewNS = 0x00020000
	)
	// Sections Docker's archMap enables beside the native one.
	compat := map[Arch]Arch{ArchX86_64: ArchX86, ArchAARCH64: ArchARM}
	for _, native := range archInfos {
		t.Run(native.goarch, func(t *testing.T) {
			prog, err := Compile(p, Options{Arch: native.goarch, Caps: dockerCaps, Kernel: "6.1"})
			if err != nil {
				t.Fatal(err)
			}
			v := newVM(t, prog)
			secs := []archInfo{native}
			if c, ok := compat[native.arch]; ok {
				ci, _ := infoOf(c)
				secs = append(secs, ci)
			}
			for _, sec := range secs {
				check := func(want uint32, name string, args ...uint64) {
					t.Helper()
					nr, ok := sec.table()[name]
					if !ok {
						return
					}
					d := data{nr: nr, arch: sec.audit}
					copy(d.args[:], args)
					if got := v.run(d); got != want {
						t.Errorf("%s on %s: %s%#x = %s, want %s", sec.arch, native.goarch, name, args, retString(got), retString(want))
					}
				}
				cl := func(flags uint64) []uint64 {
					a := make([]uint64, 2)
					a[cloneFlagsArg(sec.arch)] = flags
					return a
				}
				for _, n := range []string{"read", "write", "ioctl", "futex", "execve", "exit_group", "chroot", "ptrace", "socketpair"} {
					check(allow, n)
				}
				for _, n := range []string{"mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "bpf", "perf_event_open",
					"init_module", "reboot", "swapon", "open_by_handle_at", "kexec_load", "io_uring_setup", "userfaultfd", "settimeofday"} {
					check(eperm, n)
				}
				check(allow, "clone", cl(sigchld)...)
				check(eperm, "clone", cl(cloneNewUser|sigchld)...)
				check(eperm, "clone", cl(cloneNewNS|sigchld)...)
				check(enosys, "clone3")
				check(allow, "personality", 0)
				check(allow, "personality", 0x20008)
				check(eperm, "personality", 0x40000)
				check(allow, "socket", 2)  // AF_INET
				check(allow, "socket", 16) // AF_NETLINK
				check(eperm, "socket", 40) // AF_VSOCK
				check(eperm, "socket", 4)  // AF_IPX
				// Arch-specific allowances: only where Docker lists them.
				only := map[string]string{"arch_prctl": "amd64", "arm_fadvise64_64": "arm arm64", "riscv_flush_icache": "riscv64",
					"s390_runtime_instr": "s390x", "sync_file_range2": "ppc64le arm arm64"}
				for name, where := range only {
					want := uint32(eperm)
					for _, w := range strings.Fields(where) {
						if c, _ := canonArch(w); c == mustCanon(t, native.goarch) {
							want = allow
						}
					}
					check(want, name)
				}
				if got := v.run(data{nr: 0x3fff, arch: sec.audit}); got != eperm {
					t.Errorf("%s: an unknown number = %s, want EPERM", sec.arch, retString(got))
				}
			}
			for _, ai := range archInfos {
				in := false
				for _, s := range secs {
					in = in || s.arch == ai.arch
				}
				if !in {
					if got := v.run(data{nr: 3, arch: ai.audit}); got != retKillProcess {
						t.Errorf("arch %s = %s, want KILL_PROCESS", ai.arch, retString(got))
					}
				}
			}
			// Everything against the model (no capabilities there).
			prog, err = Compile(p, Options{Arch: native.goarch, Kernel: "6.1"})
			if err != nil {
				t.Fatal(err)
			}
			v = newVM(t, prog)
			for _, sec := range secs {
				for name, nr := range sec.table() {
					for _, args := range [][6]uint64{{}, {2, 0}, {40, 1}, {0x7e020000, 0x7e020000}, {0x20008, 17}} {
						d := data{nr: nr, arch: sec.audit, args: args}
						if want, got := model(t, p, native.arch, d), v.run(d); got != want {
							t.Errorf("%s on %s: %s%#x: got %s, model %s", sec.arch, native.goarch, name, args[:2], retString(got), retString(want))
						}
					}
				}
			}
		})
	}
}

func mustCanon(t testing.TB, goarch string) string {
	t.Helper()
	c, ok := canonArch(goarch)
	if !ok {
		t.Fatalf("no libseccomp name for %s", goarch)
	}
	return c
}
