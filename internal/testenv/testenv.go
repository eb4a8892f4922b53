// Package testenv holds what the test packages share about the machine they
// run on.
package testenv

import (
	"os"
	"testing"
)

// RequireOrSkip skips the test when a prerequisite is missing, except with
// CI=true, where a test never skips: the missing prerequisite is a failure
// naming it.
func RequireOrSkip(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing prerequisite (CI=true, not skipping): %s", what)
	}
	t.Skipf("skipping, missing prerequisite: %s", what)
}
