//go:build linux

package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/testenv"
)

const (
	defaultCache = "/var/cache/sandbox-vm"
	// Bounds of the whole VM run; the guest tests bound each command themselves.
	vmTimeout    = 15 * time.Minute
	bootTimeout  = 3 * time.Minute
	buildTime    = 5 * time.Minute
	guestTimeout = "6m" // -test.timeout of each pass (a loaded host slows TCG guests 5-10x)
)

// A pass runs the guest test binary as one user: each user has its own
// delegation shape (see guest/init).
type pass struct {
	name, user string
	args       []string // selects the pass's tests
}

var passes = []pass{
	{"delegated", "tester", []string{"-test.skip", "^(TestStock|TestOld|TestArm64)"}}, // TestVMOldKernel's, TestVMArm64's
	{"stock", "stock", []string{"-test.run", "^TestStock"}},
}

// requireOrSkip: testenv.RequireOrSkip, naming the fix.
func requireOrSkip(t *testing.T, ok bool, what string) {
	t.Helper()
	testenv.RequireOrSkip(t, ok, what+"; fix: sudo scripts/setup-host.sh")
}

// TestVM boots the VM once and reports each guest test as a subtest
// TestVM/PASS/TestName.
func TestVM(t *testing.T) {
	_, cache := vmPrereqs(t)
	bootGuest(t, cache, passes)
}

// bootGuest boots the kernel of cache once, runs the passes, and reports
// each guest test as a subtest PASS/TestName.
func bootGuest(t *testing.T, cache string, passes []pass) {
	here := kernelPrereqs(t, cache)
	work := t.TempDir()
	sandbox := sandboxBinary(t, work)
	tags := "vmguest"
	if extra := os.Getenv("SANDBOX_VM_TAGS"); extra != "" {
		tags += "," + extra // extra build tags for the guest tests (SANDBOX_VM_TAGS)
	}
	guestTest := buildGuestTests(t, work, tags)
	job := filepath.Join(work, "job.sh")
	if err := os.WriteFile(job, []byte(jobScript(passes)), 0o755); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(work, "out")
	log, err := boot(t, here, out, "--kernel", cache, "--bin", sandbox, "--bin", guestTest, "--bin", job,
		"--", "sh", "/run/vmtest/ctl/bin/job.sh")
	if err != nil {
		t.Fatalf("the VM run failed: %v\n%s", err, log)
	}
	t.Logf("%s", lastLine(log))
	for _, p := range passes {
		t.Run(p.name, func(t *testing.T) { relayPass(t, out, p, log) })
	}
}

// jobScript is what the guest runs as root: each pass as its user, output
// in test2json framing to $VMTEST_OUT/PASS.out, status to PASS.rc.
func jobScript(passes []pass) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# Written by vm/vm_test.go.\nexport SANDBOX_BIN=/run/vmtest/ctl/bin/sandbox CI=%s\n", shQuote(os.Getenv("CI")))
	b.WriteString(`pass() {
	name="$1" user="$2"
	shift 2
	echo "vmtest: pass $name as $user"
	vm-as-user "$user" /run/vmtest/ctl/bin/guest.test -test.v=test2json -test.timeout=` + guestTimeout + ` "$@" >"$VMTEST_OUT/$name.out" 2>&1
	echo $? >"$VMTEST_OUT/$name.rc"
}
`)
	for _, p := range passes {
		fmt.Fprintf(&b, "pass %s %s", p.name, p.user)
		for _, a := range p.args {
			b.WriteString(" " + shQuote(a))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// kernelCacheOK: the cache holds a vmlinux made by this checkout's
// fetch-kernel.sh (its stamp is the script's hash).
func kernelCacheOK(t *testing.T, cache, script string) bool {
	t.Helper()
	return cacheOK(t, cache, script, "vmlinux")
}

// cacheOK: cache's stamp is the hash of the script that made it, and it
// holds a readable file named kernel.
func cacheOK(t *testing.T, cache, script, kernel string) bool {
	t.Helper()
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatalf("reading %s: %v", script, err)
	}
	sum := sha256.Sum256(src)
	stamp, err := os.ReadFile(filepath.Join(cache, "stamp"))
	if err != nil || strings.TrimSpace(string(stamp)) != hex.EncodeToString(sum[:])[:16] {
		return false
	}
	f, err := os.Open(filepath.Join(cache, kernel))
	if err != nil {
		return false
	}
	return f.Close() == nil
}

// sandboxBinary is $SANDBOX_BIN, or a fresh build in dir; the guest has no
// libc, so it must be static.
func sandboxBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := os.Getenv("SANDBOX_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "sandbox")
		ctx, cancel := context.WithTimeout(context.Background(), buildTime)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "sandbox/cmd/sandbox")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("SANDBOX_BIN is unset and building it failed: %v\n%s", err, out)
		}
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("sandbox binary %s: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("sandbox binary %s is dynamically linked; build it with CGO_ENABLED=0 (scripts/build.sh)", bin)
		}
	}
	if filepath.Base(bin) == "sandbox" {
		return bin
	}
	// run.sh --bin keeps the name; the guest expects "sandbox".
	b, err := os.ReadFile(bin)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "sandbox"), b, 0o755)
	}
	if err != nil {
		t.Fatalf("copying the sandbox binary: %v", err)
	}
	return filepath.Join(dir, "sandbox")
}

// boot runs vm/run.sh with args, copying the guest's $VMTEST_OUT to out,
// and returns its output.
func boot(t *testing.T, here, out string, args ...string) (string, error) {
	t.Helper()
	timeout := vmTimeout
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second < timeout {
		timeout = time.Until(d) - 30*time.Second // end before `go test -timeout` panics
	}
	if timeout < time.Minute {
		t.Fatalf("only %v left before the test deadline: too little to boot the VM (go test -timeout)", timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+20*time.Second)
	defer cancel()
	args = append([]string{"--out", out, "--timeout", fmt.Sprint(int(timeout.Seconds())),
		"--boot-timeout", fmt.Sprint(int(bootTimeout.Seconds()))}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(here, "run.sh"), args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	// QEMU stays in run.sh's process group (timeout --foreground): kill it all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("vm/run.sh took %v", time.Since(start).Round(100*time.Millisecond))
	return buf.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// guestTest is one test of the guest binary as test2json reports it.
type guestTest struct {
	name     string // last element of the name
	action   string // pass, fail, skip; "" when it never finished
	elapsed  float64
	output   []string
	children []*guestTest
}

// relayPass turns OUT/PASS.out into subtests.
func relayPass(t *testing.T, out string, p pass, vmLog string) {
	raw, err := os.ReadFile(filepath.Join(out, p.name+".out"))
	if err != nil {
		t.Fatalf("no output of the guest pass %q (%v); the VM run said:\n%s", p.name, err, vmLog)
	}
	rc, _ := os.ReadFile(filepath.Join(out, p.name+".rc"))
	tests, pkgOutput, err := parseGuest(raw)
	if err != nil {
		t.Fatalf("reading the guest pass %q: %v\n%s", p.name, err, raw)
	}
	if len(tests) == 0 {
		t.Fatalf("the guest pass %q ran no test (exit %s):\n%s", p.name, strings.TrimSpace(string(rc)), raw)
	}
	failed := relay(t, tests)
	if code := strings.TrimSpace(string(rc)); code != "0" && !failed {
		t.Errorf("the guest test binary exited %q without a failing test:\n%s", code, strings.Join(pkgOutput, ""))
	}
}

// relay reports each guest test as a subtest; it tells whether one failed.
func relay(t *testing.T, tests []*guestTest) bool {
	failed := false
	for _, g := range tests {
		ok := t.Run(g.name, func(t *testing.T) {
			t.Logf("in the guest: %s in %.2fs\n%s", g.action, g.elapsed, strings.Join(g.output, ""))
			if relay(t, g.children) {
				return // the failing subtest said why
			}
			switch g.action {
			case "pass":
			case "skip":
				testenv.RequireOrSkip(t, false, "what the guest test needs (it skipped there; see its output)")
			case "fail":
				t.Error("failed in the guest (see its output)")
			default:
				t.Error("no result: the guest test binary ended during this test (timeout or crash; see the output)")
			}
		})
		failed = failed || !ok
	}
	return failed
}

// statusLine matches the lines `go test -v` frames tests with; they are
// dropped from relayed output so the relaying test's own lines are the only
// ones scripts/test.sh counts.
var statusLine = regexp.MustCompile(`^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|FAIL|SKIP):)`)

// resultLine is a test's last line, "--- PASS: Name (1.23s)", the only place
// its duration is (test2json reading a stream does not report it).
var resultLine = regexp.MustCompile(`^\s*--- (?:PASS|FAIL|SKIP): \S+ \(([0-9.]+)s\)`)

// parseGuest converts `-test.v=test2json` output with `go tool test2json`
// and groups it by test; it also returns output outside any test.
func parseGuest(raw []byte) ([]*guestTest, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "tool", "test2json")
	cmd.Stdin = bytes.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	js, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go tool test2json: %v: %s", err, stderr.String())
	}
	var top []*guestTest
	byName := map[string]*guestTest{}
	var pkgOutput []string
	sc := bufio.NewScanner(bytes.NewReader(js))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, nil, fmt.Errorf("test2json event %q: %v", sc.Text(), err)
		}
		if ev.Test == "" {
			if ev.Action == "output" {
				pkgOutput = append(pkgOutput, ev.Output)
			}
			continue
		}
		g := byName[ev.Test]
		if g == nil {
			parent, short, nested := cutLast(ev.Test)
			g = &guestTest{name: short}
			byName[ev.Test] = g
			if p := byName[parent]; nested && p != nil {
				p.children = append(p.children, g)
			} else {
				top = append(top, g)
			}
		}
		switch ev.Action {
		case "output":
			if m := resultLine.FindStringSubmatch(ev.Output); m != nil {
				g.elapsed, _ = strconv.ParseFloat(m[1], 64)
			}
			if !statusLine.MatchString(ev.Output) {
				g.output = append(g.output, ev.Output)
			}
		case "pass", "fail", "skip":
			g.action = ev.Action
		}
	}
	return top, pkgOutput, sc.Err()
}

// cutLast splits "A/B/C" into "A/B", "C".
func cutLast(name string) (string, string, bool) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name, false
	}
	return name[:i], name[i+1:], true
}
