package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"sandbox/internal/kernel"
	"sandbox/internal/userfile"
)

// Action is what a filter does with a system call (libseccomp's names).
type Action string

// Actions. ActKill is an alias of ActKillThread, as in libseccomp.
const (
	ActAllow       Action = "SCMP_ACT_ALLOW"
	ActErrno       Action = "SCMP_ACT_ERRNO"
	ActKill        Action = "SCMP_ACT_KILL"
	ActKillThread  Action = "SCMP_ACT_KILL_THREAD"
	ActKillProcess Action = "SCMP_ACT_KILL_PROCESS"
	ActTrap        Action = "SCMP_ACT_TRAP"
	ActTrace       Action = "SCMP_ACT_TRACE" // compiled as ERRNO(ENOSYS)
	ActLog         Action = "SCMP_ACT_LOG"
	ActNotify      Action = "SCMP_ACT_NOTIFY" // recognised, not supported
)

var actions = []Action{ActAllow, ActErrno, ActKill, ActKillThread, ActKillProcess, ActTrap, ActTrace, ActLog}

// Operator compares a system-call argument with a value.
type Operator string

// Operators. For OpMaskedEqual, Arg.Value is the mask and Arg.ValueTwo the
// value the masked argument must equal.
const (
	OpEqual        Operator = "SCMP_CMP_EQ"
	OpNotEqual     Operator = "SCMP_CMP_NE"
	OpLess         Operator = "SCMP_CMP_LT"
	OpLessEqual    Operator = "SCMP_CMP_LE"
	OpGreater      Operator = "SCMP_CMP_GT"
	OpGreaterEqual Operator = "SCMP_CMP_GE"
	OpMaskedEqual  Operator = "SCMP_CMP_MASKED_EQ"
)

var operators = []Operator{OpEqual, OpNotEqual, OpLess, OpLessEqual, OpGreater, OpGreaterEqual, OpMaskedEqual}

// Arch is a libseccomp architecture name as used in the "architectures"
// and "archMap" fields ("SCMP_ARCH_X86_64").
type Arch string

// Architectures this package compiles rules for (the others are in
// arch.go). Any other SCMP_ARCH_ name libseccomp knows is accepted and
// ignored.
const (
	ArchX86_64 Arch = "SCMP_ARCH_X86_64"
	ArchX86    Arch = "SCMP_ARCH_X86"
	ArchX32    Arch = "SCMP_ARCH_X32"
)

// Profile is a seccomp profile in the OCI runtime-spec (linux.seccomp) /
// Docker JSON format.
type Profile struct {
	DefaultAction   Action    `json:"defaultAction"`
	DefaultErrnoRet *uint     `json:"defaultErrnoRet,omitempty"`
	Architectures   []Arch    `json:"architectures,omitempty"`
	ArchMap         []ArchMap `json:"archMap,omitempty"`
	// Flags are SECCOMP_FILTER_FLAG_* names (OCI).
	Flags []string `json:"flags,omitempty"`
	// ListenerPath and ListenerMetadata belong to SCMP_ACT_NOTIFY, which
	// is not supported: a non-empty ListenerPath is an error.
	ListenerPath     string    `json:"listenerPath,omitempty"`
	ListenerMetadata string    `json:"listenerMetadata,omitempty"`
	Syscalls         []Syscall `json:"syscalls,omitempty"`
}

// ArchMap adds sub-architectures when Architecture is the native one
// (Docker: x86_64 → x86, x32).
type ArchMap struct {
	Architecture     Arch   `json:"architecture"`
	SubArchitectures []Arch `json:"subArchitectures"`
}

// Syscall is one rule: the action for the named system calls when all the
// argument conditions hold.
type Syscall struct {
	Names []string `json:"names,omitempty"`
	// Name is Docker's older single-name form; use Names.
	Name     string  `json:"name,omitempty"`
	Action   Action  `json:"action"`
	ErrnoRet *uint   `json:"errnoRet,omitempty"`
	Args     []Arg   `json:"args,omitempty"`
	Comment  string  `json:"comment,omitempty"`
	Includes *Filter `json:"includes,omitempty"`
	Excludes *Filter `json:"excludes,omitempty"`
}

// Arg is one condition on argument Index (0-5).
type Arg struct {
	Index    uint     `json:"index"`
	Value    uint64   `json:"value"`
	ValueTwo uint64   `json:"valueTwo,omitempty"`
	Op       Operator `json:"op"`
}

// Filter selects the rules that apply (Docker's includes/excludes).
type Filter struct {
	Caps   []string `json:"caps,omitempty"`
	Arches []string `json:"arches,omitempty"`
	// MinKernel is "major.minor" (Docker: "4.8").
	MinKernel string `json:"minKernel,omitempty"`
}

// names returns the rule's system-call names (Names, or the older Name).
func (s *Syscall) names() []string {
	if len(s.Names) > 0 {
		return s.Names
	}
	if s.Name != "" {
		return []string{s.Name}
	}
	return nil
}

// Parse reads a profile and validates it (see Validate). Errors give the
// line and column for malformed JSON and the JSON path of a bad value
// ("syscalls[3].args[0].op: unknown operator ...").
func Parse(r io.Reader) (*Profile, error) {
	data, err := io.ReadAll(io.LimitReader(r, userfile.MaxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("reading seccomp profile: %w", err)
	}
	if len(data) > userfile.MaxConfig {
		return nil, fmt.Errorf("seccomp profile: over the limit of %d bytes", userfile.MaxConfig)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		off := int(dec.InputOffset())
		line, col := position(data, off)
		return nil, fmt.Errorf("seccomp profile: line %d, column %d: unexpected data after the profile", line, col)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// unknownField returns the name in encoding/json's `json: unknown field
// "NAME"` (what the regexp ^json: unknown field "(.*)"$ matched, without
// compiling one when the package is initialised).
func unknownField(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, `json: unknown field "`)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, `"`)
	if !ok || strings.Contains(name, "\n") {
		return "", false
	}
	return name, true
}

// jsonError turns an encoding/json error into one with a line and column.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("seccomp profile: empty input")
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := position(data, len(data))
		return fmt.Errorf("seccomp profile: line %d, column %d: unexpected end of input", line, col)
	case errors.As(err, &syn):
		// Offset counts the bytes read, the bad one included.
		line, col := position(data, int(syn.Offset)-1)
		return fmt.Errorf("seccomp profile: line %d, column %d: %s", line, col, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		line, col := position(data, int(typ.Offset))
		where := typ.Field
		if where == "" {
			where = "value"
		}
		return fmt.Errorf("seccomp profile: line %d, column %d: %s: cannot use JSON %s as %s", line, col, where, typ.Value, typ.Type)
	}
	if name, ok := unknownField(err.Error()); ok {
		// encoding/json quotes the name with Go's escapes; unquoted, it
		// is marshalled again as the document would spell it.
		if u, err := strconv.Unquote(`"` + name + `"`); err == nil {
			name = u
		}
		// encoding/json gives no offset for this one: find the key.
		key, _ := json.Marshal(name)
		re := regexp.MustCompile(regexp.QuoteMeta(string(key)) + `\s*:`)
		if loc := re.FindIndex(data); loc != nil {
			line, col := position(data, loc[0])
			return fmt.Errorf("seccomp profile: line %d, column %d: unknown field %s", line, col, key)
		}
		return fmt.Errorf("seccomp profile: unknown field %s", key)
	}
	return fmt.Errorf("seccomp profile: %w", err)
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = off - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// maxErrno is the largest errno the kernel passes on (MAX_ERRNO).
const maxErrno = 4095

// filterFlag is an accepted "flags" entry's SECCOMP_FILTER_FLAG_ bit.
func filterFlag(name string) (uint, bool) {
	switch name {
	case "SECCOMP_FILTER_FLAG_TSYNC":
		return 0x1, true // always used
	case "SECCOMP_FILTER_FLAG_LOG":
		return 0x2, true
	case "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
		return 0x4, true
	}
	return 0, false
}

// Validate checks everything Compile needs that does not depend on the
// compile options: known actions, operators, architectures, flags and
// system-call names, argument indexes, errno values.
func (p *Profile) Validate() error {
	if p == nil {
		return errors.New("seccomp profile: nil profile")
	}
	if p.DefaultAction == "" {
		return errors.New("seccomp profile: defaultAction: missing")
	}
	if err := checkAction("defaultAction", p.DefaultAction, p.DefaultErrnoRet, "defaultErrnoRet"); err != nil {
		return err
	}
	for i, a := range p.Architectures {
		if !knownSCMPArch(a) {
			return fmt.Errorf("seccomp profile: architectures[%d]: unknown architecture %q", i, a)
		}
	}
	for i, m := range p.ArchMap {
		if !knownSCMPArch(m.Architecture) {
			return fmt.Errorf("seccomp profile: archMap[%d].architecture: unknown architecture %q", i, m.Architecture)
		}
		for j, a := range m.SubArchitectures {
			if !knownSCMPArch(a) {
				return fmt.Errorf("seccomp profile: archMap[%d].subArchitectures[%d]: unknown architecture %q", i, j, a)
			}
		}
	}
	for i, f := range p.Flags {
		if _, ok := filterFlag(f); !ok {
			return fmt.Errorf("seccomp profile: flags[%d]: unsupported flag %q (supported: SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW)", i, f)
		}
	}
	if p.ListenerPath != "" {
		return fmt.Errorf("seccomp profile: listenerPath: seccomp notification (SCMP_ACT_NOTIFY) is not supported")
	}
	for i := range p.Syscalls {
		if err := p.Syscalls[i].validate(fmt.Sprintf("syscalls[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Syscall) validate(path string) error {
	if s.Name != "" && len(s.Names) > 0 {
		return fmt.Errorf("seccomp profile: %s: both \"name\" and \"names\" are set; use \"names\"", path)
	}
	names := s.names()
	if len(names) == 0 {
		return fmt.Errorf("seccomp profile: %s.names: no system call named", path)
	}
	for j, n := range names {
		if !KnownSyscall(n) {
			field := fmt.Sprintf("%s.names[%d]", path, j)
			if s.Name != "" {
				field = path + ".name"
			}
			return fmt.Errorf("seccomp profile: %s: unknown system call %q (not a system call on any Linux architecture)", field, n)
		}
	}
	if s.Action == "" {
		return fmt.Errorf("seccomp profile: %s.action: missing", path)
	}
	if err := checkAction(path+".action", s.Action, s.ErrnoRet, path+".errnoRet"); err != nil {
		return err
	}
	for j, a := range s.Args {
		ap := fmt.Sprintf("%s.args[%d]", path, j)
		if a.Index > 5 {
			return fmt.Errorf("seccomp profile: %s.index: %d is out of range (system calls have arguments 0 to 5)", ap, a.Index)
		}
		if !knownOperator(a.Op) {
			if a.Op == "" {
				return fmt.Errorf("seccomp profile: %s.op: missing", ap)
			}
			return fmt.Errorf("seccomp profile: %s.op: unknown operator %q (want one of %s)", ap, a.Op, joinOps())
		}
		if a.Op != OpMaskedEqual && a.ValueTwo != 0 {
			return fmt.Errorf("seccomp profile: %s.valueTwo: only used by %s (where value is the mask and valueTwo the expected value)", ap, OpMaskedEqual)
		}
	}
	for _, f := range []struct {
		name string
		f    *Filter
	}{{"includes", s.Includes}, {"excludes", s.Excludes}} {
		if f.f == nil {
			continue
		}
		for j, a := range f.f.Arches {
			if _, ok := canonArch(a); !ok {
				return fmt.Errorf("seccomp profile: %s.%s.arches[%d]: unknown architecture %q", path, f.name, j, a)
			}
		}
		for j, c := range f.f.Caps {
			if strings.TrimSpace(c) == "" {
				return fmt.Errorf("seccomp profile: %s.%s.caps[%d]: empty capability name", path, f.name, j)
			}
		}
		if f.f.MinKernel != "" {
			if _, err := parseKernelVersion(f.f.MinKernel); err != nil {
				return fmt.Errorf("seccomp profile: %s.%s.minKernel: %v", path, f.name, err)
			}
		}
	}
	return nil
}

func checkAction(field string, a Action, errno *uint, errnoField string) error {
	if a == ActNotify {
		return fmt.Errorf("seccomp profile: %s: %s is not supported (it needs a seccomp notification supervisor)", field, a)
	}
	if !knownAction(a) {
		return fmt.Errorf("seccomp profile: %s: unknown action %q (want one of %s)", field, a, joinActions())
	}
	if errno != nil {
		switch a {
		case ActErrno:
			if *errno > maxErrno {
				return fmt.Errorf("seccomp profile: %s: %d is not an errno (at most %d)", errnoField, *errno, maxErrno)
			}
		case ActTrace:
			// Accepted (runc passes it to the tracer) and ignored: TRACE
			// is compiled as ERRNO(ENOSYS).
		default:
			return fmt.Errorf("seccomp profile: %s: only used with %s", errnoField, ActErrno)
		}
	}
	return nil
}

func knownAction(a Action) bool {
	for _, k := range actions {
		if a == k {
			return true
		}
	}
	return false
}

func knownOperator(o Operator) bool {
	for _, k := range operators {
		if o == k {
			return true
		}
	}
	return false
}

func joinActions() string {
	s := make([]string, len(actions))
	for i, a := range actions {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

func joinOps() string {
	s := make([]string, len(operators))
	for i, o := range operators {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// kernelVersion is major, minor.
type kernelVersion = kernel.Version

// parseKernelVersion reads "major.minor" with anything after the minor
// number ignored ("6.18.44-fc" is 6.18).
func parseKernelVersion(s string) (kernelVersion, error) { return kernel.Parse(s) }
