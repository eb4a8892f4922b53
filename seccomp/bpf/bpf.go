// Package bpf is a compiled seccomp filter and how to install it: the
// classic BPF program, its instructions and return values, no_new_privs
// and seccomp(2). It is what a process that only applies a filter needs
// (the sandbox's PID 1): it imports the standard library and
// golang.org/x/sys only and does no work at package initialisation.
// Compiling profiles into programs is package seccomp's (sandbox/seccomp).
package bpf

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

// MayKillThread says whether p can answer a system call by killing only
// the calling thread (SECCOMP_RET_KILL_THREAD): some return gives that
// action, or returns a register, which is not known before it runs.
func (p *Program) MayKillThread() bool {
	for _, in := range p.Instructions {
		if in.Code&0x07 != bpfRET {
			continue
		}
		if in.Code != OpRet || in.K&RetActionFull == RetKillThread {
			return true
		}
	}
	return false
}

// MaxInstructions is the kernel's BPF_MAXINSNS: the longest program
// Install loads.
const MaxInstructions = 4096

// The classic BPF instructions seccomp programs use (linux/filter.h,
// linux/bpf_common.h): load a word of struct seccomp_data, and it with a
// constant, jumps, return.
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

	OpLoadAbs = bpfLD | bpfW | bpfABS
	OpAnd     = bpfALU | bpfAND | bpfK
	OpJA      = bpfJMP | bpfJA
	OpJEQ     = bpfJMP | bpfJEQ | bpfK
	OpJGT     = bpfJMP | bpfJGT | bpfK
	OpJGE     = bpfJMP | bpfJGE | bpfK
	OpJSET    = bpfJMP | bpfJSET | bpfK
	OpRet     = bpfRET | bpfK
)

// Return values of a filter (linux/seccomp.h): the action in the upper
// 16 bits (RetActionFull), its data (an errno, a tracer's value) in the
// lower ones.
const (
	RetKillProcess = 0x80000000
	RetKillThread  = 0x00000000
	RetTrap        = 0x00030000
	RetErrno       = 0x00050000
	RetTrace       = 0x7ff00000
	RetLog         = 0x7ffc0000
	RetAllow       = 0x7fff0000
	RetActionFull  = 0xffff0000
	RetData        = 0x0000ffff
)

// String disassembles the program, one instruction a line, with jump
// targets as absolute instruction numbers.
func (p *Program) String() string {
	var b strings.Builder
	for i, in := range p.Instructions {
		fmt.Fprintf(&b, "%4d: ", i)
		next := i + 1
		switch in.Code {
		case OpLoadAbs:
			fmt.Fprintf(&b, "ld [%d]", in.K)
		case OpAnd:
			fmt.Fprintf(&b, "and #%#x", in.K)
		case OpJA:
			fmt.Fprintf(&b, "ja %d", next+int(in.K))
		case OpJEQ, OpJGT, OpJGE, OpJSET:
			fmt.Fprintf(&b, "%s #%#x, %d, %d", jumpName(in.Code), in.K, next+int(in.Jt), next+int(in.Jf))
		case OpRet:
			fmt.Fprintf(&b, "ret %s", RetString(in.K))
		default:
			fmt.Fprintf(&b, "code=%#x jt=%d jf=%d k=%#x", in.Code, in.Jt, in.Jf, in.K)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func jumpName(code uint16) string {
	switch code {
	case OpJEQ:
		return "jeq"
	case OpJGT:
		return "jgt"
	case OpJGE:
		return "jge"
	}
	return "jset"
}

// RetString names a filter's return value: "ALLOW", "ERRNO(1)", ...
func RetString(k uint32) string {
	switch k & RetActionFull {
	case RetKillProcess:
		return "KILL_PROCESS"
	case RetKillThread:
		return "KILL_THREAD"
	case RetTrap:
		return "TRAP"
	case RetErrno:
		return fmt.Sprintf("ERRNO(%d)", k&RetData)
	case RetTrace:
		return fmt.Sprintf("TRACE(%d)", k&RetData)
	case RetLog:
		return "LOG"
	case RetAllow:
		return "ALLOW"
	}
	return fmt.Sprintf("%#x", k)
}
