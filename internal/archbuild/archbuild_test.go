// Package archbuild checks that the whole module builds for
// every Linux architecture Go targets: what is architecture-specific
// (system-call numbers, seccomp tables, the network helper) must not
// silently break on the architectures no test machine runs; and runs the
// tests of the signal handlers written in arm64 assembly under qemu-user.
package archbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sandbox/internal/testenv"
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

// handlerPackages are the packages with signal handlers of their own in
// assembly for amd64 and arm64 whose tests run without re-executing
// themselves (internal/sigdrop's do: under qemu-user without binfmt they
// cannot): TestHandlersArm64 runs them for arm64.
var handlerPackages = []string{"./internal/sigcatch", "./internal/callersig"}

// qemuArm64 is qemu's user-mode emulator for arm64 programs, or "".
func qemuArm64() string {
	for _, name := range []string{"qemu-aarch64-static", "qemu-aarch64"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestHandlersArm64: the arm64 assembly of the signal handlers (the relay
// of internal/sigcatch: what it writes, and only in its own process) does
// what their tests check on amd64, run under qemu's user-mode emulation;
// TestVMArm64's guest runs sandbox itself, few signals.
func TestHandlersArm64(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("for an amd64 host (GOARCH=%s)", runtime.GOARCH)
	}
	qemu := qemuArm64()
	testenv.RequireOrSkip(t, qemu != "", "qemu-aarch64-static (Debian package qemu-user-static)")
	for _, pkg := range handlerPackages {
		t.Run(filepath.Base(pkg), func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "arm64.test")
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, pkg)
			build.Dir = "../.."
			build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("GOARCH=arm64 go test -c %s: %v\n%s", pkg, err, out)
			}
			// Not the test that runs the binary again as PID 1 of a new
			// namespace: without binfmt, only qemu can run it.
			run := exec.CommandContext(ctx, qemu, bin, "-test.count=1", "-test.v", "-test.skip", "AsPID1$")
			run.Dir = filepath.Join("../..", pkg)
			out, err := run.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "\nPASS") {
				t.Fatalf("%s's tests for arm64 under %s: %v\n%s", pkg, filepath.Base(qemu), err, out)
			}
			t.Logf("%s: %d tests passed for arm64", pkg, strings.Count(string(out), "--- PASS"))
		})
	}
}
