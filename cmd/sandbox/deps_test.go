package main

import (
	"os/exec"
	"strings"
	"testing"
)

// typesOnly are the go-containerregistry packages sandbox may link: the
// image types the tarball import reads; they have no package
// initialisation (GODEBUG=inittrace=1 lists none of them).
var typesOnly = map[string]bool{
	"github.com/google/go-containerregistry/pkg/v1":       true,
	"github.com/google/go-containerregistry/pkg/v1/types": true,
}

// TestRegistryKeptOut: the registry client lives in sandbox-pull, so that
// its package initialisation (~2 ms) is not paid by every `sandbox run`.
func TestRegistryKeptOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "sandbox/cmd/sandbox").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "go-containerregistry") && !typesOnly[p] || p == "sandbox/image/registry" {
			t.Errorf("sandbox links %s: the registry code belongs in cmd/sandbox-pull", p)
		}
	}
}
