//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/testenv"
)

// ---------------------------------------------------------------------------
// Binary under test

var (
	sandboxBin     string // absolute path of the binary under test
	sandboxBinReal string // same, symlinks resolved (to compare with /proc/PID/exe)
	setupErr       error  // why the binary is not usable
	moduleRoot     string // directory holding go.mod (for docs/cli.md)
)

const (
	cmdTimeout  = 30 * time.Second // bound of one sandbox command
	exitSandbox = 125              // contract: error of the sandbox itself
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	uninheritIgnoredSignals()
	root, rootErr := findModuleRoot()
	moduleRoot = root
	if bin := os.Getenv("SANDBOX_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			setupErr = fmt.Errorf("SANDBOX_BIN=%q: %v", bin, err)
		}
		sandboxBin = abs
	} else if rootErr != nil {
		setupErr = fmt.Errorf("SANDBOX_BIN is unset and the module root was not found: %v", rootErr)
	} else {
		dir, err := os.MkdirTemp("", "e2e-sandbox-bin-")
		if err != nil {
			setupErr = fmt.Errorf("creating a build dir: %v", err)
		} else {
			defer os.RemoveAll(dir)
			sandboxBin = filepath.Join(dir, "sandbox")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			cmd := exec.CommandContext(ctx, "go", "build", "-o", sandboxBin, "sandbox/cmd/sandbox")
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				setupErr = fmt.Errorf("SANDBOX_BIN is unset and `go build -o %s sandbox/cmd/sandbox` in %s failed: %v\n%s",
					sandboxBin, root, err, out)
			}
		}
	}
	if setupErr == nil {
		st, err := os.Stat(sandboxBin)
		switch {
		case err != nil:
			setupErr = fmt.Errorf("sandbox binary: %v", err)
		case st.Mode()&0o111 == 0 || !st.Mode().IsRegular():
			setupErr = fmt.Errorf("sandbox binary %s is not an executable file (%v)", sandboxBin, st.Mode())
		default:
			sandboxBinReal, _ = filepath.EvalSymlinks(sandboxBin)
		}
	}
	return m.Run()
}

// uninheritIgnoredSignals: sandbox leaves the forwarded signals its
// caller ignores ignored (a test run started in the background of a
// script has SIGINT ignored), so that the tests' own sandbox processes
// start with them caught as a terminal's do, this process catches them
// and drops them, as ignoring did: its children then start with the
// default.
func uninheritIgnoredSignals() {
	var ign []os.Signal
	for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if signal.Ignored(s) {
			ign = append(ign, s)
		}
	}
	if len(ign) == 0 {
		return
	}
	c := make(chan os.Signal, 8)
	signal.Notify(c, ign...)
	go func() {
		for range c {
		}
	}()
}

func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func binary(t testing.TB) string {
	t.Helper()
	if setupErr != nil {
		t.Fatalf("sandbox binary unavailable: %v", setupErr)
	}
	return sandboxBin
}

// requireOrSkip skips the test when a prerequisite is missing, except with
// CI=true where a missing prerequisite is a failure naming it.
func requireOrSkip(t testing.TB, cond bool, why string) {
	t.Helper()
	testenv.RequireOrSkip(t, cond, why)
}

// ---------------------------------------------------------------------------
// Running the sandbox

type result struct {
	args     []string
	stdout   string
	stderr   string
	code     int // exit status as a shell reports it: N, or 128+signal
	signaled bool
	timedOut bool
	startErr error
}

func (r result) String() string {
	status := fmt.Sprintf("exit %d", r.code)
	if r.signaled {
		status = fmt.Sprintf("killed by signal %d", r.code-128)
	}
	if r.timedOut {
		status += " (TIMED OUT, killed by the test)"
	}
	if r.startErr != nil {
		status = "start failed: " + r.startErr.Error()
	}
	return fmt.Sprintf("`sandbox %s`: %s\n--- stdout:\n%s\n--- stderr:\n%s", strings.Join(r.args, " "), status,
		clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	const max = 3000
	if len(s) > max {
		return s[:max] + fmt.Sprintf("… [%d more bytes]", len(s)-max)
	}
	return s
}

// opts tunes one sandbox command.
type opts struct {
	stdin   io.Reader     // nil: /dev/null
	dir     string        // working directory; "" = the test's (package) directory
	env     []string      // KEY=VALUE added to (and overriding) the test's environment
	timeout time.Duration // 0: cmdTimeout
	extra   []*os.File    // inherited as fd 3, 4, …
	stdout  io.Writer     // nil: captured in result.stdout
	prepare func(*exec.Cmd)
}

var tokens sync.Map // test name -> token

// token is a per-test marker (shared by a top-level test and its subtests)
// put in the environment of every command the test starts (E2E_TOKEN), used to
// find processes left behind.
func token(t testing.TB) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	v, _ := tokens.LoadOrStore(top, "e2e-"+randHex(8))
	return v.(string)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a sandbox command started in the background.
type proc struct {
	cmd      *exec.Cmd
	args     []string
	stdout   *syncBuffer
	stderr   *syncBuffer
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	res      result
	capture  bool
	finished bool
}

func mergeEnv(base, extra []string) []string {
	idx := map[string]int{}
	out := []string{}
	for _, kv := range append(slices.Clone(base), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// start launches `$SANDBOX_BIN args...` in its own process group. The process
// is killed (whole group) when the timeout expires or the test ends.
func start(t testing.TB, o opts, args ...string) *proc {
	t.Helper()
	bin := binary(t)
	timeout := o.timeout
	if timeout == 0 {
		timeout = cmdTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = o.dir
	cmd.Env = mergeEnv(append(os.Environ(), pathEnv(t)...), append(slices.Clone(o.env), "E2E_TOKEN="+token(t)))
	cmd.Stdin = o.stdin
	cmd.ExtraFiles = o.extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{cmd: cmd, args: args, stdout: &syncBuffer{}, stderr: &syncBuffer{}, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), capture: o.stdout == nil}
	p.res.args = args
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	} else {
		cmd.Stdout = p.stdout
	}
	cmd.Stderr = p.stderr
	cmd.Cancel = func() error {
		// The process group leader is the sandbox we started (Setpgid or Setsid).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	if o.prepare != nil {
		o.prepare(cmd)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		p.res.startErr = err
		p.res.code = -1
		close(p.done)
		return p
	}
	go func() {
		err := cmd.Wait()
		p.res.timedOut = ctx.Err() == context.DeadlineExceeded
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			p.res.signaled = true
			p.res.code = 128 + int(st.Signal())
		} else if cmd.ProcessState != nil {
			p.res.code = cmd.ProcessState.ExitCode()
		} else {
			p.res.code = -1
			p.res.startErr = err
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cancel()
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// wait waits for the command to exit (bounded by its own timeout).
func (p *proc) wait() result {
	<-p.done
	p.cancel()
	p.res.stdout = p.stdout.String()
	p.res.stderr = p.stderr.String()
	return p.res
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitStdout waits until stdout contains sub; false on timeout or exit.
func (p *proc) waitStdout(sub string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stdout.String(), sub) {
			return true
		}
		if p.exited() {
			return strings.Contains(p.stdout.String(), sub)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// afterSh (an opts.prepare) runs sandbox through sh, which runs script
// first: the caller's state a shell sets up (a umask, a trap, a ulimit, a
// cd), then exec's sandbox with its arguments.
func afterSh(script string) func(*exec.Cmd) {
	return func(c *exec.Cmd) {
		c.Args = append([]string{"/bin/sh", "-c", script + ` && exec "$0" "$@"`, c.Path}, c.Args[1:]...)
		c.Path = "/bin/sh"
	}
}

func runOpts(t testing.TB, o opts, args ...string) result {
	t.Helper()
	return start(t, o, args...).wait()
}

// run runs `$SANDBOX_BIN args...` with stdin from /dev/null and a timeout.
func run(t testing.TB, args ...string) result {
	t.Helper()
	return runOpts(t, opts{}, args...)
}

// runStdin is run with the given bytes on stdin.
func runStdin(t testing.TB, stdin []byte, args ...string) result {
	t.Helper()
	return runOpts(t, opts{stdin: bytes.NewReader(stdin)}, args...)
}

// runIn is run with dir as the working directory.
func runIn(t testing.TB, dir string, args ...string) result {
	t.Helper()
	return runOpts(t, opts{dir: dir}, args...)
}

func wantCode(t testing.TB, r result, want int) {
	t.Helper()
	if r.startErr != nil || r.timedOut || r.code != want {
		t.Fatalf("want exit status %d, got %s", want, r)
	}
}

func wantFail(t testing.TB, r result) {
	t.Helper()
	if r.startErr != nil || r.timedOut || r.code == 0 {
		t.Fatalf("want a non-zero exit status, got %s", r)
	}
}

// mustRun runs and requires exit status 0.
func mustRun(t testing.TB, o opts, args ...string) result {
	t.Helper()
	r := runOpts(t, o, args...)
	wantCode(t, r, 0)
	return r
}

// sh returns `run [flags...] -- sh -c script`.
func sh(flags []string, script string) []string {
	return append(append([]string{"run"}, flags...), "--", "sh", "-c", script)
}

// sections splits output on lines equal to "---".
func sections(s string) []string {
	var out []string
	cur := []string{}
	for _, line := range strings.Split(s, "\n") {
		if line == "---" {
			out = append(out, strings.Join(cur, "\n"))
			cur = []string{}
			continue
		}
		cur = append(cur, line)
	}
	return append(out, strings.Join(cur, "\n"))
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Files

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// tempDir is t.TempDir that also makes everything under it removable by its
// owner first (overlay work dirs are created with mode 000).
func tempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	t.Cleanup(func() { makeRemovable(d) })
	return d
}

func makeRemovable(root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			if info, e := d.Info(); e == nil && info.Mode().Perm()&0o700 != 0o700 {
				_ = os.Chmod(p, info.Mode().Perm()|0o700)
			}
		}
		return nil
	})
}

// slashTmpDir creates a dir directly under /tmp (which is replaced by a fresh
// tmpfs inside the sandbox, so the dir is hidden unless shared explicitly).
func slashTmpDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "e2e-"+randHex(4)+"-")
	if err != nil {
		t.Fatalf("creating a dir under /tmp: %v", err)
	}
	t.Cleanup(func() { makeRemovable(d); os.RemoveAll(d) })
	return d
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// snapshotTree describes every entry under root (type, mode, size, mtime,
// content hash, link target) to detect any change.
func snapshotTree(t testing.TB, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fmt.Sprintf("%v %d %d", info.Mode(), info.Size(), info.ModTime().UnixNano())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot of %s: %v", root, err)
	}
	return snap
}

func diffSnapshots(before, after map[string]string) []string {
	var diffs []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			diffs = append(diffs, "removed: "+k)
		} else if v != w {
			diffs = append(diffs, fmt.Sprintf("changed: %s (%s => %s)", k, v, w))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "added: "+k)
		}
	}
	slices.Sort(diffs)
	return diffs
}

func isStaticELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

const busybox = "/bin/busybox"

// makeRootfs builds a minimal root: DIR/bin/busybox (static), DIR/bin/sh ->
// busybox, a few empty top-level dirs, DIR/marker (content: marker) and
// DIR/removable. It returns DIR.
func makeRootfs(t testing.TB, marker string) string {
	t.Helper()
	requireOrSkip(t, isStaticELF(busybox), "a static busybox at "+busybox+" (Debian package busybox-static)")
	dir := filepath.Join(tempDir(t), "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "root", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "bin/busybox"), string(b), 0o755)
	for _, applet := range []string{"sh", "cat", "ls", "test", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "marker"), marker, 0o644)
	writeFile(t, filepath.Join(dir, "removable"), "r", 0o644)
	return dir
}

// ---------------------------------------------------------------------------
// Identity maps

type idMapLine struct{ inside, outside, count int64 }

func (l idMapLine) String() string { return fmt.Sprintf("%d %d %d", l.inside, l.outside, l.count) }

// parseIDMap parses /proc/PID/uid_map or gid_map content.
func parseIDMap(s string) ([]idMapLine, error) {
	var out []idMapLine
	for _, l := range lines(s) {
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, fmt.Errorf("bad id map line %q", l)
		}
		var v [3]int64
		for i := range f {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad id map line %q: %v", l, err)
			}
			v[i] = n
		}
		out = append(out, idMapLine{v[0], v[1], v[2]})
	}
	return out, nil
}

// mapOutside translates an inside id through a map.
func mapOutside(m []idMapLine, inside int64) (int64, bool) {
	for _, l := range m {
		if inside >= l.inside && inside < l.inside+l.count {
			return l.outside + inside - l.inside, true
		}
	}
	return 0, false
}

type idRange struct{ start, count int64 }

// userName looks the current user up in /etc/passwd (os/user is avoided to
// keep the test binary free of cgo).
func userName(uid int) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 3 && f[2] == strconv.Itoa(uid) {
			return f[0]
		}
	}
	return ""
}

// subIDRanges returns the ranges of /etc/subuid or /etc/subgid for the user
// (matched by name or numeric uid).
func subIDRanges(file string, uid int) []idRange {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	name := userName(uid)
	var out []idRange
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, ":")
		if len(f) != 3 || (f[0] != name && f[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.ParseInt(f[1], 10, 64)
		count, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 == nil && err2 == nil && count > 0 {
			out = append(out, idRange{start, count})
		}
	}
	return out
}

// expectedRanges is the subordinate ranges the full mapping uses for the
// current user: /etc/subuid (or subgid); for root without an entry the
// default 1000000000+65536.
func expectedRanges(file string) []idRange {
	r := subIDRanges(file, os.Getuid())
	if len(r) == 0 && os.Getuid() == 0 {
		r = []idRange{{1000000000, 65536}}
	}
	return r
}

// expectedFullMap is the full map for --uid 0: you -> 0, ranges from 1 on.
func expectedFullMap(own int, ranges []idRange) []idMapLine {
	m := []idMapLine{{0, int64(own), 1}}
	next := int64(1)
	for _, r := range ranges {
		m = append(m, idMapLine{next, r.start, r.count})
		next += r.count
	}
	return m
}

func findHelper(name string) bool {
	for _, d := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"} {
		if st, err := os.Stat(filepath.Join(d, name)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	_, err := exec.LookPath(name)
	return err == nil
}

// fullMapPossible tells whether --map=full can work for the current user.
func fullMapPossible() (bool, string) {
	if os.Getuid() == 0 {
		return true, ""
	}
	var missing []string
	if !findHelper("newuidmap") {
		missing = append(missing, "newuidmap")
	}
	if !findHelper("newgidmap") {
		missing = append(missing, "newgidmap")
	}
	if len(subIDRanges("/etc/subuid", os.Getuid())) == 0 {
		missing = append(missing, fmt.Sprintf("an /etc/subuid entry for uid %d (%s)", os.Getuid(), userName(os.Getuid())))
	}
	if len(subIDRanges("/etc/subgid", os.Getuid())) == 0 {
		missing = append(missing, fmt.Sprintf("an /etc/subgid entry for uid %d (%s)", os.Getuid(), userName(os.Getuid())))
	}
	if len(missing) > 0 {
		return false, "full id mapping needs " + strings.Join(missing, ", ")
	}
	return true, ""
}

func requireFullMap(t testing.TB) {
	t.Helper()
	ok, why := fullMapPossible()
	requireOrSkip(t, ok, why)
}

// ---------------------------------------------------------------------------
// mountinfo

type mountEntry struct {
	majMin     string
	mountPoint string
	root       string
	options    []string
	fstype     string
	source     string
	superOpts  []string
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func parseMountinfo(s string) ([]mountEntry, error) {
	var out []mountEntry
	for _, l := range lines(s) {
		f := strings.Fields(l)
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+3 {
			return nil, fmt.Errorf("bad mountinfo line %q", l)
		}
		e := mountEntry{
			majMin:     f[2],
			root:       unescapeMount(f[3]),
			mountPoint: unescapeMount(f[4]),
			options:    strings.Split(f[5], ","),
			fstype:     f[sep+1],
			source:     unescapeMount(f[sep+2]),
		}
		if len(f) > sep+3 {
			e.superOpts = strings.Split(f[sep+3], ",")
		}
		out = append(out, e)
	}
	return out, nil
}

// hostMountinfo is the test process's own mount table.
func hostMountinfo(t testing.TB) []mountEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := parseMountinfo(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// lastMountAt returns the top-most mount at mp (the last one listed).
func lastMountAt(ms []mountEntry, mp string) (mountEntry, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].mountPoint == mp {
			return ms[i], true
		}
	}
	return mountEntry{}, false
}

// ---------------------------------------------------------------------------
// /proc scanning (host side)

type procInfo struct {
	pid, ppid int
	state     byte
	start     uint64 // start time in clock ticks since boot
	uid       int
	cmdline   []string
}

func (p procInfo) String() string {
	return fmt.Sprintf("pid %d (ppid %d, state %c, uid %d): %q", p.pid, p.ppid, p.state, p.uid, p.cmdline)
}

func readProc(pid int) (procInfo, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return procInfo{}, false
	}
	p := procInfo{pid: pid, state: f[0][0], uid: -1}
	p.ppid, _ = strconv.Atoi(f[1])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	if status, err := os.ReadFile(dir + "/status"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(status))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
				if u := strings.Fields(rest); len(u) > 0 {
					p.uid, _ = strconv.Atoi(u[0])
				}
			}
		}
	}
	if cl, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cl) > 0 {
		p.cmdline = strings.Split(strings.TrimSuffix(string(cl), "\x00"), "\x00")
	}
	return p, true
}

func allProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether pid still runs as the same process (same start
// time); zombies count as dead.
func alive(pid int, start uint64) bool {
	p, ok := readProc(pid)
	return ok && p.start == start && p.state != 'Z' && p.state != 'X'
}

// environValue is the value of key in pid's environment, or "".
func environValue(pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return ""
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func environHas(pid int, kv string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	return slices.Contains(strings.Split(string(b), "\x00"), kv)
}

func exeIsSandbox(pid int) bool {
	if sandboxBinReal == "" {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	// sandbox-init runs from a sealed memfd of the binary's embedded copy.
	return exe == sandboxBinReal || exe == "/memfd:sandbox-init"
}

// bootTicks is the current time in clock ticks since boot (USER_HZ = 100).
func bootTicks() uint64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	sec, _ := strconv.ParseFloat(f[0], 64)
	return uint64(sec * 100)
}

// descendants returns root and all its descendants (host view).
func descendants(root int) []procInfo {
	procs := allProcs()
	children := map[int][]procInfo{}
	var self procInfo
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
		if p.pid == root {
			self = p
		}
	}
	if self.pid == 0 {
		return nil
	}
	out := []procInfo{self}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// leftover is a process left behind; ours says whether it is provably one
// this test started (it, or an ancestor, carries the test's token).
type leftover struct {
	procInfo
	ours bool
}

// leftovers lists live processes (other than this test binary) that carry the
// test's token in their environment; with anySandbox also processes of the
// sandbox binary (whose environment may be emptied) started after `since`
// that descend from a token carrier or were orphaned (reparented to pid 1).
// Sandbox processes of someone else (e.g. another test package running
// concurrently) are not counted.
func leftovers(t testing.TB, since uint64, anySandbox bool) []leftover {
	kv := "E2E_TOKEN=" + token(t)
	procs := allProcs()
	byPID := map[int]procInfo{}
	for _, p := range procs {
		byPID[p.pid] = p
	}
	tokenLinked := func(p procInfo) bool {
		for i := 0; i < 64 && p.pid > 1; i++ {
			if environHas(p.pid, kv) {
				return true
			}
			parent, ok := byPID[p.ppid]
			if !ok {
				return false
			}
			p = parent
		}
		return false
	}
	var out []leftover
	for _, p := range procs {
		if p.pid == os.Getpid() || p.state == 'Z' || p.state == 'X' {
			continue
		}
		switch {
		case isHolder(p):
			// The user's holder of a mapped namespace: no sandbox's, and it
			// goes away by itself (holder_test.go checks what it keeps).
		case environHas(p.pid, kv):
			out = append(out, leftover{p, true})
		case anySandbox && p.start+1 >= since && exeIsSandbox(p.pid):
			if other := environValue(p.pid, "E2E_TOKEN"); other != "" && other != token(t) {
				// Another test's (a detached supervisor of a test running
				// beside this one, reparented to pid 1): its own to check.
				continue
			}
			if tokenLinked(p) {
				out = append(out, leftover{p, true})
			} else if p.ppid == 1 {
				out = append(out, leftover{p, false})
			}
		}
	}
	return out
}

// requireNoLeftovers polls (bounded) until no leftover process remains.
func requireNoLeftovers(t testing.TB, since uint64, anySandbox bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var left []leftover
	for {
		left = leftovers(t, since, anySandbox)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var desc []string
	for _, p := range left {
		desc = append(desc, p.String())
		if p.ours {
			_ = syscall.Kill(p.pid, syscall.SIGKILL) // started (transitively) by this test
		}
	}
	t.Errorf("processes left behind after %v:\n%s", within, strings.Join(desc, "\n"))
}

// countingServer answers every connection on l with reply and closes it;
// it counts the connections. l is closed when the test ends.
func countingServer(t testing.TB, l net.Listener, reply string) *atomic.Int32 {
	t.Cleanup(func() { l.Close() })
	accepted := new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Write([]byte(reply))
			c.Close()
		}
	}()
	return accepted
}
