package seccomp

import (
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

const (
	allow  = retAllow
	eperm  = retErrno | errnoEPERM
	enosys = retErrno | errnoENOSYS
)

func compileDefault(t *testing.T, o DefaultOptions) *Program {
	t.Helper()
	p, err := Compile(Default(o), Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultProfile(t *testing.T) {
	prog := compileDefault(t, DefaultOptions{})
	v := newVM(t, prog)
	t.Logf("default profile: %d instructions", prog.Len())

	const (
		cloneNewNS  = 0x00020000
		sigchld     = 17
		tcgets      = 0x5401
		cloneThread = 0x00010000 | 0x00000100 | 0x00000200 | 0x00000400 | 0x00000800 | 0x00040000 // VM|FS|FILES|SIGHAND|THREAD|SYSVSEM
	)
	type tc struct {
		name string
		args [6]uint64
		want uint32
	}
	common := []tc{
		{"read", [6]uint64{0, 0, 0}, allow},
		{"write", [6]uint64{1}, allow},
		{"futex", [6]uint64{}, allow},
		{"mmap", [6]uint64{}, allow},
		{"rt_sigreturn", [6]uint64{}, allow},
		{"sched_yield", [6]uint64{}, allow},
		{"wait4", [6]uint64{}, allow},
		{"kill", [6]uint64{}, allow},
		{"sendmsg", [6]uint64{}, allow},
		{"exit_group", [6]uint64{}, allow},
		{"execve", [6]uint64{}, allow},
		{"pidfd_open", [6]uint64{}, allow},
		{"waitid", [6]uint64{}, allow},
		{"chroot", [6]uint64{}, allow},
		{"ptrace", [6]uint64{}, allow},
		{"process_vm_readv", [6]uint64{}, allow},
		{"keyctl", [6]uint64{}, eperm},
		{"add_key", [6]uint64{}, eperm},
		{"bpf", [6]uint64{}, eperm},
		{"mount", [6]uint64{}, eperm},
		{"umount2", [6]uint64{}, eperm},
		{"pivot_root", [6]uint64{}, eperm},
		{"fsopen", [6]uint64{}, eperm},
		{"open_tree_attr", [6]uint64{}, eperm},
		{"mount_setattr", [6]uint64{}, eperm},
		{"kcmp", [6]uint64{}, eperm},
		{"userfaultfd", [6]uint64{}, eperm},
		{"reboot", [6]uint64{}, eperm},
		{"init_module", [6]uint64{}, eperm},
		{"setns", [6]uint64{}, eperm},
		{"clone3", [6]uint64{}, enosys},
		{"io_uring_setup", [6]uint64{}, enosys},
		{"io_uring_enter", [6]uint64{}, enosys},
		{"io_uring_register", [6]uint64{}, enosys},
		{"unshare", [6]uint64{cloneNewUser}, eperm},
		{"unshare", [6]uint64{cloneNewUser | cloneNewNS}, eperm},
		{"unshare", [6]uint64{cloneNewNS}, allow},
		{"unshare", [6]uint64{0}, allow},
		{"clone", [6]uint64{cloneNewUser | sigchld}, eperm},
		{"clone", [6]uint64{sigchld}, allow},
		{"clone", [6]uint64{cloneThread}, allow},
		{"clone", [6]uint64{0x4000 | 0x100 | 0x1000 | sigchld}, allow}, // CLONE_VFORK|CLONE_VM|CLONE_PIDFD: os.StartProcess
		{"ioctl", [6]uint64{0, ioctlTIOCSTI}, eperm},
		{"ioctl", [6]uint64{5, ioctlTIOCLNX}, eperm},
		{"ioctl", [6]uint64{0, tcgets}, allow},
		{"ioctl", [6]uint64{0, ioctlTIOCSTI + 1}, allow},
		{"personality", [6]uint64{0}, allow},
		{"personality", [6]uint64{8}, allow},
		{"personality", [6]uint64{0x20008}, allow},
		{"personality", [6]uint64{0xffffffff}, allow},
		{"personality", [6]uint64{0x0040000}, eperm}, // ADDR_NO_RANDOMIZE
		{"personality", [6]uint64{0x0400000}, eperm}, // READ_IMPLIES_EXEC
	}
	for _, arch := range []Arch{ArchX86_64, ArchX86} {
		for _, c := range common {
			d := data{nr: nrOf(t, arch, c.name), arch: auditOf(t, arch), args: c.args}
			if got := v.run(d); got != c.want {
				t.Errorf("%s %s%v: got %s, want %s", arch, c.name, c.args[:2], retString(got), retString(c.want))
			}
		}
	}
	x64 := func(name string, args ...uint64) uint32 {
		d := data{nr: nrOf(t, ArchX86_64, name), arch: auditArchX86_64}
		copy(d.args[:], args)
		return v.run(d)
	}
	// The kernel truncates ioctl's request to 32 bits: garbage above must
	// not hide TIOCSTI.
	if got := x64("ioctl", 0, 0x100000000|ioctlTIOCSTI); got != eperm {
		t.Errorf("ioctl(0x100005412) = %s, want EPERM", retString(got))
	}
	if got := x64("ioctl", 0, 0xdeadbeef00000000|ioctlTIOCLNX); got != eperm {
		t.Errorf("ioctl(0xdeadbeef0000541c) = %s, want EPERM", retString(got))
	}
	// Upper bits of unshare's flags do not matter either way.
	if got := x64("unshare", 0xffffffff00000000|cloneNewUser); got != eperm {
		t.Errorf("unshare(high|CLONE_NEWUSER) = %s", retString(got))
	}
	// Names that only exist on one side.
	for _, c := range []struct {
		arch Arch
		name string
		want uint32
	}{
		{ArchX86, "stime", eperm}, {ArchX86, "vm86", eperm}, {ArchX86, "vm86old", eperm},
		{ArchX86, "clock_settime64", eperm}, {ArchX86, "socketcall", allow},
		{ArchX86_64, "arch_prctl", allow}, {ArchX86_64, "_sysctl", eperm},
	} {
		d := data{nr: nrOf(t, c.arch, c.name), arch: auditOf(t, c.arch)}
		if got := v.run(d); got != c.want {
			t.Errorf("%s %s = %s, want %s", c.arch, c.name, retString(got), retString(c.want))
		}
	}
	// x32: the x86_64 arch with bit 30 in the number.
	for _, nr := range []uint32{x32SyscallBit, x32SyscallBit | nrOf(t, ArchX86_64, "read"), x32SyscallBit | 520, 0x7fffffff} {
		if got := v.run(data{nr: nr, arch: auditArchX86_64}); got != enosys {
			t.Errorf("x32 nr %#x = %s, want ENOSYS", nr, retString(got))
		}
	}
	// Unknown architectures.
	for _, arch := range []uint32{0xc00000b7 /* aarch64 */, 0x40000028 /* arm */, 0} {
		if got := v.run(data{nr: 0, arch: arch}); got != retKillProcess {
			t.Errorf("arch %#x = %s, want KILL_PROCESS", arch, retString(got))
		}
	}
	// Numbers no table has are allowed (the profile's default) and
	// fail with ENOSYS in the kernel.
	for _, nr := range []uint32{999, 0x3fffffff, 0x80000000, 0xffffffff} {
		if got := v.run(data{nr: nr, arch: auditArchX86_64}); got != allow {
			t.Errorf("nr %#x = %s", nr, retString(got))
		}
	}

	// Every system call of both tables against the reference model,
	// with a few argument patterns.
	p := Default(DefaultOptions{})
	for _, arch := range []Arch{ArchX86_64, ArchX86} {
		for name, nr := range tableFor(arch) {
			for _, args := range [][6]uint64{{}, {cloneNewUser, ioctlTIOCSTI}, {0x40000, ioctlTIOCLNX}, {0xffffffff, 0}} {
				d := data{nr: nr, arch: auditOf(t, arch), args: args}
				if want, got := model(t, p, ArchX86_64, d), v.run(d); got != want {
					t.Errorf("%s %s%v: got %s, model %s", arch, name, args[:2], retString(got), retString(want))
				}
			}
		}
	}
}

func TestDefaultOptions(t *testing.T) {
	v := newVM(t, compileDefault(t, DefaultOptions{AllowNestedUserns: true, DenyPtrace: true}))
	for _, c := range []struct {
		name string
		arg0 uint64
		want uint32
	}{
		{"unshare", cloneNewUser, allow},
		{"clone", cloneNewUser | 17, allow},
		{"clone3", 0, allow},
		{"setns", 0, allow},
		{"ptrace", 0, eperm},
		{"process_vm_writev", 0, eperm},
		{"keyctl", 0, eperm},
		// A nested sandbox or container mounts in its own namespaces.
		{"mount", 0, allow},
		{"umount2", 0, allow},
		{"pivot_root", 0, allow},
		{"mount_setattr", 0, allow},
	} {
		d := data{nr: nrOf(t, ArchX86_64, c.name), arch: auditArchX86_64, args: [6]uint64{c.arg0}}
		if got := v.run(d); got != c.want {
			t.Errorf("%s(%#x) = %s, want %s", c.name, c.arg0, retString(got), retString(c.want))
		}
	}
	// With CAP_SYS_ADMIN the payload could mount in the sandbox's own
	// namespace (remount a read-only bind): mounts stay denied.
	p, err := Compile(Default(DefaultOptions{AllowNestedUserns: true}), Options{Arch: "amd64", Caps: []string{"CAP_SYS_ADMIN"}})
	if err != nil {
		t.Fatal(err)
	}
	v = newVM(t, p)
	for _, name := range []string{"mount", "umount2", "pivot_root", "mount_setattr", "move_mount"} {
		d := data{nr: nrOf(t, ArchX86_64, name), arch: auditArchX86_64}
		if got := v.run(d); got != eperm {
			t.Errorf("with CAP_SYS_ADMIN, %s = %s, want EPERM", name, retString(got))
		}
	}
}

func TestDefaultNeverKills(t *testing.T) {
	p := Default(DefaultOptions{})
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, s := range p.Syscalls {
		if s.Action != ActErrno || s.ErrnoRet == nil {
			t.Errorf("rule %d (%v): action %s", i, s.names(), s.Action)
		}
		if s.Comment == "" {
			t.Errorf("rule %d (%v): no comment", i, s.names())
		}
		for _, n := range s.names() {
			if _, ok := SyscallNumber(ArchX86_64, n); ok {
				continue
			}
			if _, ok := SyscallNumber(ArchX86, n); !ok {
				t.Errorf("rule %d: %s is on neither x86_64 nor i386", i, n)
			}
		}
	}
}

func TestCompileI386Native(t *testing.T) {
	// A 386 build: the i386 section is native, x86_64 listed.
	prog, err := Compile(Default(DefaultOptions{}), Options{Arch: "386"})
	if err != nil {
		t.Fatal(err)
	}
	v := newVM(t, prog)
	if got := v.run(data{nr: nrOf(t, ArchX86, "keyctl"), arch: auditArchI386}); got != eperm {
		t.Errorf("i386 keyctl = %s", retString(got))
	}
	if got := v.run(data{nr: nrOf(t, ArchX86_64, "keyctl"), arch: auditArchX86_64}); got != eperm {
		t.Errorf("x86_64 keyctl = %s", retString(got))
	}
	var ue *UnsupportedError
	if _, err := Compile(Default(DefaultOptions{}), Options{Arch: "mips64le"}); !errors.As(err, &ue) {
		t.Errorf("mips64le: err = %v, want an UnsupportedError", err)
	}
}

func TestArchitectures(t *testing.T) {
	p := &Profile{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"getpid"}, Action: ActErrno}}}
	// Only the native arch: i386 calls are a bad arch.
	prog, err := Compile(p, Options{Arch: "amd64", BadArchAction: ActErrno})
	if err != nil {
		t.Fatal(err)
	}
	v := newVM(t, prog)
	if got := v.run(data{nr: nrOf(t, ArchX86, "getpid"), arch: auditArchI386}); got != enosys {
		t.Errorf("i386 without SCMP_ARCH_X86: %s", retString(got))
	}
	if got := v.run(data{nr: nrOf(t, ArchX86_64, "getpid"), arch: auditArchX86_64}); got != eperm {
		t.Errorf("x86_64 getpid: %s", retString(got))
	}
	// archMap of the native arch adds x86.
	p.ArchMap = []ArchMap{
		{Architecture: "SCMP_ARCH_AARCH64", SubArchitectures: []Arch{"SCMP_ARCH_ARM"}},
		{Architecture: ArchX86_64, SubArchitectures: []Arch{ArchX86, ArchX32}},
	}
	prog, err = Compile(p, Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	v = newVM(t, prog)
	if got := v.run(data{nr: nrOf(t, ArchX86, "getpid"), arch: auditArchI386}); got != eperm {
		t.Errorf("i386 through archMap: %s", retString(got))
	}
	if got := v.run(data{nr: 0xc00000b7, arch: 0xc00000b7}); got != retKillProcess {
		t.Errorf("aarch64: %s", retString(got))
	}
	for _, bad := range []Action{ActAllow, ActLog, "SCMP_ACT_FOO"} {
		if _, err := Compile(p, Options{Arch: "amd64", BadArchAction: bad}); err == nil {
			t.Errorf("BadArchAction %s: no error", bad)
		}
	}
}

func TestPrecedence(t *testing.T) {
	e := func(n uint) *uint { return &n }
	p := &Profile{
		DefaultAction:   ActErrno,
		DefaultErrnoRet: e(13),
		Architectures:   []Arch{ArchX86},
		Syscalls: []Syscall{
			{Names: []string{"ioctl"}, Action: ActAllow},
			{Names: []string{"ioctl"}, Action: ActErrno, ErrnoRet: e(5), Args: []Arg{{Index: 1, Value: 7, Op: OpEqual}}},
			{Names: []string{"ioctl"}, Action: ActErrno, ErrnoRet: e(6), Args: []Arg{{Index: 1, Value: 7, Op: OpEqual}}},
			{Names: []string{"ioctl"}, Action: ActKillProcess, Args: []Arg{{Index: 1, Value: 9, Op: OpEqual}}},
			{Names: []string{"ioctl"}, Action: ActLog, Args: []Arg{{Index: 1, Value: 8, Op: OpEqual}}},
			{Names: []string{"getpid"}, Action: ActTrace},
			{Names: []string{"getppid"}, Action: ActTrap},
			{Name: "gettid", Action: ActKill},
		},
	}
	prog, err := Compile(p, Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	v := newVM(t, prog)
	for _, arch := range []Arch{ArchX86_64, ArchX86} {
		run := func(name string, arg1 uint64) uint32 {
			return v.run(data{nr: nrOf(t, arch, name), arch: auditOf(t, arch), args: [6]uint64{0, arg1}})
		}
		for _, c := range []struct {
			name string
			arg1 uint64
			want uint32
		}{
			{"ioctl", 1, allow},
			{"ioctl", 7, retErrno | 5}, // ERRNO beats ALLOW; the first ERRNO rule wins
			{"ioctl", 8, retLog},       // LOG beats ALLOW
			{"ioctl", 9, retKillProcess},
			{"getpid", 0, enosys},
			{"getppid", 0, retTrap},
			{"gettid", 0, retKillThread},
			{"read", 0, retErrno | 13},
		} {
			if got := run(c.name, c.arg1); got != c.want {
				t.Errorf("%s %s(%d) = %s, want %s", arch, c.name, c.arg1, retString(got), retString(c.want))
			}
		}
	}
}

// TestComparisons checks every operator around the 32-bit boundaries of
// both halves against plain 64-bit arithmetic.
func TestComparisons(t *testing.T) { comparisons(t, "amd64") }

// comparisons checks every operator on ioctl's third argument, in a
// profile compiled for goarch, on every section of the program.
func comparisons(t *testing.T, goarch string) {
	native, _ := nativeInfo(goarch)
	values := []uint64{0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x100000000, 0x100000001,
		0x1ffffffff, 0x200000000, 0x7fffffffffffffff, 0x8000000000000000, 0xfffffffeffffffff,
		0xffffffff00000000, 0xffffffff00000001, 0xfffffffffffffffe, 0xffffffffffffffff, 0x123456789abcdef0}
	masks := []uint64{0, 0xff, 0xffffffff, 0xffffffff00000000, 0xffffffffffffffff, 0x10000000, 0xf0000000000000f0}
	for _, op := range operators {
		for _, v1 := range values {
			vs := []uint64{0}
			if op == OpMaskedEqual {
				vs = values
			}
			for _, v2 := range vs {
				v1 := v1
				if op == OpMaskedEqual {
					v1 = masks[int(v2%uint64(len(masks)))]
					v2 &= v1 | 1 // sometimes a bit outside the mask
				}
				p := &Profile{
					DefaultAction: ActAllow,
					Architectures: []Arch{ArchX86, ArchARM, ArchAARCH64},
					Syscalls: []Syscall{{Names: []string{"ioctl"}, Action: ActErrno,
						Args: []Arg{{Index: 2, Value: v1, ValueTwo: v2, Op: op}}}},
				}
				prog, err := Compile(p, Options{Arch: goarch})
				if err != nil {
					t.Fatal(err)
				}
				m := newVM(t, prog)
				for _, sec := range sectionsOf(t, goarch) {
					arch := sec.arch
					for _, x := range values {
						if sec.highZero {
							x &= 0xffffffff // the kernel zero-extends 32-bit registers
						}
						d := data{nr: nrOf(t, arch, "ioctl"), arch: auditOf(t, arch), args: [6]uint64{0, 0, x}}
						if got, want := m.run(d), model(t, p, native.arch, d); got != want {
							t.Fatalf("%s: %#x %s %#x/%#x: got %s, want %s\n%s", arch, x, op, v1, v2, retString(got), retString(want), prog)
						}
					}
				}
			}
		}
	}
}

// TestRandomProfiles compiles random profiles and compares the VM with the
// reference model on many inputs.
func TestRandomProfiles(t *testing.T) { randomProfiles(t, "amd64", 60) }

// randomProfiles runs seeds random profiles compiled for goarch; the
// programs have a section for each arch of its family.
func randomProfiles(t *testing.T, goarch string, seeds uint64) {
	native, _ := nativeInfo(goarch)
	secs := sectionsOf(t, goarch)
	var archs []Arch
	names := map[Arch][]string{}
	for _, sec := range secs {
		archs = append(archs, sec.arch)
		names[sec.arch] = sortedNames(sec.table())
	}
	interesting := []uint64{0, 1, 2, 3, 0x7f, 0xff, 0x100, 0x5412, 0x7fffffff, 0x80000000, 0xffffffff,
		0x100000000, 0x100000001, 0xffffffff00000000, 0xffffffffffffffff, 0x8000000000000000}
	allActions := []Action{ActAllow, ActErrno, ActKill, ActKillThread, ActKillProcess, ActTrap, ActTrace, ActLog}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 42))
		pickValue := func() uint64 {
			switch r.IntN(4) {
			case 0:
				return r.Uint64()
			case 1:
				return uint64(r.Uint32())
			default:
				return interesting[r.IntN(len(interesting))]
			}
		}
		p := &Profile{DefaultAction: allActions[r.IntN(len(allActions))], Architectures: archs}
		if p.DefaultAction == ActErrno {
			e := uint(r.IntN(100) + 1)
			p.DefaultErrnoRet = &e
		}
		nRules := 1 + r.IntN(120)
		if seed%10 == 0 {
			nRules = 400 // long programs: trampolines
		}
		var pool []string
		for range 1 + r.IntN(60) {
			n := names[archs[r.IntN(len(archs))]]
			pool = append(pool, n[r.IntN(len(n))])
		}
		for range nRules {
			s := Syscall{Action: allActions[r.IntN(len(allActions))]}
			for range 1 + r.IntN(3) {
				s.Names = append(s.Names, pool[r.IntN(len(pool))])
			}
			if s.Action == ActErrno && r.IntN(2) == 0 {
				e := uint(r.IntN(4095) + 1)
				s.ErrnoRet = &e
			}
			for range r.IntN(4) {
				a := Arg{Index: uint(r.IntN(6)), Op: operators[r.IntN(len(operators))], Value: pickValue()}
				if a.Op == OpMaskedEqual {
					a.ValueTwo = pickValue() & (a.Value | uint64(r.IntN(2)))
				}
				s.Args = append(s.Args, a)
			}
			p.Syscalls = append(p.Syscalls, s)
		}
		prog, err := Compile(p, Options{Arch: goarch})
		if err != nil {
			if strings.Contains(err.Error(), "limit") {
				t.Logf("seed %d: %v", seed, err)
				continue
			}
			t.Fatalf("seed %d: %v", seed, err)
		}
		v := newVM(t, prog)
		for range 3000 {
			sec := secs[r.IntN(len(secs))]
			arch := sec.arch
			name := pool[r.IntN(len(pool))]
			nr, ok := SyscallNumber(arch, name)
			if !ok || r.IntN(20) == 0 {
				nr = r.Uint32N(500)
			}
			d := data{nr: nr, arch: auditOf(t, arch)}
			for i := range d.args {
				// Values from the rules, their neighbours, or others.
				s := p.Syscalls[r.IntN(len(p.Syscalls))]
				x := pickValue()
				if len(s.Args) > 0 {
					a := s.Args[r.IntN(len(s.Args))]
					x = []uint64{a.Value, a.Value + 1, a.Value - 1, a.ValueTwo, a.ValueTwo | ^a.Value, x}[r.IntN(6)]
				}
				if sec.highZero {
					x &= 0xffffffff
				}
				d.args[i] = x
			}
			if got, want := v.run(d), model(t, p, native.arch, d); got != want {
				t.Fatalf("seed %d: %s nr %d args %#x: got %s, want %s", seed, arch, d.nr, d.args, retString(got), retString(want))
			}
		}
	}
}

// TestBigAllowList is an allow-list of most system calls (Docker-style,
// default ERRNO), large enough that the dispatch tree needs long jumps.
func TestBigAllowList(t *testing.T) {
	e := uint(1)
	p := &Profile{DefaultAction: ActErrno, DefaultErrnoRet: &e, Architectures: []Arch{ArchX86_64, ArchX86}}
	var names []string
	all := map[string]bool{}
	for n := range tableFor(ArchX86_64) {
		all[n] = true
	}
	for n := range tableFor(ArchX86) {
		all[n] = true
	}
	for _, n := range sortedNames(all) {
		// Leave out every third name so that the ranges break up.
		nr64, ok64 := SyscallNumber(ArchX86_64, n)
		nr32, ok32 := SyscallNumber(ArchX86, n)
		if (ok64 && nr64%3 == 1) || (ok32 && nr32%3 == 2) {
			continue
		}
		names = append(names, n)
	}
	p.Syscalls = append(p.Syscalls, Syscall{Names: names, Action: ActAllow})
	for i, n := range []string{"socket", "personality", "prctl", "fcntl", "setsockopt", "mprotect", "clone", "ioctl"} {
		p.Syscalls = append(p.Syscalls,
			Syscall{Names: []string{n}, Action: ActAllow, Args: []Arg{{Index: 0, Value: uint64(i) + 40, Op: OpNotEqual}, {Index: 1, Value: 1 << 33, Op: OpLess}}},
			Syscall{Names: []string{n}, Action: ActLog, Args: []Arg{{Index: 2, Value: 0xff00, ValueTwo: 0x1200, Op: OpMaskedEqual}}})
	}
	prog, err := Compile(p, Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	trampolines := 0
	for _, in := range prog.Instructions {
		if in.Code == opJA {
			trampolines++
		}
	}
	t.Logf("%d names allowed: %d instructions, %d long jumps", len(names), prog.Len(), trampolines)
	if trampolines == 0 {
		t.Errorf("no long jump needed: the test no longer covers trampolines (%d instructions)", prog.Len())
	}
	v := newVM(t, prog)
	for _, arch := range []Arch{ArchX86_64, ArchX86} {
		for nr := uint32(0); nr < 1100; nr++ {
			for _, args := range [][6]uint64{{}, {40, 1, 0x1234}, {41, 1 << 34, 0x12ff}, {45, 0, 0}} {
				d := data{nr: nr, arch: auditOf(t, arch), args: args}
				if arch == ArchX86 {
					for i := range d.args {
						d.args[i] &= 0xffffffff
					}
				}
				if got, want := v.run(d), model(t, p, ArchX86_64, d); got != want {
					t.Fatalf("%s nr %d %#x: got %s, want %s", arch, nr, args[:3], retString(got), retString(want))
				}
			}
		}
	}
}

func TestTooLong(t *testing.T) {
	p := &Profile{DefaultAction: ActAllow}
	for i, n := range sortedNames(tableFor(ArchX86_64)) {
		for j := range 4 {
			p.Syscalls = append(p.Syscalls, Syscall{Names: []string{n}, Action: ActErrno,
				Args: []Arg{{Index: uint(j), Value: uint64(i)<<32 | uint64(j), Op: OpEqual}}})
		}
	}
	_, err := Compile(p, Options{Arch: "amd64"})
	if err == nil || !strings.Contains(err.Error(), "limit of 4096") {
		t.Fatalf("err = %v, want the instruction limit", err)
	}
}

func TestIncludesExcludes(t *testing.T) {
	p := &Profile{
		DefaultAction: ActErrno,
		Syscalls: []Syscall{
			{Names: []string{"getpid"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}}},
			{Names: []string{"getppid"}, Action: ActAllow, Excludes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
			{Names: []string{"gettid"}, Action: ActAllow, Includes: &Filter{Arches: []string{"amd64"}}},
			{Names: []string{"getuid"}, Action: ActAllow, Includes: &Filter{Arches: []string{"x86", "arm64"}}},
			{Names: []string{"getgid"}, Action: ActAllow, Excludes: &Filter{Arches: []string{"SCMP_ARCH_X86_64"}}},
			{Names: []string{"geteuid"}, Action: ActAllow, Includes: &Filter{MinKernel: "5.10"}},
			{Names: []string{"getegid"}, Action: ActAllow, Excludes: &Filter{MinKernel: "5.10"}},
		},
	}
	check := func(o Options, want map[string]uint32) {
		t.Helper()
		prog, err := Compile(p, o)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, prog)
		for name, w := range want {
			if got := v.run(data{nr: nrOf(t, ArchX86_64, name), arch: auditArchX86_64}); got != w {
				t.Errorf("%+v: %s = %s, want %s", o, name, retString(got), retString(w))
			}
		}
	}
	check(Options{Arch: "amd64", Kernel: "5.4"}, map[string]uint32{
		"getpid": eperm, "getppid": allow, "gettid": allow, "getuid": eperm, "getgid": eperm,
		"geteuid": eperm, "getegid": allow,
	})
	check(Options{Arch: "amd64", Kernel: "6.18.44-fc", Caps: []string{"sys_admin", "CAP_NET_ADMIN"}}, map[string]uint32{
		"getpid": allow, "getppid": eperm, "geteuid": allow, "getegid": eperm,
	})
	check(Options{Arch: "amd64", Kernel: "5.10", Caps: []string{"CAP_SYS_ADMIN"}}, map[string]uint32{
		"getpid": eperm, "geteuid": allow, "getegid": eperm,
	})
	if _, err := Compile(p, Options{Arch: "amd64", Kernel: "six"}); err == nil {
		t.Errorf("bad Options.Kernel: no error")
	}
	// The running kernel's version is used when Options.Kernel is empty.
	if _, err := Compile(p, Options{Arch: "amd64"}); err != nil {
		t.Errorf("running kernel: %v", err)
	}
}

func TestTables(t *testing.T) {
	for _, c := range []struct {
		arch Arch
		name string
		nr   uint32
	}{
		{ArchX86_64, "read", 0}, {ArchX86_64, "clone", 56}, {ArchX86_64, "ioctl", 16},
		{ArchX86_64, "unshare", 272}, {ArchX86_64, "keyctl", 250}, {ArchX86_64, "clone3", 435},
		{ArchX86_64, "mount_setattr", 442}, {ArchX86_64, "landlock_create_ruleset", 444},
		{ArchX86_64, "landlock_restrict_self", 446}, {ArchX86_64, "memfd_secret", 447},
		{ArchX86_64, "process_mrelease", 448}, {ArchX86_64, "futex_waitv", 449},
		{ArchX86_64, "set_mempolicy_home_node", 450}, {ArchX86_64, "cachestat", 451},
		{ArchX86_64, "fchmodat2", 452}, {ArchX86_64, "map_shadow_stack", 453},
		{ArchX86_64, "futex_wake", 454}, {ArchX86_64, "statmount", 457}, {ArchX86_64, "listmount", 458},
		{ArchX86_64, "lsm_get_self_attr", 459}, {ArchX86_64, "lsm_list_modules", 461},
		{ArchX86_64, "mseal", 462}, {ArchX86_64, "open_tree_attr", 467},
		{ArchX86, "read", 3}, {ArchX86, "clone", 120}, {ArchX86, "ioctl", 54}, {ArchX86, "socketcall", 102},
		{ArchX86, "unshare", 310}, {ArchX86, "keyctl", 288}, {ArchX86, "clone3", 435}, {ArchX86, "mseal", 462},
		{ArchX86, "_llseek", 140}, {ArchX86, "_newselect", 142}, {ArchX86, "stime", 25},
	} {
		if nr, ok := SyscallNumber(c.arch, c.name); !ok || nr != c.nr {
			t.Errorf("%s %s = %d, %v; want %d", c.arch, c.name, nr, ok, c.nr)
		}
	}
	if _, ok := SyscallNumber(ArchX86_64, "socketcall"); ok {
		t.Errorf("x86_64 has no socketcall")
	}
	if _, ok := SyscallNumber("SCMP_ARCH_MIPS64", "read"); ok {
		t.Errorf("no mips64 table")
	}
	for _, n := range []string{"read", "socketcall", "s390_runtime_instr", "breakpoint", "riscv_flush_icache"} {
		if !KnownSyscall(n) {
			t.Errorf("%s unknown", n)
		}
	}
	for _, n := range []string{"", "reserved177", "frobnicate", "READ"} {
		if KnownSyscall(n) {
			t.Errorf("%q known", n)
		}
	}
	if n64, n32 := len(tableFor(ArchX86_64)), len(tableFor(ArchX86)); n64 < 370 || n32 < 440 {
		t.Errorf("tables look short: %d, %d", n64, n32)
	}
}

func TestDisassembly(t *testing.T) {
	s := compileDefault(t, DefaultOptions{}).String()
	for _, want := range []string{"ld [4]", "jeq #0xc000003e", "jge #0x40000000", "ret ERRNO(38)", "ret ALLOW", "ret KILL_PROCESS", "and #"} {
		if !strings.Contains(s, want) {
			t.Errorf("disassembly lacks %q", want)
		}
	}
}

func sortedNames[V any](m map[string]V) []string {
	s := make([]string, 0, len(m))
	for n := range m {
		s = append(s, n)
	}
	sort.Strings(s)
	return s
}

// TestMayKillThread: the default filter never kills a single thread (so
// init installs it without the parent's look at its threads); a profile
// that does (SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD) is recognised, whether as
// a rule's action or as the default.
func TestMayKillThread(t *testing.T) {
	for _, o := range []DefaultOptions{{}, {AllowNestedUserns: true}, {DenyPtrace: true}} {
		if compileDefault(t, o).MayKillThread() {
			t.Errorf("default filter %+v: may kill a thread", o)
		}
	}
	for _, c := range []struct {
		name string
		p    Profile
		want bool
	}{
		{"errno rule", Profile{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"mkdir"}, Action: ActErrno}}}, false},
		{"kill-process rule", Profile{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"mkdir"}, Action: ActKillProcess}}}, false},
		{"kill rule", Profile{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"mkdir"}, Action: ActKill}}}, true},
		{"kill-thread rule", Profile{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"mkdir"}, Action: ActKillThread}}}, true},
		{"kill default", Profile{DefaultAction: ActKill}, true},
	} {
		prog, err := Compile(&c.p, Options{Arch: "amd64"})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := prog.MayKillThread(); got != c.want {
			t.Errorf("%s: MayKillThread %v, want %v", c.name, got, c.want)
		}
	}
}
