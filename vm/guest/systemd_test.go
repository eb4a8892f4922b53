//go:build linux && vmguest && vmsystemd

package guest

// Tests for the systemd guest (vm/run.sh --systemd, vm/systemd_test.go):
// systemd 252 as PID 1, Debian 12's stock delegation (user@.service
// Delegate=pids memory cpu), a lingering tester whose user manager runs.
// The test binary runs as tester in an SSH-like login session
// (user-1000.slice/session-N.scope, owned by root, from `su -l`); each test
// starts sandbox from there or from a scope of the user manager, the way a
// terminal tab (vte-spawn-….scope: Delegate=no, OOMPolicy=stop) or
// `systemd-run --user --scope [-p Delegate=yes]` does (issue 12, item 9).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	userManager = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service"
	// A 256 MiB allocation under --memory 64M: the OOM killer's victim.
	hogLimit = "64M"
)

var hog = []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"}

// command runs name args (bounded by cmdTimeout) and returns its result.
func command(t *testing.T, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = t.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{args: append([]string{name}, args...), stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var st syscall.WaitStatus
	if cmd.ProcessState != nil {
		st, _ = cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	switch {
	case ctx.Err() != nil:
		r.err = fmt.Errorf("timed out after %v (killed)", cmdTimeout)
	case cmd.ProcessState == nil:
		r.err = err
	case st.Signaled():
		r.code = 128 + int(st.Signal())
	default:
		r.code = st.ExitStatus()
	}
	return r
}

var units int

// inUserScope runs script with sh in a new scope of the user manager,
// `systemd-run --user --scope` with props; it returns the unit's name.
func inUserScope(t *testing.T, script string, props ...string) (result, string) {
	t.Helper()
	units++
	unit := fmt.Sprintf("sbx-%s-%d", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), units)
	args := []string{"--user", "--scope", "--quiet", "--collect", "--unit=" + unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	args = append(args, "--", "sh", "-c", script, "sh", sandboxBin(t))
	return command(t, "systemd-run", args...), unit + ".scope"
}

// unitProps reads properties of a unit of the user manager.
func unitProps(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	r := command(t, "systemctl", "--user", "show", unit, "-p", strings.Join(props, ","))
	out := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			out[k] = v
		}
	}
	return out
}

// reportCgroup reads the cgroup path a --report file records.
func reportCgroup(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	var rep guestReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, b)
	}
	return rep.Cgroup.Path
}

// noSandboxScopeLeft: the transient scopes sandbox asked for end with their runs.
func noSandboxScopeLeft(t *testing.T) {
	t.Helper()
	var left string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r := command(t, "systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", "sandbox-*.scope")
		if left = strings.TrimSpace(r.stdout); left == "" {
			return
		}
	}
	t.Errorf("sandbox's transient scopes are still there after the run:\n%s", left)
}

func wantOOM(t *testing.T, r result, report string) string {
	t.Helper()
	if !strings.Contains(r.stdout, "RC: 137") || !strings.Contains(r.stderr, "killed by the OOM killer (memory limit "+hogLimit+")") {
		t.Errorf("want the run to end 137 with the OOM message, and the calling shell to go on:\n%s", r)
	}
	return reportCgroup(t, report)
}

// TestSystemdShape: the guest is what the other tests assume, so a broken
// harness reads as such.
func TestSystemdShape(t *testing.T) {
	if os.Getuid() != 1000 {
		t.Fatalf("running as uid %d, want tester (1000)", os.Getuid())
	}
	own := ownCgroup(t)
	if !strings.HasPrefix(own, "/sys/fs/cgroup/user.slice/user-1000.slice/session-") || !strings.HasSuffix(own, ".scope") {
		t.Fatalf("own cgroup %s, want the login session's user-1000.slice/session-N.scope", own)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(own, &st); err != nil || st.Uid != 0 {
		t.Errorf("the session scope %s is owned by uid %d (%v), want root", own, st.Uid, err)
	}
	if b, _ := os.ReadFile(filepath.Join(userManager, "cgroup.controllers")); strings.TrimSpace(string(b)) != "cpu memory pids" {
		t.Errorf("user@1000.service has the controllers %q, want Debian 12's stock cpu memory pids", b)
	}
	r := command(t, "systemctl", "--user", "is-system-running")
	if s := strings.TrimSpace(r.stdout); s != "running" && s != "degraded" {
		t.Errorf("the user manager: %s", r)
	}
	t.Logf("session %s; systemd %s", own, strings.TrimSpace(command(t, "systemctl", "--version").stdout))
}

// TestSystemdSessionScope: from an SSH-like login (a root-owned session
// scope) a run with limits gets a transient delegated scope from the user
// manager, the OOM kill is 137 with the message, and the scope goes away.
func TestSystemdSessionScope(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.json")
	r := command(t, sandboxBin(t), append([]string{"run", "--report", report, "--memory", hogLimit, "--"}, hog...)...)
	r.stdout += fmt.Sprintf("RC: %d\n", r.code)
	cg := wantOOM(t, r, report)
	if !strings.HasPrefix(cg, userManager+"/app.slice/sandbox-") || !strings.Contains(cg, ".scope/sandbox-") {
		t.Errorf("the sandbox's cgroup %s is not in a transient scope of the user manager", cg)
	}
	noSandboxScopeLeft(t)
}

// TestSystemdUndelegatedUserScope: from a user-manager scope without
// delegation (what a terminal tab is) the run takes a transient delegated
// scope; the OOM kill is the sandbox's, the calling scope survives and is
// not failed, and none of its processes was moved (issue 12, item 9: the
// calling scope was stopped, the shell SIGTERMed, the run ended 143).
func TestSystemdUndelegatedUserScope(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.json")
	script := `sleep 600 </dev/null >/dev/null 2>&1 & echo "SLEEP: $!"
"$1" run --report ` + report + ` --memory ` + hogLimit + ` -- ` + strings.Join(hog, " ") + `
echo "RC: $?"
echo "SH: $(cat /proc/$$/cgroup)"
echo "SLEEP_CG: $(cat /proc/$!/cgroup)"`
	r, unit := inUserScope(t, script)
	sleep, _ := field(r.stdout, "SLEEP")
	if pid, err := strconv.Atoi(sleep); err == nil {
		defer syscall.Kill(pid, syscall.SIGKILL)
	}
	props := unitProps(t, unit, "ActiveState", "Result", "OOMPolicy", "Delegate")
	t.Logf("%s: %v", unit, props)
	cg := wantOOM(t, r, report)
	if props["Delegate"] != "no" || props["OOMPolicy"] != "stop" {
		t.Errorf("%s has Delegate=%s OOMPolicy=%s; the test wants a terminal tab's Delegate=no OOMPolicy=stop", unit, props["Delegate"], props["OOMPolicy"])
	}
	if props["ActiveState"] != "active" || props["Result"] != "success" {
		t.Errorf("the calling scope %s is %s with result %s after the OOM kill, want active, success", unit, props["ActiveState"], props["Result"])
	}
	scopeDir := userManager + "/app.slice/" + unit
	for _, k := range []string{"SH", "SLEEP_CG"} {
		if v, _ := field(r.stdout, k); v != "0::"+strings.TrimPrefix(scopeDir, "/sys/fs/cgroup") {
			t.Errorf("a process of the caller (%s) was moved: it is in %q, want %s", k, v, scopeDir)
		}
	}
	if _, err := os.Stat(filepath.Join(scopeDir, "sandbox-leaf")); err == nil {
		t.Errorf("sandbox made %s/sandbox-leaf in the caller's scope", scopeDir)
	}
	if !strings.HasPrefix(cg, userManager+"/app.slice/sandbox-") {
		t.Errorf("the sandbox's cgroup %s is not in a transient scope of its own", cg)
	}
	noSandboxScopeLeft(t)
}

// TestSystemdDelegatedUserScope: a scope with Delegate=yes is used
// directly; with the caller's other processes in it, it is not (they are
// never moved): the run takes a transient scope.
func TestSystemdDelegatedUserScope(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.json")
	r, unit := inUserScope(t, `exec "$1" run --report `+report+` --memory `+hogLimit+` -- `+strings.Join(hog, " "), "Delegate=yes")
	r.stdout += fmt.Sprintf("RC: %d\n", r.code)
	cg := wantOOM(t, r, report)
	if want := userManager + "/app.slice/" + unit + "/sandbox-"; !strings.HasPrefix(cg, want) {
		t.Errorf("the sandbox's cgroup %s is not in the delegated scope (%s…)", cg, want)
	}

	script := `sleep 600 </dev/null >/dev/null 2>&1 & echo "SLEEP: $!"
"$1" run --report ` + report + ` --memory ` + hogLimit + ` -- true
echo "RC: $?"
echo "SLEEP_CG: $(cat /proc/$!/cgroup)"`
	r, unit = inUserScope(t, script, "Delegate=yes")
	if sleep, _ := field(r.stdout, "SLEEP"); sleep != "" {
		pid, _ := strconv.Atoi(sleep)
		defer syscall.Kill(pid, syscall.SIGKILL)
	}
	if !strings.Contains(r.stdout, "RC: 0") {
		t.Fatalf("with the shell in the delegated scope:\n%s", r)
	}
	scopeDir := userManager + "/app.slice/" + unit
	if v, _ := field(r.stdout, "SLEEP_CG"); v != "0::"+strings.TrimPrefix(scopeDir, "/sys/fs/cgroup") {
		t.Errorf("the caller's sleep was moved to %q, want %s", v, scopeDir)
	}
	if cg := reportCgroup(t, report); !strings.HasPrefix(cg, userManager+"/app.slice/sandbox-") {
		t.Errorf("with the shell in the delegated scope, the sandbox's cgroup %s is not in a transient scope", cg)
	}
	noSandboxScopeLeft(t)
}

// checkLine is the text of `sandbox check`'s result id.
func checkLine(t *testing.T, out, id string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == id {
			return l
		}
	}
	t.Errorf("`sandbox check` has no %s line:\n%s", id, out)
	return ""
}

// TestSystemdStockIO: Debian 12's stock delegation has no io: --io-max
// fails closed naming the drop-in, and check says io is unavailable
// (not the root cgroup's "cpu io memory pids") and what run will do.
func TestSystemdStockIO(t *testing.T) {
	r := command(t, sandboxBin(t), "run", "--io-max", "/dev/vda:rbps=1048576", "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "--io-max") || !strings.Contains(r.stderr, "user@.service.d") {
		t.Errorf("--io-max without io delegated: want 125 naming the flag and the drop-in:\n%s", r)
	}
	r = command(t, sandboxBin(t), "check")
	ctl := checkLine(t, r.stdout, "cgroup.controllers")
	if !strings.HasPrefix(ctl, "WARN") || !strings.Contains(ctl, "io (") || strings.Contains(ctl, "cpu io memory pids") {
		t.Errorf("check from the session, stock delegation: %q, want io unavailable\n%s", ctl, r)
	}
	if d := checkLine(t, r.stdout, "cgroup.delegation"); !strings.Contains(d, "delegated scope of their own") {
		t.Errorf("check from the session: %q, want the transient scope", d)
	}
	r, _ = inUserScope(t, `exec "$1" check`)
	if d := checkLine(t, r.stdout, "cgroup.delegation"); !strings.Contains(d, "does not delegate") || !strings.Contains(d, "delegated scope of their own") {
		t.Errorf("check from a user scope without delegation: %q, want not delegated, the transient scope\n%s", d, r)
	}
	// (A delegated scope used directly: hostcheck's judge tests; each check
	// here costs 20 s of a loaded CI machine.)
}
