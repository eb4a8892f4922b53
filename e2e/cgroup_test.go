//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupMount is the cgroup2 mount point ("" if none).
func cgroupMount(t testing.TB) string {
	t.Helper()
	for _, m := range hostMountinfo(t) {
		if m.fstype == "cgroup2" && m.root == "/" {
			return m.mountPoint
		}
	}
	return ""
}

// ownCgroup is the cgroup v2 path of process pid ("self" for the test).
func ownCgroup(t testing.TB, pid string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	return ""
}

// delegatedCgroup is the test's own cgroup directory, which must be
// delegated to the test user: scripts/test.sh, run as root, starts the
// tests in <cgroup2>/sandbox-test.slice/sbxtest (scripts/setup-host.sh).
func delegatedCgroup(t testing.TB) string {
	t.Helper()
	mnt := cgroupMount(t)
	requireOrSkip(t, mnt != "", "a cgroup2 mount")
	dir := filepath.Join(mnt, ownCgroup(t, "self"))
	writable := syscall.Access(dir, 2|1) == nil && syscall.Access(dir+"/cgroup.procs", 2) == nil &&
		syscall.Access(dir+"/cgroup.subtree_control", 2) == nil
	requireOrSkip(t, writable, "the test's cgroup "+dir+" delegated to uid "+strconv.Itoa(os.Getuid())+
		" (run the tests with `sudo scripts/test.sh`, which starts them in the test user's delegated cgroup)")
	return dir
}

// sandboxCgroup waits for the cgroup of the sandbox process pid to appear
// under base: sandbox-<pid>-<starttime>.
func sandboxCgroup(t testing.TB, base string, pid int) string {
	t.Helper()
	pattern := filepath.Join(base, "sandbox-"+strconv.Itoa(pid)+"-*")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, _ := filepath.Glob(pattern); len(m) == 1 {
			return m[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cgroup %s appeared", pattern)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gone(p string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCgroupLifecycle: in a delegated cgroup, a run without limit flags
// gets sandbox-<pid>-<start>; init and the payload live in its child
// "payload", the root of their cgroup namespace (the sandbox process
// itself stays put), and it is killed and removed at exit.
func TestCgroupLifecycle(t *testing.T) {
	t.Parallel()
	base := delegatedCgroup(t)
	p := start(t, opts{}, "run", "-v", "--", "sh", "-c", "cat /proc/self/cgroup; echo ready; sleep 30")
	if !p.waitStdout("ready", 15*time.Second) {
		t.Fatalf("payload never became ready: %s", p.wait())
	}
	dir := sandboxCgroup(t, base, p.pid())
	payload := strings.TrimPrefix(dir, cgroupMount(t)) + "/payload"
	if !strings.Contains(p.stdout.String(), "0::/\n") || strings.Contains(p.stdout.String(), "sandbox-") {
		t.Errorf("inside, /proc/self/cgroup shows more than the root of a cgroup namespace:\n%s", p.stdout.String())
	}
	// Init and everything below it; host-side helpers of the sandbox
	// process (the network's) are not the sandbox's. Listed before
	// cgroup.procs is read: sh may fork sleep after printing "ready".
	var tree []procInfo
	for _, q := range descendants(p.pid()) {
		if q.ppid == p.pid() && len(q.cmdline) > 0 && q.cmdline[0] == "sandbox-init" {
			tree = descendants(q.pid)
		}
	}
	b, err := os.ReadFile(dir + "/payload/cgroup.procs")
	if err != nil {
		t.Fatal(err)
	}
	procs := strings.Fields(string(b))
	if len(tree) < 2 {
		t.Fatalf("the sandbox has %d processes below init, want init, sh (sleep)", len(tree))
	}
	for _, q := range tree {
		if got := ownCgroup(t, strconv.Itoa(q.pid)); got != payload || !slices.Contains(procs, strconv.Itoa(q.pid)) {
			t.Errorf("%s is in %s, not in %s (its cgroup.procs: %q)", q, got, payload, procs)
		}
	}
	if got := ownCgroup(t, strconv.Itoa(p.pid())); got != ownCgroup(t, "self") {
		t.Errorf("the sandbox process itself moved to %s", got)
	}
	if err := syscall.Kill(p.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := p.wait()
	wantCode(t, r, 128+15)
	if !gone(dir, 0) {
		t.Errorf("%s is left after the run", dir)
	}
	if !strings.Contains(r.stderr, "killed and removed cgroup "+dir) {
		t.Errorf("-v does not log killing and removing the cgroup:\n%s", r.stderr)
	}
}

// TestCgroupStaleAfterSIGKILL: the cgroup of a SIGKILLed `sandbox` stays
// (nothing of it runs: Pdeathsig ends the sandbox) until the next run in
// the same cgroup removes it. Not parallel: any run would clean it.
func TestCgroupStaleAfterSIGKILL(t *testing.T) {
	base := delegatedCgroup(t)
	p := start(t, opts{}, "run", "--", "sh", "-c", "echo ready; sleep 30")
	if !p.waitStdout("ready", 15*time.Second) {
		t.Fatalf("payload never became ready: %s", p.wait())
	}
	dir := sandboxCgroup(t, base, p.pid())
	if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := p.wait(); r.timedOut {
		t.Fatalf("sandbox did not end after SIGKILL: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(dir + "/cgroup.events")
		if strings.Contains(string(b), "populated 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the killed sandbox live on in %s: %s", dir, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gone(dir, 0) {
		t.Fatalf("%s vanished before the next run: nothing to clean (is another sandbox running in %s?)", dir, base)
	}
	r := mustRun(t, opts{}, "run", "-v", "--", "true")
	if !gone(dir, 0) {
		t.Errorf("the next run left the stale %s:\n%s", dir, r.stderr)
	}
	if !strings.Contains(r.stderr, "removed cgroups of runs that were killed: "+dir) {
		t.Errorf("-v does not say the stale cgroup was removed:\n%s", r.stderr)
	}
}

// TestCgroupLimitsFailClosed: a limit the host cannot apply stops a
// strict run before the payload starts (125, with the fix); best-effort
// runs with one warning per skipped flag. Where the controller is there
// (a delegated pure cgroup v2 host), both run.
func TestCgroupLimitsFailClosed(t *testing.T) {
	t.Parallel()
	base := delegatedCgroup(t)
	ctrls, err := os.ReadFile(base + "/cgroup.controllers")
	if err != nil {
		t.Fatal(err)
	}
	wd := tempDir(t) // shared read-write as the working directory
	marker, script := filepath.Join(wd, "ran"), "touch ran"
	if slices.Contains(strings.Fields(string(ctrls)), "memory") {
		mustRun(t, opts{dir: wd}, sh([]string{"--memory", "64M"}, script)...)
		return
	}
	r := runIn(t, wd, sh([]string{"--memory", "64M", "--pids", "100"}, script)...)
	wantCode(t, r, exitSandbox)
	if exists(marker) {
		t.Error("the payload ran although the limits could not be applied")
	}
	fixes := regexp.MustCompile(`systemd\.unified_cgroup_hierarchy=1|systemd-run --user --scope -p Delegate=yes|delegate\.conf`)
	for _, want := range []string{"--memory 64M: ", "--pids 100: ", "--limits=best-effort"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r)
		}
	}
	if !fixes.MatchString(r.stderr) {
		t.Errorf("stderr names no fix: %s", r)
	}

	r = mustRun(t, opts{dir: wd}, sh([]string{"--limits=best-effort", "--memory", "64M"}, script)...)
	if !exists(marker) {
		t.Error("best-effort: the payload did not run")
	}
	if n := strings.Count(r.stderr, "sandbox: warning: --memory 64M not applied"); n != 1 {
		t.Errorf("best-effort: %d warnings for --memory, want 1: %s", n, r)
	}
}

// TestCgroupFlagErrors: bad limit flags stop the run with 125 and the flag
// named, on any host.
func TestCgroupFlagErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "lots"}, "--memory lots:"},
		{[]string{"--memory", "0"}, "--memory 0:"},
		{[]string{"--memory=-64M"}, "--memory -64M:"},
		{[]string{"--memory-swap", "x"}, "--memory-swap x:"},
		{[]string{"--cpus", "0"}, "--cpus 0:"},
		{[]string{"--cpus", "two"}, "--cpus two:"},
		{[]string{"--cpu-weight", "0"}, "--cpu-weight 0:"},
		{[]string{"--pids", "0"}, "--pids 0:"},
		{[]string{"--pids=-1"}, "--pids -1:"},
		{[]string{"--io-weight", "20000"}, "--io-weight 20000:"},
		{[]string{"--io-max", "/dev/no-such-disk:rbps=1M"}, "--io-max /dev/no-such-disk:rbps=1M:"},
		{[]string{"--io-max", "/dev/null:rbps=1M"}, "not a block device"},
		{[]string{"--io-max", "4095:4095:rbps=1M"}, "no block device 4095:4095"},
		{[]string{"--io-max", "1:3:speed=1M"}, `unknown key "speed"`},
		{[]string{"--limits=loose"}, "--limits"},
	} {
		r := run(t, append(append([]string{"run"}, c.args...), "--", "true")...)
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q: stderr lacks %q: %s", c.args, c.want, r)
		}
	}
}

// TestCgroupLimitsOutOfReach: even a payload given every capability and no
// seccomp filter, which may mount cgroup2 in its cgroup namespace, reaches
// only its own "payload" cgroup, never sandbox-<pid>-<start> where the
// limits are (its files belong to the user, who is root inside).
func TestCgroupLimitsOutOfReach(t *testing.T) {
	t.Parallel()
	base := delegatedCgroup(t)
	script := `mkdir -p /tmp/m
if mount -t cgroup2 none /tmp/m 2>/dev/null; then
  echo 5 > /tmp/m/cgroup.max.descendants && echo MOUNTED
  ls /tmp/m | grep -c '^sandbox-\|^payload$'
fi
echo ready; sleep 30`
	p := start(t, opts{}, sh([]string{"--cap-add", "ALL", "--seccomp=unconfined"}, script)...)
	if !p.waitStdout("ready", 15*time.Second) {
		t.Fatalf("payload never became ready: %s", p.wait())
	}
	dir := sandboxCgroup(t, base, p.pid())
	read := func(p string) string { b, _ := os.ReadFile(p); return strings.TrimSpace(string(b)) }
	if strings.Contains(p.stdout.String(), "MOUNTED") {
		if got := read(dir + "/payload/cgroup.max.descendants"); got != "5" {
			t.Errorf("the payload's write did not land in its own cgroup: %q", got)
		}
		if !strings.Contains(p.stdout.String(), "MOUNTED\n0\n") {
			t.Errorf("the payload's cgroup2 mount shows cgroups of the sandbox's level:\n%s", p.stdout.String())
		}
	}
	if got := read(dir + "/cgroup.max.descendants"); got != "max" {
		t.Errorf("ESCAPE: the payload changed the sandbox's own cgroup: cgroup.max.descendants = %q", got)
	}
	syscall.Kill(p.pid(), syscall.SIGTERM)
	p.wait()
}
