package seccomp

import (
	"fmt"
	"strings"
)

// Instruction is one classic BPF instruction, laid out as the kernel's
// struct sock_filter.
type Instruction struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// Program is a compiled filter.
type Program struct {
	Instructions []Instruction
	// Flags are SECCOMP_FILTER_FLAG_* bits Install adds to TSYNC
	// (from the profile's "flags").
	Flags uint
}

// Len is the number of instructions.
func (p *Program) Len() int { return len(p.Instructions) }

// maxInsns is the kernel's BPF_MAXINSNS.
const maxInsns = 4096

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const (
	bpfLD  = 0x00
	bpfALU = 0x04
	bpfJMP = 0x05
	bpfRET = 0x06

	bpfW   = 0x00
	bpfABS = 0x20
	bpfAND = 0x50
	bpfK   = 0x00

	bpfJA   = 0x00
	bpfJEQ  = 0x10
	bpfJGT  = 0x20
	bpfJGE  = 0x30
	bpfJSET = 0x40

	opLoadAbs = bpfLD | bpfW | bpfABS
	opAnd     = bpfALU | bpfAND | bpfK
	opJA      = bpfJMP | bpfJA
	opJEQ     = bpfJMP | bpfJEQ | bpfK
	opJGT     = bpfJMP | bpfJGT | bpfK
	opJGE     = bpfJMP | bpfJGE | bpfK
	opJSET    = bpfJMP | bpfJSET | bpfK
	opRet     = bpfRET | bpfK
)

// String disassembles the program, one instruction a line, with jump
// targets as absolute instruction numbers.
func (p *Program) String() string {
	var b strings.Builder
	for i, in := range p.Instructions {
		fmt.Fprintf(&b, "%4d: ", i)
		next := i + 1
		switch in.Code {
		case opLoadAbs:
			fmt.Fprintf(&b, "ld [%d]", in.K)
		case opAnd:
			fmt.Fprintf(&b, "and #%#x", in.K)
		case opJA:
			fmt.Fprintf(&b, "ja %d", next+int(in.K))
		case opJEQ, opJGT, opJGE, opJSET:
			name := map[uint16]string{opJEQ: "jeq", opJGT: "jgt", opJGE: "jge", opJSET: "jset"}[in.Code]
			fmt.Fprintf(&b, "%s #%#x, %d, %d", name, in.K, next+int(in.Jt), next+int(in.Jf))
		case opRet:
			fmt.Fprintf(&b, "ret %s", retString(in.K))
		default:
			fmt.Fprintf(&b, "code=%#x jt=%d jf=%d k=%#x", in.Code, in.Jt, in.Jf, in.K)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Return values (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
	retActionFull  = 0xffff0000
	retData        = 0x0000ffff
)

func retString(k uint32) string {
	switch k & retActionFull {
	case retKillProcess:
		return "KILL_PROCESS"
	case retKillThread:
		return "KILL_THREAD"
	case retTrap:
		return "TRAP"
	case retErrno:
		return fmt.Sprintf("ERRNO(%d)", k&retData)
	case retTrace:
		return fmt.Sprintf("TRACE(%d)", k&retData)
	case retLog:
		return "LOG"
	case retAllow:
		return "ALLOW"
	}
	return fmt.Sprintf("%#x", k)
}

// label names an instruction position; jumps refer to labels, so that
// long-jump trampolines can be inserted after the code is laid out.
type label int

// ains is an instruction before assembly. For a conditional jump, jt and
// jf are its targets; for JA, jt is.
type ains struct {
	code   uint16
	k      uint32
	jt, jf label
}

func (in *ains) isCond() bool {
	return in.code&0x07 == bpfJMP && in.code != opJA
}

type assembler struct {
	ins []ains
	pos []int // label → instruction index; -1 while unbound
	err error // first broken invariant, reported by assemble
}

// fail records an internal error; assemble returns it.
func (a *assembler) fail(err error) {
	if a.err == nil {
		a.err = err
	}
}

func (a *assembler) newLabel() label {
	a.pos = append(a.pos, -1)
	return label(len(a.pos) - 1)
}

// bind puts l at the next instruction emitted.
func (a *assembler) bind(l label) {
	if a.pos[l] != -1 {
		a.fail(fmt.Errorf("seccomp: internal error: label %d bound twice", l))
		return
	}
	a.pos[l] = len(a.ins)
}

// here returns a label at the next instruction emitted.
func (a *assembler) here() label {
	l := a.newLabel()
	a.bind(l)
	return l
}

func (a *assembler) load(off uint32) { a.ins = append(a.ins, ains{code: opLoadAbs, k: off}) }
func (a *assembler) and(k uint32)    { a.ins = append(a.ins, ains{code: opAnd, k: k}) }
func (a *assembler) ret(k uint32)    { a.ins = append(a.ins, ains{code: opRet, k: k}) }
func (a *assembler) ja(l label)      { a.ins = append(a.ins, ains{code: opJA, jt: l}) }
func (a *assembler) jump(code uint16, k uint32, jt, jf label) {
	a.ins = append(a.ins, ains{code: code, k: k, jt: jt, jf: jf})
}

// jumpNext emits a conditional jump whose true or false branch (the one
// given as -1) continues with the next instruction emitted.
func (a *assembler) jumpNext(code uint16, k uint32, jt, jf label) {
	next := a.newLabel()
	if jt < 0 {
		jt = next
	}
	if jf < 0 {
		jf = next
	}
	a.jump(code, k, jt, jf)
	a.bind(next)
}

// assemble resolves labels. Conditional jumps reach at most 255
// instructions ahead; a farther target gets a trampoline, a JA (32-bit
// offset) right after the jump, and the layout is recomputed until every
// jump fits.
func (a *assembler) assemble() ([]Instruction, error) {
	if a.err != nil {
		return nil, a.err
	}
	for l, p := range a.pos {
		if p < 0 || p >= len(a.ins) {
			return nil, fmt.Errorf("seccomp: internal error: label %d at %d of %d instructions", l, p, len(a.ins))
		}
	}
	for {
		// Fail early on absurd sizes: every pass adds instructions.
		if len(a.ins) > 4*maxInsns {
			return nil, fmt.Errorf("seccomp: filter too long (more than %d instructions)", maxInsns)
		}
		inserted := false
		for i := range a.ins {
			in := &a.ins[i]
			if !in.isCond() {
				continue
			}
			if a.pos[in.jt]-(i+1) > 255 {
				in.jt = a.insertJA(i+1, in.jt)
				inserted = true
				break
			}
			if a.pos[in.jf]-(i+1) > 255 {
				in.jf = a.insertJA(i+1, in.jf)
				inserted = true
				break
			}
		}
		if !inserted {
			break
		}
	}
	out := make([]Instruction, len(a.ins))
	for i, in := range a.ins {
		o := Instruction{Code: in.code, K: in.k}
		switch {
		case in.code == opJA:
			d := a.pos[in.jt] - (i + 1)
			if d < 0 {
				return nil, fmt.Errorf("seccomp: internal error: backward jump at %d", i)
			}
			o.K = uint32(d)
		case in.isCond():
			dt, df := a.pos[in.jt]-(i+1), a.pos[in.jf]-(i+1)
			if dt < 0 || df < 0 || dt > 255 || df > 255 {
				return nil, fmt.Errorf("seccomp: internal error: jump out of range at %d", i)
			}
			o.Jt, o.Jf = uint8(dt), uint8(df)
		}
		out[i] = o
	}
	return out, nil
}

// insertJA inserts "ja target" at index at and returns a label for it.
func (a *assembler) insertJA(at int, target label) label {
	for l, p := range a.pos {
		if p >= at {
			a.pos[l] = p + 1
		}
	}
	a.ins = append(a.ins, ains{})
	copy(a.ins[at+1:], a.ins[at:])
	a.ins[at] = ains{code: opJA, jt: target}
	l := a.newLabel()
	a.pos[l] = at
	return l
}
