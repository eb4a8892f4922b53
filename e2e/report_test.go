package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runReport is the document of `sandbox run --report`, as docs/cli.md
// describes it (only the fields the tests read).
type runReport struct {
	Version  int      `json:"version"`
	Name     string   `json:"name"`
	Hostname string   `json:"hostname"`
	Command  []string `json:"command"`
	Identity *struct {
		Requested string   `json:"requested"`
		Mode      string   `json:"mode"`
		Why       string   `json:"why"`
		Via       string   `json:"via"`
		UIDMap    []string `json:"uid_map"`
		GIDMap    []string `json:"gid_map"`
	} `json:"identity"`
	Root *struct {
		Source        string   `json:"source"`
		Layers        []string `json:"layers"`
		ReadOnly      bool     `json:"read_only"`
		OverlayDriver string   `json:"overlay_driver"`
		Enter         string   `json:"enter"`
		Cwd           string   `json:"cwd"`
		CwdMode       string   `json:"cwd_mode"`
	} `json:"root"`
	Network *struct {
		Requested string   `json:"requested"`
		Driver    string   `json:"driver"`
		Interface string   `json:"interface"`
		SandboxIP string   `json:"sandbox_ip"`
		PrefixLen int      `json:"prefix_len"`
		Gateway   string   `json:"gateway"`
		DNS       string   `json:"dns"`
		MTU       int      `json:"mtu"`
		Published []string `json:"published"`
	} `json:"network"`
	Cgroup *struct {
		LimitsMode string `json:"limits_mode"`
	} `json:"cgroup"`
	Fallbacks  []reportFallback `json:"fallbacks"`
	Warnings   []string         `json:"warnings"`
	Steps      []reportStep     `json:"steps"`
	StartupMS  *float64         `json:"startup_ms"`
	DurationMS float64          `json:"duration_ms"`
	Exit       struct {
		Status     int    `json:"status"`
		Cause      string `json:"cause"`
		Code       *int   `json:"code"`
		Signal     int    `json:"signal"`
		SignalName string `json:"signal_name"`
		OOMKills   int64  `json:"oom_kills"`
	} `json:"exit"`
	Error *struct {
		Step string `json:"step"`
		Msg  string `json:"msg"`
	} `json:"error"`
}

type reportStep struct {
	Stage     string  `json:"stage"`
	ElapsedMS float64 `json:"elapsed_ms"`
	StepMS    float64 `json:"step_ms"`
	Msg       string  `json:"msg"`
}

type reportFallback struct {
	Area  string `json:"area"`
	Taken string `json:"taken"`
	Why   string `json:"why"`
}

// reportKeys are the top-level fields every report has (null or not).
var reportKeys = []string{"version", "name", "hostname", "command", "identity", "root", "network", "cgroup",
	"fallbacks", "warnings", "steps", "startup_ms", "duration_ms", "exit", "error"}

// parseReport decodes one report and checks that every field is there.
func parseReport(t *testing.T, b []byte) runReport {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatalf("the report is not one JSON object: %v\n%s", err, b)
	}
	for _, k := range reportKeys {
		if _, ok := keys[k]; !ok {
			t.Errorf("the report has no %q field:\n%s", k, b)
		}
	}
	var r runReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, b)
	}
	if r.Version != 1 {
		t.Errorf("report version %d, want 1", r.Version)
	}
	return r
}

// runWithReport runs `sandbox run --report FILE flags... -- cmd...` and
// returns the result and the report.
func runWithReport(t *testing.T, o opts, flags []string, cmd ...string) (result, runReport) {
	t.Helper()
	file := filepath.Join(tempDir(t), "report.json")
	args := append(append([]string{"run", "--report", file}, flags...), "--")
	r := runOpts(t, o, append(args, cmd...)...)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report written: %v\n%s", err, r)
	}
	return r, parseReport(t, b)
}

// wantTimeline checks that the steps are on one timeline: positive,
// in order, from both the parent and init when init ran.
func wantTimeline(t *testing.T, rep runReport, initRan bool) {
	t.Helper()
	if len(rep.Steps) == 0 {
		t.Fatal("the report has no steps")
	}
	stages := map[string]bool{}
	prev := 0.0
	for i, s := range rep.Steps {
		stages[s.Stage] = true
		if s.ElapsedMS <= 0 || s.ElapsedMS < prev || s.StepMS < 0 || s.StepMS > s.ElapsedMS || s.Msg == "" {
			t.Errorf("step %d %+v: not positive, not in order after %.3f ms, or empty", i, s, prev)
		}
		prev = s.ElapsedMS
	}
	if !stages["sandbox"] || stages["init"] != initRan {
		t.Errorf("steps from stages %v; want sandbox, and init: %v", stages, initRan)
	}
	if rep.DurationMS < prev {
		t.Errorf("duration_ms %.3f before the last step (%.3f ms)", rep.DurationMS, prev)
	}
}

func wantExit(t *testing.T, rep runReport, status int, cause string) {
	t.Helper()
	if rep.Exit.Status != status || rep.Exit.Cause != cause {
		t.Errorf("exit %+v, want status %d cause %s", rep.Exit, status, cause)
	}
}

// TestReportRun: the report of a normal run says what the sandbox was, and
// says it truly (the maps, hostname and root match what the command sees).
func TestReportRun(t *testing.T) {
	t.Parallel()
	script := "cat /proc/self/uid_map; echo ---; cat /proc/self/gid_map; echo ---; hostname; echo ---; pwd"
	r, rep := runWithReport(t, opts{}, []string{"--net=none"}, "sh", "-c", script)
	wantCode(t, r, 0)
	s := sections(r.stdout)
	if len(s) != 4 {
		t.Fatalf("unexpected output\n%s", r)
	}
	for i, m := range []struct {
		name   string
		inside string
		lines  []string
	}{{"uid_map", s[0], rep.Identity.UIDMap}, {"gid_map", s[1], rep.Identity.GIDMap}} {
		var got []string
		for _, l := range lines(m.inside) {
			got = append(got, strings.Join(strings.Fields(l), " "))
		}
		if len(got) == 0 || !slices.Equal(got, m.lines) {
			t.Errorf("%d: report's %s %q, /proc/self/%s inside %q", i, m.name, m.lines, m.name, got)
		}
	}
	wantMode := "single"
	if len(rep.Identity.UIDMap) > 1 {
		wantMode = "full"
	}
	if rep.Identity.Requested != "auto" || rep.Identity.Mode != wantMode || rep.Identity.Why == "" ||
		(rep.Identity.Via != "newuidmap" && rep.Identity.Via != "holder" && rep.Identity.Via != "direct") {
		t.Errorf("identity %+v: want auto, mode %s, a reason, via newuidmap, holder or direct", *rep.Identity, wantMode)
	}
	if host := strings.TrimSpace(s[2]); rep.Hostname != host || rep.Name == "" {
		t.Errorf("report's hostname %q (name %q), hostname inside %q", rep.Hostname, rep.Name, host)
	}
	if !slices.Equal(rep.Command, []string{"sh", "-c", script}) {
		t.Errorf("command %q", rep.Command)
	}
	root := rep.Root
	if root.Source != "host" || root.OverlayDriver != "kernel" || root.ReadOnly || root.Enter != "pivot_root" ||
		root.CwdMode != "rw" || root.Cwd != strings.TrimSpace(s[3]) {
		t.Errorf("root %+v; pwd inside %q", *root, s[3])
	}
	if n := rep.Network; n.Driver != "none" || n.Requested != "none" || n.SandboxIP != "" || len(n.Published) != 0 {
		t.Errorf("--net=none: network %+v", *n)
	}
	if rep.Cgroup == nil || rep.Cgroup.LimitsMode != "strict" {
		t.Errorf("cgroup %+v, want limits_mode strict", rep.Cgroup)
	}
	wantTimeline(t, rep, true)
	if rep.StartupMS == nil || *rep.StartupMS <= 0 || *rep.StartupMS > rep.DurationMS {
		t.Errorf("startup_ms %v, want > 0 and <= duration_ms %.3f", rep.StartupMS, rep.DurationMS)
	}
	wantExit(t, rep, 0, "exited")
	if rep.Exit.Code == nil || *rep.Exit.Code != 0 || rep.Error != nil {
		t.Errorf("exit %+v, error %+v: want code 0, no error", rep.Exit, rep.Error)
	}
}

func TestReportExitCode(t *testing.T) {
	t.Parallel()
	r, rep := runWithReport(t, opts{}, nil, "sh", "-c", "exit 3")
	wantCode(t, r, 3)
	wantExit(t, rep, 3, "exited")
	if rep.Exit.Code == nil || *rep.Exit.Code != 3 || rep.Exit.Signal != 0 || rep.Error != nil {
		t.Errorf("exit %+v, error %+v: want code 3, no signal, no error", rep.Exit, rep.Error)
	}
}

// TestReportReadOnlyRoot: --read-only mounts no overlay (binds), and the
// report says so; before, an overlay it planned and skipped left
// overlay_driver "kernel".
func TestReportReadOnlyRoot(t *testing.T) {
	t.Parallel()
	r, rep := runWithReport(t, opts{}, []string{"--read-only"}, "true")
	wantCode(t, r, 0)
	if rep.Root == nil || !rep.Root.ReadOnly || rep.Root.OverlayDriver != "none" {
		t.Errorf("--read-only: root %+v, want read_only and overlay_driver none", rep.Root)
	}
}

// TestReportSignal: a payload killed (here by the SIGTERM sent to `sandbox`,
// which forwards it) still gets its report, with the signal.
func TestReportSignal(t *testing.T) {
	t.Parallel()
	file := filepath.Join(tempDir(t), "report.json")
	p := start(t, opts{}, "run", "--report", file, "--", "sh", "-c", "echo ready; exec sleep 30")
	if !p.waitStdout("ready", 15*time.Second) {
		t.Fatalf("the command did not start:\n%s", p.wait())
	}
	syscall.Kill(p.pid(), syscall.SIGTERM)
	r := p.wait()
	wantCode(t, r, 128+15)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report after the payload was killed: %v\n%s", err, r)
	}
	rep := parseReport(t, b)
	wantExit(t, rep, 143, "signaled")
	if rep.Exit.Signal != 15 || rep.Exit.SignalName != "SIGTERM" || rep.Exit.Code != nil || rep.Error != nil {
		t.Errorf("exit %+v, error %+v: want signal 15 SIGTERM, no code, no error", rep.Exit, rep.Error)
	}
}

// TestReportSandboxFailure: init fails after Prepare; the report names the
// step and carries init's steps up to there.
func TestReportSandboxFailure(t *testing.T) {
	t.Parallel()
	r, rep := runWithReport(t, opts{}, []string{"--chdir", "/nonexistent-e2e"}, "true")
	wantCode(t, r, exitSandbox)
	wantExit(t, rep, exitSandbox, "sandbox-error")
	if rep.Error == nil || rep.Error.Step != "changing to the working directory" || !strings.Contains(rep.Error.Msg, "/nonexistent-e2e") {
		t.Errorf("error %+v, want the step \"changing to the working directory\" and the directory", rep.Error)
	}
	if rep.StartupMS != nil || rep.Exit.Code != nil {
		t.Errorf("startup_ms %v, code %v: the command never started", rep.StartupMS, rep.Exit.Code)
	}
	wantTimeline(t, rep, true)
	if !slices.ContainsFunc(rep.Steps, func(s reportStep) bool {
		return s.Stage == "init" && strings.HasPrefix(s.Msg, "entered the new root")
	}) {
		t.Errorf("init's steps before the failure are missing: %+v", rep.Steps)
	}
}

// TestReportBadInput: a report path that cannot be written stops the run
// before anything starts; a run Prepare refuses still gets its report.
func TestReportBadInput(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	marker := filepath.Join(dir, "started")
	r := runIn(t, dir, "run", "--report", filepath.Join(dir, "no-such-dir", "r.json"), "--", "touch", marker)
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "--report") || exists(marker) {
		t.Errorf("want an error naming --report and the command not run (%s exists: %v)\n%s", marker, exists(marker), r)
	}

	file := filepath.Join(dir, "r.json")
	r = run(t, "run", "--report", file, "--hostname", "bad host!", "--", "true")
	wantCode(t, r, exitSandbox)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report of a refused run: %v", err)
	}
	rep := parseReport(t, b)
	wantExit(t, rep, exitSandbox, "sandbox-error")
	if rep.Error == nil || !strings.Contains(rep.Error.Msg, "--hostname") || rep.Error.Step == "" {
		t.Errorf("error %+v, want a step and the --hostname problem", rep.Error)
	}
}

// TestReportStdout: with --report - the report is the last line of stdout,
// after the command's own output.
func TestReportStdout(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--report", "-", "--", "echo", "hello")
	ls := lines(r.stdout)
	if len(ls) != 2 || ls[0] != "hello" {
		t.Fatalf("want the command's line, then the report\n%s", r)
	}
	rep := parseReport(t, []byte(ls[1]))
	wantExit(t, rep, 0, "exited")
}

// TestReportNetwork: the addresses the report gives are those inside.
func TestReportNetwork(t *testing.T) {
	t.Parallel()
	requireDriver(t, "slirp4netns")
	port := freePort(t, "tcp")
	script := "ip -o -4 addr show dev tap0; echo ---; ip route; echo ---; cat /etc/resolv.conf; echo ---; cat /sys/class/net/tap0/mtu"
	r, rep := runWithReport(t, opts{}, []string{"--net=slirp4netns", "-p", fmt.Sprintf("%d:80", port)}, "sh", "-c", script)
	wantCode(t, r, 0)
	s := sections(r.stdout)
	if len(s) != 4 {
		t.Fatalf("unexpected output\n%s", r)
	}
	n := rep.Network
	if n.Driver != "slirp4netns" || n.Requested != "slirp4netns" || n.Interface != "tap0" {
		t.Fatalf("network %+v, want driver slirp4netns on tap0", *n)
	}
	if want := fmt.Sprintf("inet %s/%d", n.SandboxIP, n.PrefixLen); n.SandboxIP == "" || !strings.Contains(s[0], want) {
		t.Errorf("report says %s; inside: %q", want, s[0])
	}
	if n.Gateway == "" || !regexp.MustCompile(`(?m)^default via `+regexp.QuoteMeta(n.Gateway)+` dev tap0`).MatchString(s[1]) {
		t.Errorf("report's gateway %q, routes inside:\n%s", n.Gateway, s[1])
	}
	if n.DNS == "" || !regexp.MustCompile(`(?m)^nameserver `+regexp.QuoteMeta(n.DNS)+`$`).MatchString(s[2]) {
		t.Errorf("report's DNS %q, resolv.conf inside:\n%s", n.DNS, s[2])
	}
	if fmt.Sprint(n.MTU) != strings.TrimSpace(s[3]) {
		t.Errorf("report's MTU %d, inside %q", n.MTU, s[3])
	}
	if want := []string{fmt.Sprintf("127.0.0.1:%d:80/tcp", port)}; !slices.Equal(n.Published, want) {
		t.Errorf("published %q, want %q", n.Published, want)
	}
}

// TestReportFallback: a fallback is reported with its reason, and so is its
// warning.
func TestReportFallback(t *testing.T) {
	t.Parallel()
	r, rep := runWithReport(t, opts{dir: "/"}, []string{"--net=none"}, "true")
	wantCode(t, r, 0)
	i := slices.IndexFunc(rep.Fallbacks, func(f reportFallback) bool { return f.Area == "cwd" })
	if i < 0 || rep.Fallbacks[i].Taken != "--cwd=none" || !strings.Contains(rep.Fallbacks[i].Why, "root") {
		t.Errorf("fallbacks %+v, want cwd → --cwd=none because / is the host's root", rep.Fallbacks)
	}
	if len(rep.Warnings) == 0 || !strings.Contains(r.stderr, rep.Warnings[0]) || strings.HasPrefix(rep.Warnings[0], "sandbox:") {
		t.Errorf("warnings %q, want the one printed (without its prefix)\n%s", rep.Warnings, r)
	}
}

// TestLogFormat: quiet by default; --log-format=json makes every line of
// sandbox's own on stderr (steps, warnings, the final error) a JSON object.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--net=none", "--", "true")
	if r.stderr != "" {
		t.Errorf("a run without warnings printed on stderr:\n%s", r)
	}
	r = runIn(t, "/", "run", "--log-format=text", "--net=none", "--", "true")
	wantCode(t, r, 0)
	if ls := lines(r.stderr); len(ls) != 1 || !strings.HasPrefix(ls[0], "sandbox: warning: ") {
		t.Errorf("text: want only the one warning\n%s", r)
	}

	levels, stages := map[string]int{}, map[string]int{}
	check := func(r result) {
		t.Helper()
		for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Errorf("stderr line is not JSON (%v): %q\n%s", err, l, r)
				continue
			}
			for _, k := range []string{"time", "level", "stage", "elapsed_ms", "msg"} {
				if _, ok := m[k]; !ok {
					t.Errorf("line without %q: %s", k, l)
				}
			}
			if ts, _ := m["time"].(string); ts != "" {
				if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
					t.Errorf("time %q: %v", ts, err)
				}
			}
			if e, ok := m["elapsed_ms"].(float64); !ok || e < 0 {
				t.Errorf("elapsed_ms %v", m["elapsed_ms"])
			}
			lv, _ := m["level"].(string)
			st, _ := m["stage"].(string)
			levels[lv]++
			stages[st]++
		}
	}
	// From / (the working directory is not shared: a warning), verbose.
	r = runIn(t, "/", "run", "-v", "--log-format=json", "--net=none", "--", "true")
	wantCode(t, r, 0)
	check(r)
	// A failure: the final error line.
	r = run(t, "run", "--log-format=json", "--net=none", "--chdir", "/nonexistent-e2e", "--", "true")
	wantCode(t, r, exitSandbox)
	check(r)
	if levels["info"] == 0 || levels["warning"] != 1 || levels["error"] != 1 || stages["sandbox"] == 0 || stages["init"] == 0 {
		t.Errorf("levels %v, stages %v: want info lines, 1 warning, 1 error, from sandbox and init", levels, stages)
	}
	// Without -v, only warnings and errors.
	r = runIn(t, "/", "run", "--log-format=json", "--net=none", "--", "true")
	wantCode(t, r, 0)
	if ls := lines(r.stderr); len(ls) != 1 || !strings.Contains(ls[0], `"level":"warning"`) {
		t.Errorf("json without -v: want only the warning\n%s", r)
	}

	r = run(t, "run", "--log-format=xml", "--", "true")
	wantCode(t, r, exitSandbox)
}
