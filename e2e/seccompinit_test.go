//go:build linux

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSeccompProfileVersusInit: whatever a --seccomp profile does to the
// sandbox's own init (it installs the filter on itself, then starts the
// payload), `run` ends, with the payload's status or a clear 125 — never a
// hang. SCMP_ACT_KILL kills only the calling thread of init, a Go program
// with several threads: it used to leave a zombie leader whose other
// threads slept on, and `run` waited forever.
func TestSeccompProfileVersusInit(t *testing.T) {
	t.Parallel()
	only := func(name, action string) string {
		return fmt.Sprintf(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[%q],"action":%q}]}`, name, action)
	}
	cases := []struct {
		name    string
		profile string
		want    int
		stderr  string // part of the last line; "" for the payload's own status
	}{
		{"default KILL", `{"defaultAction":"SCMP_ACT_KILL"}`, exitSandbox, "the seccomp profile killed the sandbox's init"},
		{"default KILL_THREAD", `{"defaultAction":"SCMP_ACT_KILL_THREAD"}`, exitSandbox, "the seccomp profile killed the sandbox's init"},
		{"default KILL_PROCESS", `{"defaultAction":"SCMP_ACT_KILL_PROCESS"}`, exitSandbox, "the seccomp profile killed the sandbox's init"},
		{"default TRAP", `{"defaultAction":"SCMP_ACT_TRAP"}`, exitSandbox, "the seccomp profile killed the sandbox's init"},
		{"default ERRNO", `{"defaultAction":"SCMP_ACT_ERRNO"}`, exitSandbox, "seccomp profile"},
		// Calls init makes after installing the filter, on its main thread
		// (pipe2, wait4) or another one (nanosleep: the runtime's sysmon;
		// waitid, below).
		{"KILL pipe2", only("pipe2", "SCMP_ACT_KILL"), exitSandbox, "the seccomp profile killed the sandbox's init"},
		{"KILL wait4", only("wait4", "SCMP_ACT_KILL"), exitSandbox, "the seccomp profile killed the sandbox's init"},
		{"KILL nanosleep", only("nanosleep", "SCMP_ACT_KILL"), exitSandbox, "seccomp profile"},
		{"ERRNO wait4", only("wait4", "SCMP_ACT_ERRNO"), exitSandbox, "wait4: operation not permitted"},
		// waitid: how init learns that a child ended, on another thread;
		// refused, init looks every 10 ms instead.
		{"KILL waitid", only("waitid", "SCMP_ACT_KILL"), exitSandbox, "a thread of the sandbox's init"},
		{"ERRNO waitid", only("waitid", "SCMP_ACT_ERRNO"), 0, ""},
		// The payload's own exec killed: it dies of SIGSYS, as under crun.
		{"KILL execve", only("execve", "SCMP_ACT_KILL"), 128 + 31, ""},
		// exit_group failed: the payload still ends (glibc falls back to
		// exit), init cannot exit and is ended after its last report.
		{"ERRNO exit_group", only("exit_group", "SCMP_ACT_ERRNO"), 0, ""},
		// close failed: init blocks on its own exec pipe, never reporting
		// the start; ended after 30 s.
		{"ERRNO close", only("close", "SCMP_ACT_ERRNO"), exitSandbox, "did not start the command within 30s"},
	}
	// Init may also get through unharmed (the runtime thread that makes the
	// call happened not to make it in time): the payload's 0 stands.
	orZero := map[string]bool{"KILL nanosleep": true}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			p := filepath.Join(dir, "profile.json")
			writeFile(t, p, c.profile, 0o644)
			began := time.Now()
			r := runOpts(t, opts{dir: dir, timeout: 90 * time.Second}, "run", "--net=none", "--seccomp", p, "--", "true")
			if orZero[c.name] && r.code == 0 && !r.timedOut {
				return
			}
			wantCode(t, r, c.want)
			if c.stderr != "" && !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("want a line saying %q\n%s", c.stderr, r)
			}
			if d := time.Since(began); d > 60*time.Second {
				t.Errorf("took %v to end", d.Round(time.Millisecond))
			}
		})
	}
}

// TestSeccompWatchOnlyWhereItMatters: init waits for the parent's look at
// its threads (a round trip) before it installs a filter that may kill a
// single thread, or a user's profile; not before the default filter, which
// cannot (ERRNO only).
func TestSeccompWatchOnlyWhereItMatters(t *testing.T) {
	t.Parallel()
	const looked = "the parent looked at init's threads before the filter"
	r := mustRun(t, opts{}, "run", "-v", "--net=none", "--", "true")
	if strings.Contains(r.stderr, looked) {
		t.Errorf("the default filter was installed after the parent's look:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "confined (") {
		t.Fatalf("no confined line (is the default filter on?):\n%s", r.stderr)
	}
	dir := tempDir(t)
	for name, profile := range map[string]string{
		"kill":  `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_KILL"}]}`,
		"errno": `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`,
	} {
		p := filepath.Join(dir, name+".json")
		writeFile(t, p, profile, 0o644)
		r := mustRun(t, opts{dir: dir}, "run", "-v", "--net=none", "--seccomp", p, "--", "true")
		if !strings.Contains(r.stderr, looked) {
			t.Errorf("profile %s: installed without the parent's look:\n%s", name, r.stderr)
		}
	}
}
