package parent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sandbox/cgroupdelegate"

	"sandbox/journal"

	"github.com/moby/sys/mountinfo"
)

// TestReportCgroupLimits: best-effort limits that cannot hold are reported
// skipped with why, the others applied.
func TestReportCgroupLimits(t *testing.T) {
	f := newFakeHost(t)
	f.cgroup("/", "pids")
	f.self = "/u"
	f.cgroup(f.self, "pids")
	f.v1 = []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", VFSOptions: "rw,memory"}}
	r := &journal.Report{LimitsMode: "best-effort"}
	h := f.host()
	h.rep = r
	cg, err := h.open(limits(t, true, cgroupdelegate.Flags{Memory: "64M", Pids: "10"}), "true", nolog)
	if err != nil || cg == nil {
		t.Fatalf("cgroup %v, %v", cg, err)
	}
	defer cg.f.Close()
	c := r.Cgroup
	if c == nil || c.LimitsMode != "best-effort" || len(c.Applied) != 1 || c.Applied[0] != (journal.LimitReport{Flag: "--pids 10", File: "pids.max", Value: "10"}) {
		t.Fatalf("cgroup report %+v", c)
	}
	if len(c.Skipped) == 0 {
		t.Fatal("--memory not reported skipped")
	}
	for _, s := range c.Skipped {
		if s.Flag != "--memory 64M" || !strings.Contains(s.Why, "cgroup v1") {
			t.Errorf("skipped %+v", s)
		}
	}
	if b, err := os.ReadFile(filepath.Join(cg.dir, "pids.max")); err != nil || string(b) != "10" {
		t.Errorf("pids.max %q %v: the report says applied", b, err)
	}
}
