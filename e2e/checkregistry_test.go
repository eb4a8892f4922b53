package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRegistry: check names the registries the caller has credentials
// for and the proxy pulls use, never a secret.
func TestCheckRegistry(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(
		`{"auths":{"registry.example:5000":{"auth":"dXNlcjpodW50ZXIy"}},"credHelpers":{"ghcr.io":"gh"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := opts{env: []string{"DOCKER_CONFIG=" + dir, "HTTPS_PROXY=http://alice:hunter2@proxy.test:3128", "NO_PROXY=localhost"}}
	r := mustRun(t, o, "check", "--json")
	if strings.Contains(r.stdout, "hunter2") || strings.Contains(r.stdout, "dXNlcjpodW50ZXIy") {
		t.Errorf("check showed a secret:\n%s", r.stdout)
	}
	_, byID := parseCheck(t, r.stdout)
	want(t, byID, "registry-auth", "OK", false,
		[]string{"credentials for registry.example:5000", "ghcr.io (docker-credential-gh)", filepath.Join(dir, "config.json")}, nil)
	want(t, byID, "registry-proxy", "OK", false, []string{"HTTPS_PROXY=http://***@proxy.test:3128", "NO_PROXY=localhost"}, nil)
}
