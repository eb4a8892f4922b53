package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fuzzTimeLimit bounds one Load, Parse or Compile of a fuzzed profile.
// The slowest inputs known (a rule of ~2700 conditions, refused for the
// instruction limit after its long jumps are laid out) take ~0.1 s; the
// margin is for coverage instrumentation and a busy machine.
const fuzzTimeLimit = time.Second

// fuzzSamples is how many seccomp_data inputs each compiled program is run
// on against the model: few, as each exec compiles for nine architectures
// and the fuzzer minimises an input with up to n² execs.
const fuzzSamples = 8

// FuzzLoad feeds arbitrary bytes to what `sandbox run --seccomp FILE` and
// the OCI runtime run on a profile they were given (Load on a file; Parse
// then Compile) and checks what a hostile profile must not break: no
// panic; every error is one line (it ends up in a one-line diagnostic);
// each call finishes within fuzzTimeLimit; a profile Parse accepts
// compiles for every supported architecture, or is refused only for the
// kernel's 4096-instruction limit, into a program the kernel's checker
// would load (jumps inside the program, loads inside seccomp_data, a
// return last) that returns only the profile's actions and agrees with
// the reference model (vm_test.go) on sample system calls; Load agrees
// with Parse and Compile.
func FuzzLoad(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	// One file per process: the fuzz function is never run concurrently
	// within a process (it does not call t.Parallel).
	path := filepath.Join(f.TempDir(), "profile.json")
	f.Fuzz(func(t *testing.T, in []byte) { checkLoad(t, path, in) })
}

// TestLoadHugeProfiles runs FuzzLoad's checks on profiles with huge
// arrays, which must be refused or compiled within fuzzTimeLimit. They
// are not seeds: the fuzzer would spend minutes minimising each input it
// derives from one.
func TestLoadHugeProfiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profile.json")
	for _, in := range hugeProfiles() {
		start := time.Now()
		checkLoad(t, path, in)
		t.Logf("%d bytes: %v", len(in), time.Since(start))
	}
}

// checkLoad checks FuzzLoad's properties on one input, written to path
// for Load.
func checkLoad(t *testing.T, path string, in []byte) {
	t.Helper()
	if err := os.WriteFile(path, in, 0o600); err != nil {
		t.Fatal(err)
	}
	var loaded *Program
	loadErr := timed(t, "Load", func() (err error) {
		loaded, err = Load(path, Options{Arch: "amd64", Kernel: "6.1"}, DefaultOptions{})
		return err
	})
	var p *Profile
	parseErr := timed(t, "Parse", func() (err error) {
		p, err = Parse(bytes.NewReader(in))
		return err
	})
	if parseErr != nil {
		if loadErr == nil || !strings.HasSuffix(loadErr.Error(), ": "+parseErr.Error()) {
			t.Fatalf("Parse: %v, but Load: %v", parseErr, loadErr)
		}
		return
	}
	for _, goarch := range SupportedArchs() {
		opts := Options{Arch: goarch, Kernel: "6.1"}
		var prog *Program
		err := timed(t, "Compile "+goarch, func() (err error) {
			prog, err = Compile(p, opts)
			return err
		})
		if goarch == "amd64" {
			if (err == nil) != (loadErr == nil) ||
				err != nil && !strings.HasSuffix(loadErr.Error(), ": "+err.Error()) ||
				err == nil && !reflect.DeepEqual(prog, loaded) {
				t.Fatalf("Compile: %v, but Load: %v (or another program)", err, loadErr)
			}
		}
		if err != nil {
			if !strings.Contains(err.Error(), "4096") {
				t.Fatalf("Compile %s refuses a valid profile: %v", goarch, err)
			}
			continue
		}
		checkFuzzProgram(t, p, prog)
		differential(t, in, p, goarch, prog)
	}
	// Capabilities only select rules, the program must be as sound: when
	// a rule depends on them, compile once more with Docker's.
	for _, sc := range p.Syscalls {
		if sc.Includes == nil && sc.Excludes == nil {
			continue
		}
		var prog *Program
		err := timed(t, "Compile with capabilities", func() (err error) {
			prog, err = Compile(p, Options{Arch: "amd64", Kernel: "6.1", Caps: dockerCaps})
			return err
		})
		if err == nil {
			checkFuzzProgram(t, p, prog)
		} else if !strings.Contains(err.Error(), "4096") {
			t.Fatalf("Compile with capabilities refuses a valid profile: %v", err)
		}
		break
	}
}

// timed runs fn, and fails if it took more than fuzzTimeLimit or returned
// an error of several lines.
func timed(t *testing.T, what string, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d > fuzzTimeLimit {
		t.Fatalf("%s took %v (more than %v)", what, d, fuzzTimeLimit)
	}
	if err != nil && (err.Error() == "" || strings.ContainsAny(err.Error(), "\n\r")) {
		t.Fatalf("%s: error not on one line: %q", what, err)
	}
	return err
}

// checkFuzzProgram checks what the kernel's checker would (see
// checkKernelRules), that every return is an action of the profile, the
// bad-arch action or x32's ENOSYS, and that only the flags Install may
// add are set.
func checkFuzzProgram(t *testing.T, p *Profile, prog *Program) {
	t.Helper()
	checkKernelRules(t, prog)
	rets := map[uint32]bool{retKillProcess: true, retErrno | errnoENOSYS: true}
	r, _, _ := actionRet(p.DefaultAction, p.DefaultErrnoRet)
	rets[r] = true
	for _, s := range p.Syscalls {
		r, _, _ := actionRet(s.Action, s.ErrnoRet)
		rets[r] = true
	}
	for i, in := range prog.Instructions {
		if in.Code == opRet && !rets[in.K] {
			t.Fatalf("%d: ret %s: not an action of the profile", i, retString(in.K))
		}
	}
	if prog.Flags&^0x6 != 0 { // SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW
		t.Fatalf("flags %#x", prog.Flags)
	}
}

// differential runs prog, compiled for goarch without capabilities, on
// fuzzSamples seccomp_data inputs drawn from the profile (its system calls
// and argument values, their neighbours) and a few others (foreign
// architectures, x32 and invalid numbers), and compares each verdict with
// the model's. The inputs depend only on in and goarch.
func differential(t *testing.T, in []byte, p *Profile, goarch string, prog *Program) {
	t.Helper()
	native, _ := nativeInfo(goarch)
	secs := sectionsOf(t, goarch)
	h := fnv.New64a()
	h.Write(in)
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(len(goarch))))
	var names []string
	values := []uint64{0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 32, 1<<63 | 1, ^uint64(0)}
	for _, s := range p.Syscalls {
		names = append(names, s.names()...)
		for _, a := range s.Args {
			values = append(values, a.Value, a.Value+1, a.Value-1, a.ValueTwo, a.ValueTwo|^a.Value)
		}
	}
	v := newVM(t, prog)
	for range fuzzSamples {
		sec := secs[r.IntN(len(secs))]
		d := data{arch: sec.audit, nr: r.Uint32N(600)}
		switch r.IntN(10) {
		case 0:
			d.arch = foreignAudits[r.IntN(len(foreignAudits))]
		case 1:
			d.nr = []uint32{x32SyscallBit + r.Uint32N(600), 0x7fffffff, 0x80000000, ^uint32(0)}[r.IntN(4)]
		default:
			if len(names) > 0 {
				if nr, ok := SyscallNumber(sec.arch, names[r.IntN(len(names))]); ok {
					d.nr = nr
				}
			}
		}
		for i := range d.args {
			d.args[i] = values[r.IntN(len(values))]
			if r.IntN(8) == 0 {
				d.args[i] = r.Uint64()
			}
			if sec.highZero {
				d.args[i] &= 0xffffffff // the kernel zero-extends
			}
		}
		if got, want := v.run(d), model(t, p, native.arch, d); got != want {
			t.Fatalf("%s: arch %#x nr %#x args %#x: program %s, model %s", goarch, d.arch, d.nr, d.args, retString(got), retString(want))
		}
	}
}

// fuzzSeeds are FuzzLoad's seed corpus: the profiles in testdata, the
// built-in default ones, and small profiles for each action, operator and
// kind of malformed input.
func fuzzSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("testdata profiles: %v %v", files, err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, o := range []DefaultOptions{{}, {AllowNestedUserns: true, DenyPtrace: true}} {
		b, err := json.Marshal(Default(o))
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	rule := fuzzRule
	for _, a := range []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
		"SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"} {
		seeds = append(seeds,
			[]byte(`{"defaultAction": "`+a+`"}`),
			rule(`{"names": ["getpid", "mkdir"], "action": "`+a+`"}`),
			rule(`{"names": ["getpid"], "action": "`+a+`", "errnoRet": 13}`))
	}
	seeds = append(seeds,
		[]byte(`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4095}]}`),
		[]byte(`{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/l.sock", "listenerMetadata": "x"}`))
	for _, op := range operators {
		for _, v := range []string{"0", "1", "4294967295", "4294967296", "9223372036854775808", "18446744073709551615"} {
			two := ""
			if op == OpMaskedEqual {
				two = `, "valueTwo": ` + v
			}
			seeds = append(seeds, rule(fmt.Sprintf(
				`{"names": ["ioctl", "clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": %s%s, "op": "%s"}, {"index": 5, "value": 66, "op": "SCMP_CMP_NE"}]}`,
				v, two, op)))
		}
	}
	seeds = append(seeds,
		// Minimal, and the architecture fields.
		[]byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`),
		[]byte(`{"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_RISCV64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_PPC64", "SCMP_ARCH_S390X", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_MIPS"], "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"], "syscalls": [{"names": ["socketcall", "arm_fadvise64_64", "s390_runtime_instr"], "action": "SCMP_ACT_TRAP"}]}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}, {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": null}], "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_x86_64"]}`),
		// Unknown and duplicate names, name and names.
		rule(`{"names": ["read", "nope"], "action": "SCMP_ACT_KILL"}`),
		rule(`{"names": [""], "action": "SCMP_ACT_KILL"}`),
		rule(`{"name": "read", "action": "SCMP_ACT_KILL"}`),
		rule(`{"name": "read", "names": ["write"], "action": "SCMP_ACT_KILL"}`),
		rule(`{"names": ["read", "read", "write", "read"], "action": "SCMP_ACT_ERRNO"}, {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}, {"names": ["read"], "action": "SCMP_ACT_TRAP", "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_GE"}]}`),
		// includes and excludes.
		rule(`{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_PTRACE"], "arches": ["amd64", "x86", "s390x"], "minKernel": "4.8"}, "excludes": {"caps": ["chown"], "arches": ["SCMP_ARCH_AARCH64"], "minKernel": "6.18.4-rc1"}, "comment": "c"}`),
		rule(`{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99999999999999999999.1"}}`),
		rule(`{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": [" "], "arches": ["vax"], "minKernel": "x"}}`),
		// Empty arrays and objects, nulls.
		[]byte(`{"defaultAction": "SCMP_ACT_ERRNO", "architectures": [], "archMap": [], "flags": [], "syscalls": []}`),
		rule(`{"names": [], "action": "SCMP_ACT_ALLOW", "args": []}`),
		rule(`{}`),
		rule(`null`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [null], "errnoRet": null, "includes": null}`),
		[]byte(`{"defaultAction": null, "syscalls": null}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": null, "architectures": null}`),
		[]byte(`null`),
		[]byte(`{}`),
		// Wrong types.
		[]byte(`{"defaultAction": 1}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}`),
		rule(`{"names": "read", "action": "SCMP_ACT_ALLOW"}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": "0", "value": 1, "op": "SCMP_CMP_EQ"}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1.5, "op": "SCMP_CMP_EQ"}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": 3}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}`),
		rule(`{"names": ["read"], "action": ["SCMP_ACT_ERRNO"]}`),
		[]byte(`[]`), []byte(`""`), []byte(`true`), []byte(`0`), []byte(``), []byte(" \n\t"),
		// Huge and out-of-range numbers.
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 18446744073709551616, "op": "SCMP_CMP_EQ"}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 99999999999999999999, "value": 1, "op": "SCMP_CMP_EQ"}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": "SCMP_CMP_EQ"}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}, {"index": 0, "value": 1}]}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4096}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1e400}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}`),
		// Unknown fields, trailing data, malformed JSON.
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "bogus": 1}`),
		rule(`{"names": ["read"], "action": "SCMP_ACT_ALLOW", "Names": ["write"]}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "defaultAction": "SCMP_ACT_KILL"}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW"} {}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW"`),
		[]byte("{\"defaultAction\": \"SCMP_ACT_\u00e9\xff\"}"),
		[]byte("\xef\xbb\xbf{\"defaultAction\": \"SCMP_ACT_ALLOW\"}"),
		// Deep nesting, in a known field and in an unknown one.
		[]byte(strings.Repeat("[", 10001)), // encoding/json's limit is 10000
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": `+strings.Repeat("[", 200)+strings.Repeat("]", 200)+`}`),
		[]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "x": `+strings.Repeat(`{"a":`, 200)+`0`+strings.Repeat("}", 200)+`}`),
	)
	// Many rules (for hundreds more, see hugeProfiles).
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf(`{"names": ["read", "write", "ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": %d, "args": [{"index": %d, "value": %d, "op": "SCMP_CMP_EQ"}]}`, i, i%6, uint64(i)<<31))
	}
	return append(seeds, fuzzRule(strings.Join(many, ", ")))
}

// fuzzRule is a profile with the rules body.
func fuzzRule(body string) []byte {
	return []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [` + body + `]}`)
}

// hugeProfiles are profiles with huge arrays: hundreds of rules, thousands
// of conditions in one rule (refused for the instruction limit, one after
// the long jumps are laid out, one before), ten thousand names.
func hugeProfiles() [][]byte {
	var many, conds []string
	for i := range 300 {
		many = append(many, fmt.Sprintf(`{"names": ["read", "write", "ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": %d, "args": [{"index": %d, "value": %d, "op": "SCMP_CMP_EQ"}]}`, i%4096, i%6, uint64(i)<<31))
	}
	for i := range 5000 {
		conds = append(conds, fmt.Sprintf(`{"index": %d, "value": %d, "op": "SCMP_CMP_EQ"}`, i%6, uint64(i)<<40|1))
	}
	return [][]byte{
		fuzzRule(strings.Join(many, ", ")),
		fuzzRule(`{"names": ["read"], "action": "SCMP_ACT_KILL", "args": [` + strings.Join(conds[:2700], ", ") + `]}`),
		fuzzRule(`{"names": ["read"], "action": "SCMP_ACT_KILL", "args": [` + strings.Join(conds, ", ") + `]}`),
		fuzzRule(`{"names": [` + strings.Repeat(`"read", "mmap", `, 5000) + `"close"], "action": "SCMP_ACT_LOG"}`),
	}
}
