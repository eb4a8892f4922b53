package seccomp

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"golang.org/x/net/bpf"
)

// data is a struct seccomp_data for the test VM.
type data struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

// bytes lays out d for golang.org/x/net/bpf's VM. Its 32-bit loads are big
// endian (network order) while the kernel's seccomp loads are native, so
// each 32-bit word is stored big endian at the offset the kernel's layout
// gives it: the program's aligned 32-bit loads then see exactly the values
// the kernel's would. An argument's low half is at the lower offset on a
// little-endian arch (AUDIT_ARCH_* with __AUDIT_ARCH_LE), at the higher
// one on a big-endian arch (s390x, ppc64).
func (d data) bytes() []byte {
	b := make([]byte, 64)
	put := func(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	put(offNr, d.nr)
	put(offArch, d.arch)
	put(8, 0x12345678) // instruction_pointer, unused
	lo, hi := 0, 4
	if d.arch&auditArchLE == 0 {
		lo, hi = 4, 0
	}
	for i, a := range d.args {
		put(offArgs+8*i+lo, uint32(a))
		put(offArgs+8*i+hi, uint32(a>>32))
	}
	return b
}

// vm runs a compiled program in x/net/bpf's VM.
type vm struct {
	t  testing.TB
	vm *bpf.VM
}

func newVM(t testing.TB, p *Program) *vm {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(p.Instructions))
	for i, in := range p.Instructions {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("x/net/bpf could not decode every instruction")
	}
	m, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("x/net/bpf rejects the program: %v", err)
	}
	checkKernelRules(t, p)
	return &vm{t, m}
}

func (v *vm) run(d data) uint32 {
	v.t.Helper()
	out, err := v.vm.Run(d.bytes())
	if err != nil {
		v.t.Fatalf("VM: %v", err)
	}
	return uint32(out)
}

// checkKernelRules checks what the kernel's classic BPF checker
// (bpf_check_classic, seccomp_check_filter) would: size, known opcodes,
// loads inside seccomp_data, aligned; jumps inside the program; last
// instruction a return.
func checkKernelRules(t testing.TB, p *Program) {
	t.Helper()
	n := len(p.Instructions)
	if n == 0 || n > maxInsns {
		t.Fatalf("program of %d instructions", n)
	}
	for i, in := range p.Instructions {
		switch in.Code {
		case opLoadAbs:
			if in.K >= 64 || in.K%4 != 0 {
				t.Fatalf("%d: load at %d", i, in.K)
			}
		case opAnd, opRet:
		case opJA:
			if uint64(i)+1+uint64(in.K) >= uint64(n) {
				t.Fatalf("%d: ja out of the program", i)
			}
		case opJEQ, opJGT, opJGE, opJSET:
			if i+1+int(in.Jt) >= n || i+1+int(in.Jf) >= n {
				t.Fatalf("%d: jump out of the program", i)
			}
		default:
			t.Fatalf("%d: opcode %#x", i, in.Code)
		}
	}
	if p.Instructions[n-1].Code != opRet {
		t.Fatalf("last instruction is not a return")
	}
}

// model evaluates a profile directly, without BPF: the reference the
// compiled programs are checked against. It uses 64-bit arithmetic on the
// arguments; includes/excludes are decided by the package's selector
// (for native, no capabilities, kernel 6.1).
// fataler is the part of testing.TB the model needs; the re-executed child
// of install_test.go, which has no *testing.T, passes exitFatal.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// exitFatal reports a model error from a child process and exits.
type exitFatal struct{}

func (exitFatal) Helper() {}
func (exitFatal) Fatal(args ...any) {
	fmt.Println(append([]any{"model error:"}, args...)...)
	os.Exit(2)
}

func model(tb fataler, p *Profile, native Arch, d data) uint32 {
	tb.Helper()
	enabled := map[Arch]bool{native: true}
	for _, a := range p.Architectures {
		enabled[a] = true
	}
	nativeAI, _ := infoOf(native)
	nativeName, _ := canonArch(nativeAI.goarch)
	for _, m := range p.ArchMap {
		if c, _ := canonArch(string(m.Architecture)); c == nativeName {
			for _, s := range m.SubArchitectures {
				enabled[s] = true
			}
		}
	}
	var arch Arch
	for _, ai := range archInfos {
		if ai.audit == d.arch && ai.family == nativeAI.family {
			arch = ai.arch
		}
	}
	if arch == "" || !enabled[arch] {
		return retKillProcess
	}
	sel := selector{caps: map[string]bool{}, arch: nativeName, kernel: "6.1"}
	if arch == ArchX86_64 && d.nr >= x32SyscallBit && d.nr < 0x80000000 {
		return retErrno | errnoENOSYS
	}
	table := tableFor(arch)
	best, bestRank := uint32(0), -1
	for _, s := range p.Syscalls {
		if ok, err := sel.selected(&s); err != nil {
			tb.Fatal(err)
		} else if !ok {
			continue
		}
		named := false
		for _, n := range s.names() {
			if nr, ok := table[n]; ok && nr == d.nr {
				named = true
			}
		}
		if !named {
			continue
		}
		match := true
		for _, a := range s.Args {
			x := d.args[a.Index]
			var ok bool
			switch a.Op {
			case OpEqual:
				ok = x == a.Value
			case OpNotEqual:
				ok = x != a.Value
			case OpLess:
				ok = x < a.Value
			case OpLessEqual:
				ok = x <= a.Value
			case OpGreater:
				ok = x > a.Value
			case OpGreaterEqual:
				ok = x >= a.Value
			case OpMaskedEqual:
				ok = x&a.Value == a.ValueTwo
			}
			match = match && ok
		}
		if !match {
			continue
		}
		ret, rank, _ := actionRet(s.Action, s.ErrnoRet)
		if rank > bestRank { // ties: the first rule wins
			best, bestRank = ret, rank
		}
	}
	if bestRank < 0 {
		best, _, _ = actionRet(p.DefaultAction, p.DefaultErrnoRet)
	}
	return best
}

func nrOf(t testing.TB, arch Arch, name string) uint32 {
	t.Helper()
	nr, ok := SyscallNumber(arch, name)
	if !ok {
		t.Fatalf("no %s on %s", name, arch)
	}
	return nr
}

func auditOf(t testing.TB, arch Arch) uint32 {
	t.Helper()
	ai, ok := infoOf(arch)
	if !ok {
		t.Fatalf("no audit arch for %s", arch)
	}
	return ai.audit
}
