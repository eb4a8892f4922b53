// Package testenv holds what the tests of several packages share about
// their environment.
package testenv

import (
	"os"
	"testing"
)

// RequireOrSkip skips the test when a prerequisite is missing, except with
// CI=true, where a missing prerequisite is a failure naming it.
func RequireOrSkip(t testing.TB, cond bool, why string) {
	t.Helper()
	if cond {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing prerequisite (CI=true, not skipping): %s", why)
	}
	t.Skipf("skipping, missing prerequisite: %s", why)
}
