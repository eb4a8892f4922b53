package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"sandbox/internal/kernel"
)

// Options are what Compile needs to know besides the profile.
type Options struct {
	// Caps are the capabilities the payload will have ("CAP_SYS_ADMIN";
	// the CAP_ prefix and case are optional), for the rules' includes.caps
	// and excludes.caps. A capability not listed is absent.
	Caps []string
	// Arch is the native architecture as a GOARCH ("amd64", "arm64", ...:
	// SupportedArchs); "" means runtime.GOARCH.
	Arch string
	// Kernel is the kernel version ("6.1") for the rules' minKernel; ""
	// means the running kernel's, read only if a rule has a minKernel.
	Kernel string
	// BadArchAction is the action for system calls of an architecture
	// the filter has no rules for: SCMP_ACT_KILL_PROCESS (the default,
	// as libseccomp), SCMP_ACT_KILL_THREAD (or SCMP_ACT_KILL),
	// SCMP_ACT_TRAP or SCMP_ACT_ERRNO (with ENOSYS).
	BadArchAction Action
}

// Compiled-in facts of the program layout.
const (
	x32SyscallBit = 0x40000000 // __X32_SYSCALL_BIT

	// Offsets in struct seccomp_data: int nr; __u32 arch; __u64
	// instruction_pointer; __u64 args[6]. An argument's low half comes
	// first on little-endian architectures, second on big-endian ones.
	offNr   = 0
	offArch = 4
	offArgs = 16

	errnoEPERM  = 1
	errnoENOSYS = 38
)

// cond is one argument condition.
type cond struct {
	idx uint
	op  Operator
	v   uint64 // value, or the mask for MASKED_EQ
	v2  uint64 // the expected value for MASKED_EQ
}

// rule is one rule of one system call after includes/excludes.
type rule struct {
	conds []cond
	ret   uint32
	rank  int
	order int
}

// namedRule is a selected rule and the system calls it names.
type namedRule struct {
	names []string
	r     rule
}

// Compile turns a profile into a BPF program (see the package
// documentation for the semantics).
func Compile(p *Profile, opts Options) (*Program, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	goarch := opts.Arch
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	native, ok := nativeInfo(goarch)
	if !ok {
		return nil, &UnsupportedError{Arch: goarch}
	}
	nativeName, _ := canonArch(goarch)

	badArch, err := badArchRet(opts.BadArchAction)
	if err != nil {
		return nil, err
	}
	defRet, _, err := actionRet(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}

	// Which sections the program has: the native arch, the profile's
	// architectures and the archMap entries of the native arch, as far as
	// the native arch's kernel can report them.
	enabled := map[Arch]bool{native.arch: true}
	for _, a := range p.Architectures {
		enabled[a] = true
	}
	for _, m := range p.ArchMap {
		if c, _ := canonArch(string(m.Architecture)); c == nativeName {
			enabled[m.Architecture] = true
			for _, s := range m.SubArchitectures {
				enabled[s] = true
			}
		}
	}
	var sections []archInfo
	for _, ai := range archInfos {
		if enabled[ai.arch] && ai.family == native.family {
			sections = append(sections, ai)
		}
	}

	sel := selector{caps: map[string]bool{}, arch: nativeName, kernel: opts.Kernel}
	for _, c := range opts.Caps {
		sel.caps[normCap(c)] = true
	}
	var rules []namedRule
	for i := range p.Syscalls {
		s := &p.Syscalls[i]
		ok, err := sel.selected(s)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d]: %w", i, err)
		}
		if !ok {
			continue
		}
		ret, rank, err := actionRet(s.Action, s.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d]: %w", i, err)
		}
		r := rule{ret: ret, rank: rank, order: i}
		for _, a := range s.Args {
			r.conds = append(r.conds, cond{idx: a.Index, op: a.Op, v: a.Value, v2: a.ValueTwo})
		}
		rules = append(rules, namedRule{s.names(), r})
	}

	a := &assembler{}
	a.load(offArch)
	sectionLabels := make([]label, len(sections))
	for i, sec := range sections {
		sectionLabels[i] = a.newLabel()
		a.jumpNext(opJEQ, sec.audit, sectionLabels[i], -1)
	}
	a.ret(badArch)
	for i, sec := range sections {
		a.bind(sectionLabels[i])
		// Sized up front: grown from empty, the maps' rehashing was a
		// third of what a compile allocates (each fresh page is a fault
		// in a new process).
		byNr := make(map[uint32][]rule, len(rules))
		for _, nr := range rules {
			for _, name := range nr.names {
				if n, ok := sec.table()[name]; ok {
					byNr[n] = append(byNr[n], nr.r)
				}
			}
		}
		emitSection(a, sec, byNr, defRet)
	}
	ins, err := a.assemble()
	if err != nil {
		return nil, err
	}
	if len(ins) > maxInsns {
		return nil, fmt.Errorf("seccomp: the compiled filter has %d instructions, more than the kernel's limit of %d", len(ins), maxInsns)
	}
	prog := &Program{Instructions: ins}
	for _, f := range p.Flags {
		bit, _ := filterFlag(f)
		prog.Flags |= bit
	}
	prog.Flags &^= 0x1 // TSYNC: Install always sets it
	return prog, nil
}

// actionRet returns the SECCOMP_RET_ value of a validated action and its
// rank (higher is more restrictive).
func actionRet(a Action, errno *uint) (uint32, int, error) {
	switch a {
	case ActKillProcess:
		return retKillProcess, 7, nil
	case ActKill, ActKillThread:
		return retKillThread, 6, nil
	case ActTrap:
		return retTrap, 5, nil
	case ActErrno:
		e := uint32(errnoEPERM)
		if errno != nil {
			e = uint32(*errno)
		}
		return retErrno | e, 4, nil
	case ActTrace:
		return retErrno | errnoENOSYS, 4, nil
	case ActLog:
		return retLog, 2, nil
	case ActAllow:
		return retAllow, 1, nil
	}
	return 0, 0, fmt.Errorf("unknown action %q", a)
}

func badArchRet(a Action) (uint32, error) {
	switch a {
	case "", ActKillProcess:
		return retKillProcess, nil
	case ActKill, ActKillThread:
		return retKillThread, nil
	case ActTrap:
		return retTrap, nil
	case ActErrno:
		return retErrno | errnoENOSYS, nil
	}
	return 0, fmt.Errorf("seccomp: Options.BadArchAction: %q is not allowed (want SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP or SCMP_ACT_ERRNO)", a)
}

func normCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// selector evaluates includes and excludes.
type selector struct {
	caps   map[string]bool
	arch   string // libseccomp name of the native arch
	kernel string
	kv     *kernelVersion
}

func (s *selector) kernelVersion() (kernelVersion, error) {
	if s.kv != nil {
		return *s.kv, nil
	}
	k := s.kernel
	if k == "" {
		var err error
		if k, err = kernel.Release(); err != nil {
			return kernelVersion{}, fmt.Errorf("minKernel: reading the kernel version: %w", err)
		}
	}
	v, err := parseKernelVersion(k)
	if err != nil {
		return kernelVersion{}, fmt.Errorf("Options.Kernel: %w", err)
	}
	s.kv = &v
	return v, nil
}

func (s *selector) archIn(list []string) bool {
	for _, a := range list {
		if c, _ := canonArch(a); c == s.arch {
			return true
		}
	}
	return false
}

func (s *selector) selected(sc *Syscall) (bool, error) {
	if in := sc.Includes; in != nil {
		for _, c := range in.Caps {
			if !s.caps[normCap(c)] {
				return false, nil
			}
		}
		if len(in.Arches) > 0 && !s.archIn(in.Arches) {
			return false, nil
		}
		if in.MinKernel != "" {
			kv, err := s.kernelVersion()
			if err != nil {
				return false, err
			}
			min, _ := parseKernelVersion(in.MinKernel)
			if kv.Less(min) {
				return false, nil
			}
		}
	}
	if ex := sc.Excludes; ex != nil {
		for _, c := range ex.Caps {
			if s.caps[normCap(c)] {
				return false, nil
			}
		}
		if len(ex.Arches) > 0 && s.archIn(ex.Arches) {
			return false, nil
		}
		if ex.MinKernel != "" {
			kv, err := s.kernelVersion()
			if err != nil {
				return false, err
			}
			min, _ := parseKernelVersion(ex.MinKernel)
			if !kv.Less(min) {
				return false, nil
			}
		}
	}
	return true, nil
}

// handler is what the dispatch tree does for a system call: return ret,
// or jump to block (an argument-checking block).
type handler struct {
	simple bool
	ret    uint32
	block  label
}

// interval is a range of system-call numbers starting at start (up to
// the next interval's start) with one handler.
type interval struct {
	start uint32
	h     handler
}

// emitSection emits one architecture's code: load the number, a binary
// search over number ranges (x32's included), then the argument blocks.
func emitSection(a *assembler, sec archInfo, byNr map[uint32][]rule, defRet uint32) {
	nrs := make([]uint32, 0, len(byNr))
	decisions := make(map[uint32][]rule, len(byNr))
	for nr, rs := range byNr {
		d := decide(rs, sec.highZero, defRet)
		if len(d) == 0 {
			continue
		}
		decisions[nr] = d
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })

	handlers := make(map[uint32]handler, len(nrs))
	var blocks []uint32
	for _, nr := range nrs {
		d := decisions[nr]
		if len(d) == 1 && len(d[0].conds) == 0 {
			handlers[nr] = handler{simple: true, ret: d[0].ret}
		} else {
			handlers[nr] = handler{block: a.newLabel()}
			blocks = append(blocks, nr)
		}
	}

	def := handler{simple: true, ret: defRet}
	var ivs []interval
	add := func(start uint32, h handler) {
		if n := len(ivs); n > 0 && h.simple && ivs[n-1].h.simple && ivs[n-1].h.ret == h.ret {
			return // same action as the range before: extend it
		}
		ivs = append(ivs, interval{start, h})
	}
	next := uint64(0)
	for _, nr := range nrs {
		if uint64(nr) > next {
			add(uint32(next), def)
		}
		add(nr, handlers[nr])
		next = uint64(nr) + 1
	}
	add(uint32(next), def) // the tables end far below 2^30
	if sec.x32 {
		// x32 numbers are 0x40000000 + n (the kernel's x32 test is
		// nr - __X32_SYSCALL_BIT < X32_NR_syscalls, unsigned); numbers
		// from 0x80000000 on (-1, ...) are invalid in both ABIs and get
		// the default, like any other unknown number.
		add(x32SyscallBit, handler{simple: true, ret: retErrno | errnoENOSYS})
		add(0x80000000, def)
	}

	a.load(offNr)
	emitTree(a, ivs)
	for _, nr := range blocks {
		a.bind(handlers[nr].block)
		emitBlock(a, decisions[nr], sec, defRet)
	}
}

// emitTree emits a binary search over the intervals and returns the label
// of its first instruction (or of the argument block of a lone interval).
func emitTree(a *assembler, ivs []interval) label {
	if len(ivs) == 1 {
		h := ivs[0].h
		if !h.simple {
			return h.block
		}
		l := a.here()
		a.ret(h.ret)
		return l
	}
	mid := len(ivs) / 2
	start := a.here()
	i := len(a.ins)
	a.jump(opJGE, ivs[mid].start, 0, 0)
	left := emitTree(a, ivs[:mid])
	right := emitTree(a, ivs[mid:])
	a.ins[i].jt, a.ins[i].jf = right, left
	return start
}

// decide orders a system call's rules by precedence and simplifies them:
// conditions decided at compile time are dropped, rules that can never
// match are dropped, nothing after a rule without conditions is kept, and
// trailing rules whose action is the default are dropped. The result
// holds the rules to try in order; none matching means the default.
func decide(rs []rule, highZero bool, defRet uint32) []rule {
	sorted := append([]rule(nil), rs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].rank != sorted[j].rank {
			return sorted[i].rank > sorted[j].rank
		}
		return sorted[i].order < sorted[j].order
	})
	var out []rule
	for _, r := range sorted {
		var conds []cond
		never := false
		for _, c := range r.conds {
			switch staticCond(c, highZero) {
			case condNever:
				never = true
			case condDynamic:
				conds = append(conds, c)
			}
		}
		if never {
			continue
		}
		r.conds = conds
		out = append(out, r)
		if len(conds) == 0 {
			break
		}
	}
	for len(out) > 0 && out[len(out)-1].ret == defRet {
		out = out[:len(out)-1]
	}
	return out
}

type condResult int

const (
	condDynamic condResult = iota
	condAlways
	condNever
)

// staticCond decides a condition at compile time where it can.
func staticCond(c cond, highZero bool) condResult {
	const max32 = 0xffffffff
	const max64 = ^uint64(0)
	if c.op == OpMaskedEqual {
		m, e := c.v, c.v2
		if highZero {
			m &= max32
		}
		if e&^m != 0 {
			return condNever // bits the mask clears can never equal 1
		}
		if m == 0 {
			return condAlways // 0 == e, and e == 0 here
		}
		return condDynamic
	}
	v := c.v
	if highZero {
		// The argument is in [0, 2^32).
		switch c.op {
		case OpEqual:
			if v > max32 {
				return condNever
			}
		case OpNotEqual:
			if v > max32 {
				return condAlways
			}
		case OpGreater:
			if v >= max32 {
				return condNever
			}
		case OpGreaterEqual:
			if v == 0 {
				return condAlways
			}
			if v > max32 {
				return condNever
			}
		case OpLess:
			if v == 0 {
				return condNever
			}
			if v > max32 {
				return condAlways
			}
		case OpLessEqual:
			if v >= max32 {
				return condAlways
			}
		}
		return condDynamic
	}
	switch c.op {
	case OpGreater:
		if v == max64 {
			return condNever
		}
	case OpGreaterEqual:
		if v == 0 {
			return condAlways
		}
	case OpLess:
		if v == 0 {
			return condNever
		}
	case OpLessEqual:
		if v == max64 {
			return condAlways
		}
	}
	return condDynamic
}

// emitBlock emits the rules of one system call: each rule's conditions
// jump to the next rule when one fails, and return the rule's action when
// all hold; after the last rule comes the default.
func emitBlock(a *assembler, rules []rule, sec archInfo, defRet uint32) {
	for _, r := range rules {
		fail := a.newLabel()
		for _, c := range r.conds {
			emitCond(a, c, sec, fail)
		}
		a.ret(r.ret)
		a.bind(fail)
	}
	a.ret(defRet)
}

// emitCond emits the check of one (dynamic) condition: it falls through
// when the condition holds and jumps to fail otherwise.
func emitCond(a *assembler, c cond, sec archInfo, fail label) {
	highZero := sec.highZero
	lo := uint32(offArgs + 8*c.idx)
	hi := lo + 4
	if sec.bigEndian() {
		lo, hi = hi, lo
	}
	pass := a.newLabel()
	defer a.bind(pass)

	if c.op == OpMaskedEqual {
		mHi, mLo := uint32(c.v>>32), uint32(c.v)
		eHi, eLo := uint32(c.v2>>32), uint32(c.v2)
		// staticCond made sure e has no bit outside m, so a half whose
		// mask is 0 needs no check.
		if !highZero && mHi != 0 {
			a.load(hi)
			if mHi != 0xffffffff {
				a.and(mHi)
			}
			if mLo == 0 {
				a.jump(opJEQ, eHi, pass, fail)
				return
			}
			a.jumpNext(opJEQ, eHi, -1, fail)
		}
		a.load(lo)
		if mLo != 0xffffffff {
			a.and(mLo)
		}
		a.jump(opJEQ, eLo, pass, fail)
		return
	}

	vHi, vLo := uint32(c.v>>32), uint32(c.v)
	if !highZero {
		// Decide on the upper halves; equal upper halves go on to the
		// lower ones. less and greater are where A.hi < V.hi and
		// A.hi > V.hi lead.
		var less, greater label
		switch c.op {
		case OpEqual:
			less, greater = fail, fail
		case OpNotEqual:
			less, greater = pass, pass
		case OpGreater, OpGreaterEqual:
			less, greater = fail, pass
		case OpLess, OpLessEqual:
			less, greater = pass, fail
		}
		a.load(hi)
		switch {
		case less == greater:
			a.jumpNext(opJEQ, vHi, -1, less)
		case vHi == 0:
			// A.hi < 0 is impossible: only greater or equal.
			a.jumpNext(opJEQ, 0, -1, greater)
		case vHi == 0xffffffff:
			// A.hi > max is impossible: only less or equal.
			a.jumpNext(opJEQ, vHi, -1, less)
		default:
			a.jumpNext(opJGT, vHi, greater, -1)
			a.jumpNext(opJEQ, vHi, -1, less)
		}
	}
	a.load(lo)
	switch c.op {
	case OpEqual:
		a.jump(opJEQ, vLo, pass, fail)
	case OpNotEqual:
		a.jump(opJEQ, vLo, fail, pass)
	case OpGreater:
		a.jump(opJGT, vLo, pass, fail)
	case OpGreaterEqual:
		a.jump(opJGE, vLo, pass, fail)
	case OpLess:
		a.jump(opJGE, vLo, fail, pass)
	case OpLessEqual:
		a.jump(opJGT, vLo, fail, pass)
	default:
		a.fail(errors.New("seccomp: internal error: unvalidated operator " + string(c.op)))
	}
}
