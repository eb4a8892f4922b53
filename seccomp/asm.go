package seccomp

import (
	"fmt"

	"sandbox/seccomp/bpf"
)

// Instruction is one classic BPF instruction (package bpf's, where
// Install lives, so that PID 1 need not link the compiler).
type Instruction = bpf.Instruction

// Program is a compiled filter.
type Program = bpf.Program

// maxInsns is the kernel's BPF_MAXINSNS.
const maxInsns = bpf.MaxInstructions

// The instructions and return values the compiler emits.
const (
	opLoadAbs = bpf.OpLoadAbs
	opAnd     = bpf.OpAnd
	opJA      = bpf.OpJA
	opJEQ     = bpf.OpJEQ
	opJGT     = bpf.OpJGT
	opJGE     = bpf.OpJGE
	opJSET    = bpf.OpJSET
	opRet     = bpf.OpRet

	retKillProcess = bpf.RetKillProcess
	retKillThread  = bpf.RetKillThread
	retTrap        = bpf.RetTrap
	retErrno       = bpf.RetErrno
	retLog         = bpf.RetLog
	retAllow       = bpf.RetAllow
)

func retString(k uint32) string { return bpf.RetString(k) }

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
	switch in.code {
	case opJEQ, opJGT, opJGE, opJSET:
		return true
	}
	return false
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
