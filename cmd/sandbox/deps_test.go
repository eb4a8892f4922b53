package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRegistryKeptOut: the registry client lives in sandbox-pull, so that
// its package initialisation (~2 ms) is not paid by every `sandbox run`.
func TestRegistryKeptOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "sandbox/cmd/sandbox").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "go-containerregistry") || p == "sandbox/image/registry" {
			t.Errorf("sandbox links %s: the registry code belongs in cmd/sandbox-pull", p)
		}
	}
}
