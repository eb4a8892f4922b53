//go:build linux

package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	defaultArm64Cache = "/var/cache/sandbox-vm-arm64"
	// A cold cross-build (gvisor for the network helper) takes minutes on
	// a loaded machine; the build cache makes later ones take seconds.
	crossBuildTime = 8 * time.Minute
)

// arm64Passes: one pass, few tests, five sandbox runs (one takes ~20 s
// under TCG on two loaded cores): the id mapping, overlay root and
// pivot_root fallback (TestArm64Basics), the default seccomp filter
// natively and for a 32-bit arm program, the builtin network driver and a
// cgroup limit. The later -test.timeout wins over the job's.
var arm64Passes = []pass{
	{"arm64", "tester", []string{"-test.timeout", "8m", "-test.run",
		"^(TestShape|TestArm64Basics|TestArm64Holder|TestArchSeccompDefault|TestArm64CompatArm|TestArm64NetBuiltin|TestPidsForkBomb)$"}},
}

// TestVMArm64 cross-builds sandbox, its network helper and the guest tests
// for arm64, boots the arm64 guest (qemu-system-aarch64 -M virt, TCG,
// Debian's arm64 kernel; vm/fetch-arm64.sh) once and relays the guest tests
// as TestVMArm64/arm64/TestName.
func TestVMArm64(t *testing.T) {
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	qemu := os.Getenv("QEMU_AARCH64")
	if qemu == "" {
		qemu = "qemu-system-aarch64"
	}
	_, err = exec.LookPath(qemu)
	requireOrSkip(t, err == nil, qemu+" (Debian package qemu-system-arm)")
	cache := os.Getenv("SANDBOX_VM_ARM64_CACHE")
	if cache == "" {
		cache = defaultArm64Cache
	}
	requireOrSkip(t, arm64CacheOK(t, cache, filepath.Join(here, "fetch-arm64.sh")),
		"an up-to-date arm64 guest kernel and userland in "+cache+" (made by vm/fetch-arm64.sh)")

	work := t.TempDir()
	start := time.Now()
	// sandbox as scripts/build.sh builds it for arm64, in a copy of this
	// tree: with init, the network and pull helpers and the holder stage
	// embedded, the stage made by the arm64 cross compiler.
	buildArm64(t, filepath.Dir(here), work)
	for _, b := range [][]string{
		// Next to sandbox in the guest: --net=builtin finds it there.
		{"build", "-o", filepath.Join(work, "sandbox-netstack"), "sandbox/cmd/sandbox-netstack"},
		{"test", "-c", "-tags", "vmguest", "-o", filepath.Join(work, "guest.test"), "./guest"},
		// A 32-bit arm program for TestArm64CompatArm (arm64's compat ABI).
		{"test", "-c", "-tags", "vmguest", "-o", filepath.Join(work, "guest-arm.test"), "./guest", "arm"},
	} {
		goarch := "arm64"
		if b[len(b)-1] == "arm" {
			b, goarch = b[:len(b)-1], "arm"
		}
		ctx, cancel := context.WithTimeout(context.Background(), crossBuildTime)
		cmd := exec.CommandContext(ctx, "go", b...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("GOARCH=%s go %s: %v\n%s", goarch, strings.Join(b, " "), err, out)
		}
	}
	t.Logf("arm64 builds took %v", time.Since(start).Round(100*time.Millisecond))
	job := filepath.Join(work, "job.sh")
	if err := os.WriteFile(job, []byte(jobScript(arm64Passes)), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "out")
	log, err := boot(t, here, out, "--arch", "arm64", "--disk", "0",
		"--bin", filepath.Join(work, "sandbox"), "--bin", filepath.Join(work, "sandbox-netstack"),
		"--bin", filepath.Join(work, "guest.test"), "--bin", filepath.Join(work, "guest-arm.test"), "--bin", job,
		"--", "sh", "/run/vmtest/ctl/bin/job.sh")
	if err != nil {
		t.Fatalf("the arm64 VM run failed: %v\n%s", err, log)
	}
	t.Logf("%s", lastLine(log))
	for _, p := range arm64Passes {
		t.Run(p.name, func(t *testing.T) { relayPass(t, out, p, log) })
	}
}

// buildArm64 builds sandbox for arm64 with scripts/build.sh in a copy of
// the repository at repo (the build writes its embedded programs into the
// tree) and puts it at work/sandbox. The stage must be in: TestArm64Holder
// runs it.
func buildArm64(t *testing.T, repo, work string) {
	t.Helper()
	_, err := exec.LookPath("aarch64-linux-gnu-gcc")
	requireOrSkip(t, err == nil, "aarch64-linux-gnu-gcc (Debian packages gcc-aarch64-linux-gnu, linux-libc-dev-arm64-cross) for the arm64 holder stage")
	src := filepath.Join(work, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), crossBuildTime)
	defer cancel()
	copyTree := exec.CommandContext(ctx, "sh", "-c", `tar -C "$0" --exclude=./.git --exclude=./bin -cf - . | tar -C "$1" -xf -`, repo, src)
	if out, err := copyTree.CombinedOutput(); err != nil {
		t.Fatalf("copying the tree: %v\n%s", err, out)
	}
	build := exec.CommandContext(ctx, "bash", "scripts/build.sh")
	build.Dir = src
	build.Env = append(os.Environ(), "GOARCH=arm64", "SANDBOX_VERSION=vmtest-arm64")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("GOARCH=arm64 scripts/build.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "the holder stage embedded") {
		t.Fatalf("the arm64 build has no holder stage:\n%s", out)
	}
	if err := os.Rename(filepath.Join(src, "bin", "sandbox"), filepath.Join(work, "sandbox")); err != nil {
		t.Fatal(err)
	}
}

// arm64CacheOK: the cache holds an Image made by this checkout's
// fetch-arm64.sh (its stamp is the script's hash).
func arm64CacheOK(t *testing.T, cache, script string) bool {
	t.Helper()
	return cacheOK(t, cache, script, "Image")
}
