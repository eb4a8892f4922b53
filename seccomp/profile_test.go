package seccomp

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDockerStyle(t *testing.T) {
	f, err := os.Open("testdata/docker-style.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 1 {
		t.Errorf("default: %s %v", p.DefaultAction, p.DefaultErrnoRet)
	}
	if len(p.ArchMap) != 3 || len(p.Syscalls) != 15 || p.Syscalls[14].Name != "getpid" {
		t.Fatalf("parsed %d archMap entries, %d rules", len(p.ArchMap), len(p.Syscalls))
	}

	const (
		sigchld  = 17
		afVsock  = 40
		afInet   = 2
		tiocsti  = 0x5412
		tcgets   = 0x5401
		newUser  = 0x10000000
		hiGarbge = 0xabcd000000000000
	)
	type call struct {
		arch Arch
		name string
		args [6]uint64
		want uint32
	}
	x := func(name string, want uint32, args ...uint64) call {
		c := call{arch: ArchX86_64, name: name, want: want}
		copy(c.args[:], args)
		return c
	}
	i := func(name string, want uint32, args ...uint64) call {
		c := x(name, want, args...)
		c.arch = ArchX86
		return c
	}
	check := func(o Options, calls ...call) {
		t.Helper()
		prog, err := Compile(p, o)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, prog)
		for _, c := range calls {
			d := data{nr: nrOf(t, c.arch, c.name), arch: auditOf(t, c.arch), args: c.args}
			if got := v.run(d); got != c.want {
				t.Errorf("caps %v kernel %s: %s %s(%#x) = %s, want %s", o.Caps, o.Kernel, c.arch, c.name, c.args[:2], retString(got), retString(c.want))
			}
		}
	}
	check(Options{Arch: "amd64", Kernel: "5.15"},
		x("read", allow), x("epoll_wait_old", allow), x("getppid", allow), x("openat", eperm),
		x("ptrace", allow), x("arch_prctl", allow),
		x("socket", allow, afInet), x("socket", eperm, afVsock),
		x("personality", allow, 0), x("personality", allow, 0xffffffff), x("personality", eperm, 8),
		x("clone", allow, sigchld), x("clone", eperm, newUser|sigchld), x("clone3", enosys),
		x("mount", eperm), x("unshare", eperm),
		x("ioctl", allow, 0, tcgets), x("ioctl", eperm, 0, tiocsti), x("ioctl", eperm, 0, hiGarbge|tiocsti),
		x("getpid", retLog),
		// i386 comes from archMap.
		i("read", allow), i("socketcall", allow), i("_llseek", allow), i("clone", eperm, newUser), i("arch_prctl", allow),
		i("openat", eperm),
	)
	check(Options{Arch: "amd64", Kernel: "4.4", Caps: []string{"CAP_SYS_ADMIN"}},
		x("ptrace", eperm), x("clone", allow, newUser|sigchld), x("clone3", allow), x("mount", allow),
		x("unshare", allow, newUser),
	)
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"empty", ``, []string{"empty input"}},
		{"syntax", "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [\n    {\"names\": [\"read\"] \"action\": \"SCMP_ACT_ALLOW\"}\n  ]\n}",
			[]string{"line 4, column 24", "invalid character"}},
		{"truncated", "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [",
			[]string{"line 3", "unexpected end of input"}},
		{"type", "{\"defaultAction\": \"SCMP_ACT_ALLOW\",\n\"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\",\n \"args\": [{\"index\": \"zero\", \"op\": \"SCMP_CMP_EQ\"}]}]}",
			[]string{"line 3", "syscalls.args.index", "string"}},
		{"negative errno", `{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}`,
			[]string{"line 1", "defaultErrnoRet", "number -1"}},
		{"unknown field", "{\n \"defaultAction\": \"SCMP_ACT_ALLOW\",\n \"sycalls\": []\n}",
			[]string{"line 3, column 2", `unknown field "sycalls"`}},
		{"unknown field escaped", "{\"defaultAction\": \"SCMP_ACT_ALLOW\",\n \"a\\nb\": 1}",
			[]string{"line 2, column 2", `unknown field "a\nb"`}},
		{"trailing", `{"defaultAction": "SCMP_ACT_ALLOW"} {}`, []string{"line 1, column 38", "after the profile"}},
		{"no default", `{"syscalls": []}`, []string{"defaultAction: missing"}},
		{"unknown default action", `{"defaultAction": "SCMP_ACT_DENY"}`,
			[]string{"defaultAction", `unknown action "SCMP_ACT_DENY"`, "SCMP_ACT_KILL_PROCESS"}},
		{"unknown action", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}`,
			[]string{"syscalls[0].action", `unknown action "ALLOW"`}},
		{"notify", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}`,
			[]string{"syscalls[0].action", "SCMP_ACT_NOTIFY is not supported"}},
		{"listener", `{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}`, []string{"listenerPath", "not supported"}},
		{"unknown op", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_NE"}]}]}`,
			[]string{"syscalls[0].args[0].op", `unknown operator "SCMP_CMP_MASKED_NE"`, "SCMP_CMP_MASKED_EQ"}},
		{"missing op", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1}]}]}`,
			[]string{"syscalls[0].args[0].op: missing"}},
		{"index", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`,
			[]string{"syscalls[0].args[0].index", "6 is out of range"}},
		{"valueTwo", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}]}]}`,
			[]string{"syscalls[0].args[0].valueTwo"}},
		{"unknown syscall", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write", "frobnicate"], "action": "SCMP_ACT_ERRNO"}]}`,
			[]string{"syscalls[1].names[1]", `unknown system call "frobnicate"`}},
		{"unknown syscall, name", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "Read", "action": "SCMP_ACT_ALLOW"}]}`,
			[]string{"syscalls[0].name", `unknown system call "Read"`}},
		{"name and names", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}`,
			[]string{"syscalls[0]", "both"}},
		{"no names", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}`,
			[]string{"syscalls[0].names"}},
		{"errno on allow", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}`,
			[]string{"syscalls[0].errnoRet", "only used with SCMP_ACT_ERRNO"}},
		{"errno too big", `{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}`,
			[]string{"defaultErrnoRet", "70000"}},
		{"architecture", `{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}`,
			[]string{"architectures[1]", `"SCMP_ARCH_Z80"`}},
		{"archMap", `{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["x86"]}]}`,
			[]string{"archMap[0].subArchitectures[0]", `"x86"`}},
		{"includes arch", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd46"]}}]}`,
			[]string{"syscalls[0].includes.arches[0]", `"amd46"`}},
		{"minKernel", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "v5"}}]}`,
			[]string{"syscalls[0].excludes.minKernel", `"v5"`}},
		{"flag", `{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}`,
			[]string{"flags[0]", "SECCOMP_FILTER_FLAG_NEW_LISTENER"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.in))
			if err == nil {
				t.Fatalf("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, in := range []string{
		// A name of another architecture only: ignored on x86.
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["s390_runtime_instr", "riscv_flush_icache", "read"], "action": "SCMP_ACT_ERRNO"}]}`,
		// OCI fields.
		`{"defaultAction": "SCMP_ACT_KILL_PROCESS", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
		  "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
		  "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}]}`,
		// No rules.
		`{"defaultAction": "SCMP_ACT_LOG"}`,
	} {
		p, err := Parse(strings.NewReader(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		prog, err := Compile(p, Options{Arch: "amd64"})
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		newVM(t, prog)
		if len(p.Flags) > 0 && prog.Flags != 0x2 {
			t.Errorf("flags %#x, want SECCOMP_FILTER_FLAG_LOG only", prog.Flags)
		}
	}
}

// TestDefaultRoundTrip writes the default profile as JSON and reads it
// back: it is a valid profile in the same format users write.
func TestDefaultRoundTrip(t *testing.T) {
	want := Default(DefaultOptions{})
	b, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	p1, err := Compile(want, Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Compile(got, Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if p1.String() != p2.String() {
		t.Errorf("the round trip changed the program")
	}
}

func TestLoad(t *testing.T) {
	o := Options{Arch: "amd64"}
	prog, err := Load("unconfined", o, DefaultOptions{})
	if err != nil || prog != nil {
		t.Errorf("unconfined: %v, %v", prog, err)
	}
	if err := Install(nil); err != nil {
		t.Errorf("Install(nil): %v", err)
	}
	for _, spec := range []string{"default", ""} {
		prog, err := Load(spec, o, DefaultOptions{})
		if err != nil || prog == nil || prog.Len() == 0 {
			t.Errorf("%q: %v, %v", spec, prog, err)
		}
	}
	prog, err = Load("testdata/docker-style.json", o, DefaultOptions{})
	if err != nil || prog == nil {
		t.Errorf("file: %v", err)
	}

	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	if _, err := Load(missing, o, DefaultOptions{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nope"], "action": "SCMP_ACT_ALLOW"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, o, DefaultOptions{}); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("bad file: %v", err)
	}
	if _, err := Load("default", Options{Arch: "mips"}, DefaultOptions{}); err == nil {
		t.Errorf("unsupported arch: no error")
	}
}

func TestPosition(t *testing.T) {
	data := []byte("ab\ncd\n\nef")
	for _, c := range []struct{ off, line, col int }{{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {6, 3, 1}, {7, 4, 1}, {9, 4, 3}, {99, 4, 3}} {
		if l, col := position(data, c.off); l != c.line || col != c.col {
			t.Errorf("offset %d: %d:%d, want %d:%d", c.off, l, col, c.line, c.col)
		}
	}
}
