//go:build linux && vmguest

package guest

// The run report (--report) where cgroup v2 limits work: the OOM cause, the
// applied and skipped limits, the fallbacks of this guest.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// guestReport is the part of the report these tests read (docs/cli.md).
type guestReport struct {
	Root struct {
		Enter string `json:"enter"`
	} `json:"root"`
	Cgroup struct {
		Path       string       `json:"path"`
		InitVia    string       `json:"init_via"`
		LimitsMode string       `json:"limits_mode"`
		Applied    []guestLimit `json:"applied"`
		Skipped    []guestLimit `json:"skipped"`
	} `json:"cgroup"`
	Fallbacks []guestFallback `json:"fallbacks"`
	Warnings  []string        `json:"warnings"`
	Exit      struct {
		Status   int    `json:"status"`
		Cause    string `json:"cause"`
		Code     *int   `json:"code"`
		Signal   int    `json:"signal"`
		OOMKills int64  `json:"oom_kills"`
	} `json:"exit"`
	Error *struct{ Step, Msg string } `json:"error"`
}

type guestFallback struct {
	Area  string `json:"area"`
	Taken string `json:"taken"`
}

type guestLimit struct {
	Flag  string `json:"flag"`
	File  string `json:"file"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

// runReported runs `sandbox run --report FILE args...` and decodes the report.
func runReported(t *testing.T, args ...string) (result, guestReport) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "report.json")
	r := run(t, append([]string{"run", "--report", file}, args...)...)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report: %v\n%s", err, r)
	}
	var rep guestReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, b)
	}
	t.Logf("report: %s", b)
	return r, rep
}

// TestReportOOM: the command killed by --memory's OOM killer is reported
// as such, with the limit applied in the sandbox's own cgroup.
func TestReportOOM(t *testing.T) {
	r, rep := runReported(t, "--memory", "64M", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	wantCode(t, r, 137)
	if e := rep.Exit; e.Status != 137 || e.Cause != "oom-killed" || e.Signal != 9 || e.OOMKills < 1 || e.Code != nil {
		t.Errorf("exit %+v, want 137 oom-killed by signal 9, oom_kills >= 1", e)
	}
	c := rep.Cgroup
	if !strings.Contains(filepath.Base(c.Path), "sandbox-") || (c.InitVia != "clone3" && c.InitVia != "cgroup.procs") || c.LimitsMode != "strict" {
		t.Errorf("cgroup %+v: want a sandbox-<pid>-<start> path, how init entered it, strict", c)
	}
	if !slices.Contains(c.Applied, guestLimit{Flag: "--memory 64M", File: "memory.max", Value: "67108864"}) {
		t.Errorf("applied %+v, want memory.max 67108864 from --memory 64M", c.Applied)
	}
	if rep.Root.Enter != "MS_MOVE+chroot" || !slices.Contains(rep.Fallbacks, guestFallback{"root", "MS_MOVE+chroot"}) {
		t.Errorf("root entered by %q, fallbacks %+v: want the guest's MS_MOVE+chroot fallback", rep.Root.Enter, rep.Fallbacks)
	}
}

// TestStockReportSkipped: under --limits=best-effort the limit stock
// delegation cannot serve is reported skipped with why.
func TestStockReportSkipped(t *testing.T) {
	checkShape(t, 1001, stockControllers)
	r, rep := runReported(t, append(append([]string{"--limits=best-effort"}, stockIOMax...), "--", "true")...)
	wantCode(t, r, 0)
	c := rep.Cgroup
	if c.LimitsMode != "best-effort" || len(c.Applied) != 0 {
		t.Errorf("cgroup %+v: want best-effort, nothing applied", c)
	}
	if len(c.Skipped) != 1 || c.Skipped[0].File != "io.max" || !strings.HasPrefix(c.Skipped[0].Flag, "--io-max") ||
		!strings.Contains(c.Skipped[0].Why, "Delegate=") {
		t.Errorf("skipped %+v: want the --io-max write with the delegation fix", c.Skipped)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "--io-max") }) {
		t.Errorf("warnings %q: want the --io-max one", rep.Warnings)
	}
	if rep.Exit.Cause != "exited" || rep.Error != nil {
		t.Errorf("exit %+v, error %+v", rep.Exit, rep.Error)
	}
}
