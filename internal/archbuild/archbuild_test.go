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

// TestBuildEveryArch: `go build ./...` (every package, the network helper
// included; several packages: nothing is written) with GOOS=linux for each
// architecture the seccomp filters support, and for mips64le, which has no
// tables (run then needs --seccomp=unconfined, which must still build). A
// cold build cache makes this take minutes; a warm one, seconds.
func TestBuildEveryArch(t *testing.T) {
	for _, goarch := range append(seccomp.SupportedArchs(), "mips64le") {
		t.Run(goarch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "./...")
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("GOOS=linux GOARCH=%s go build ./...: %v\n%s", goarch, err, out)
			}
			t.Logf("GOARCH=%s go build ./...: %v", goarch, time.Since(start).Round(100*time.Millisecond))
		})
	}
}
