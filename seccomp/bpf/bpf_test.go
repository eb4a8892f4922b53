package bpf

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestString(t *testing.T) {
	p := &Program{Instructions: []Instruction{
		{Code: OpLoadAbs, K: 4},
		{Code: OpJEQ, Jt: 1, Jf: 0, K: 0xc000003e},
		{Code: OpRet, K: RetKillProcess},
		{Code: OpAnd, K: 0xff},
		{Code: OpJGT, Jt: 0, Jf: 1, K: 7},
		{Code: OpJA, K: 1},
		{Code: OpRet, K: RetErrno | 1},
		{Code: OpJSET, K: 2},
		{Code: OpJGE, K: 3},
		{Code: OpRet, K: RetAllow},
		{Code: OpRet, K: RetTrace | 5},
		{Code: OpRet, K: RetLog},
		{Code: OpRet, K: RetTrap},
		{Code: OpRet, K: RetKillThread},
		{Code: OpRet, K: 0x12340000},
		{Code: 0x99, Jt: 1, Jf: 2, K: 3},
	}}
	want := `   0: ld [4]
   1: jeq #0xc000003e, 3, 2
   2: ret KILL_PROCESS
   3: and #0xff
   4: jgt #0x7, 5, 6
   5: ja 7
   6: ret ERRNO(1)
   7: jset #0x2, 8, 8
   8: jge #0x3, 9, 9
   9: ret ALLOW
  10: ret TRACE(5)
  11: ret LOG
  12: ret TRAP
  13: ret KILL_THREAD
  14: ret 0x12340000
  15: code=0x99 jt=1 jf=2 k=0x3
`
	if got := p.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}
	if p.Len() != 16 {
		t.Errorf("Len() = %d", p.Len())
	}
}

// TestInstallBounds: nil is unconfined; an empty or too long program is
// refused before any system call.
func TestInstallBounds(t *testing.T) {
	if err := Install(nil); err != nil {
		t.Errorf("Install(nil) = %v", err)
	}
	for _, n := range []int{0, MaxInstructions + 1} {
		err := Install(&Program{Instructions: make([]Instruction, n)})
		if err == nil || !strings.Contains(err.Error(), "cannot install a filter of") {
			t.Errorf("Install of %d instructions: %v", n, err)
		}
	}
}

// TestImportsOnlyStd: the package is for small programs: the standard
// library and golang.org/x/sys only.
func TestImportsOnlyStd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "sandbox/seccomp/bpf" && !strings.HasPrefix(p, "golang.org/x/sys/") {
			t.Errorf("sandbox/seccomp/bpf links %s", p)
		}
	}
}
