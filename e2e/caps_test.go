package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// capField returns a Cap* line's value from /proc/self/status text.
func capField(t *testing.T, status, name string) uint64 {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("parsing %s %q: %v", name, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in:\n%s", name, status)
	return 0
}

// A payload running as a non-root identity inside must hold no capability:
// init's own (ambient, inheritable) must not leak into it.
func TestNonRootIdentityHasNoCapabilities(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--uid", "1000", "--gid", "1000", "--", "cat", "/proc/self/status")
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if v := capField(t, r.stdout, f); v != 0 {
			t.Errorf("%s = %x for uid 1000 inside, want 0", f, v)
		}
	}
	// Root inside gets capabilities (in its user namespace only), but none
	// ambient or inheritable that could pass to a later non-root exec.
	r = mustRun(t, opts{}, "run", "--", "cat", "/proc/self/status")
	if capField(t, r.stdout, "CapEff") == 0 {
		t.Error("root inside has no effective capabilities")
	}
	for _, f := range []string{"CapInh", "CapAmb"} {
		if v := capField(t, r.stdout, f); v != 0 {
			t.Errorf("%s = %x for root inside, want 0", f, v)
		}
	}
}
