package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCheck: on the test host everything run needs is in place, so check
// exits 0, says so per link, and its live probe runs a real sandbox.
func TestCheck(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "check")
	for _, name := range []string{"kernel", "user namespaces", "subordinate ids", "seccomp", "live probe"} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("`sandbox check` has no %q line:\n%s", name, r.stdout)
		}
	}
	for _, l := range lines(r.stdout) {
		if strings.HasPrefix(l, "FAIL") {
			t.Errorf("FAIL on the test host: %s", l)
		}
	}
	if !strings.Contains(r.stdout, "OK    live probe") {
		t.Errorf("the live probe did not pass:\n%s", r.stdout)
	}

	r = mustRun(t, opts{}, "check", "--json")
	var doc struct {
		OK      bool `json:"ok"`
		Results []struct {
			Name, Level, Detail, Fix string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--json is not JSON: %v\n%s", err, r.stdout)
	}
	if !doc.OK || len(doc.Results) < 8 {
		t.Errorf("--json: ok=%v with %d results", doc.OK, len(doc.Results))
	}
	for _, res := range doc.Results {
		if res.Level != "OK" && res.Level != "WARN" && res.Level != "FAIL" {
			t.Errorf("result %q has level %q", res.Name, res.Level)
		}
	}
}
