//go:build linux && vmguest

package guest

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPSShowsLimitsAndUse: `sandbox ps` reports the limits written and the
// memory and CPU use of a detached sandbox's cgroup (here, where the
// controllers are delegated).
func TestPSShowsLimitsAndUse(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	wantCode(t, run(t, "run", "-d", "--name", "lim", "--net=none", "--memory", "64M", "--pids", "50", "--",
		"sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 120"), 0)
	defer run(t, "stop", "--time", "1s", "lim")
	type entry struct {
		Name        string   `json:"name"`
		Limits      []string `json:"limits"`
		MemoryBytes int64    `json:"memory_bytes"`
		CPUSeconds  float64  `json:"cpu_seconds"`
	}
	var e entry
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := run(t, "ps", "--json")
		wantCode(t, r, 0)
		var list []entry
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("ps --json: %v\n%s", err, r)
		}
		for _, l := range list {
			if l.Name == "lim" {
				e = l
			}
		}
		if e.CPUSeconds > 0.01 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	limits := strings.Join(e.Limits, " ")
	if !strings.Contains(limits, "memory.max="+strconv.Itoa(64<<20)) || !strings.Contains(limits, "pids.max=50") {
		t.Errorf("ps limits %q, want memory.max=%d and pids.max=50", e.Limits, 64<<20)
	}
	if e.MemoryBytes <= 0 || e.CPUSeconds <= 0 {
		t.Errorf("ps use: %d bytes, %.3f s CPU; want both measured", e.MemoryBytes, e.CPUSeconds)
	}
	r := run(t, "ps")
	if !strings.Contains(r.stdout, "lim ") || !strings.Contains(r.stdout, "pids.max=50") {
		t.Errorf("ps table: %s", r)
	}
	wantCode(t, run(t, "stop", "lim"), 0)
}
