// Package archbuild checks that the whole module builds for
// every Linux architecture Go targets: what is architecture-specific
// (system-call numbers, seccomp tables, the network helper) must not
// silently break on the architectures no test machine runs.
package archbuild

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"sandbox/seccomp"
)

// TestBuildEveryArch: `go build` with GOOS=linux for each architecture the
// seccomp filters support, and for mips64le, which has no tables (run then
// needs --seccomp=unconfined, which must still build). arm64 builds every
// package (./...: the network helper's gvisor too; TestVMArm64 shares the
// build cache); the others build sandbox itself (every package but the
// helper's): a cold build of gvisor takes over 15 minutes per architecture
// on the loaded 2-core CI machine.
func TestBuildEveryArch(t *testing.T) {
	for _, goarch := range append(seccomp.SupportedArchs(), "mips64le") {
		t.Run(goarch, func(t *testing.T) {
			pkgs := []string{"./cmd/sandbox", "./seccomp"}
			if goarch == "arm64" {
				pkgs = []string{"./..."}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			// Several packages: go build writes nothing.
			cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, pkgs...)...)
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("GOOS=linux GOARCH=%s go build %v: %v\n%s", goarch, pkgs, err, out)
			}
			t.Logf("GOARCH=%s go build %v: %v", goarch, pkgs, time.Since(start).Round(100*time.Millisecond))
		})
	}
}
