//go:build linux

package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd guest (vm/systemd/, vm/README.md): its image cache and its
// one pass, as tester in an SSH-like login session made by `su -l`.
const defaultSystemdCache = "/var/cache/sandbox-vm-systemd"

// The pass's own -test.timeout: systemd's guest is slower than busybox's.
var systemdPass = pass{"systemd", "tester", []string{"-test.run", "^TestSystemd", "-test.timeout", "10m"}}

// The root pass: containerd and podman (in the image) as root, with
// sandbox-oci as their runtime (vm/guest/ociengines_test.go).
var systemdRootPass = pass{"root", "root", []string{"-test.run", "^TestRoot", "-test.timeout", "8m"}}

// systemdImageOK: the cache holds an image made by this checkout's
// build-image.sh for this kernel (the stamp build-image.sh writes).
func systemdImageOK(t *testing.T, cache, kernelCache, dir string) bool {
	t.Helper()
	h := sha256.New()
	for _, f := range []string{"build-image.sh", "vmtest-run", "vmtest.service"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	ver, err := os.ReadFile(filepath.Join(kernelCache, "version"))
	if err != nil {
		return false
	}
	h.Write(ver)
	stamp, err := os.ReadFile(filepath.Join(cache, "stamp"))
	if err != nil || strings.TrimSpace(string(stamp)) != hex.EncodeToString(h.Sum(nil))[:16] {
		return false
	}
	_, err = os.Stat(filepath.Join(cache, "rootfs.ext4"))
	return err == nil
}

// TestVMSystemd boots the systemd guest once and reports each of its tests
// as TestVMSystemd/systemd/TestName.
func TestVMSystemd(t *testing.T) {
	here, kernel := vmPrereqs(t)
	cache := os.Getenv("SANDBOX_VM_SYSTEMD_CACHE")
	if cache == "" {
		cache = defaultSystemdCache
	}
	requireOrSkip(t, systemdImageOK(t, cache, kernel, filepath.Join(here, "systemd")),
		"an up-to-date systemd guest image in "+cache+" (made by vm/systemd/build-image.sh)")
	work := t.TempDir()
	sandbox := sandboxBinary(t, work)
	guestTest := buildGuestTests(t, work, "vmguest,vmsystemd")
	oci := ociBinary(t, work)
	busybox, err := exec.LookPath("busybox")
	requireOrSkip(t, err == nil, "busybox (Debian package busybox-static), the root pass's container image")
	job := filepath.Join(work, "job.sh")
	// su -l opens a logind session (pam_systemd): session-N.scope, owned by
	// root, with XDG_RUNTIME_DIR; the environment is passed on explicitly.
	script := "#!/bin/sh\n# Written by vm/systemd_test.go.\necho \"vmtest: pass systemd as tester\"\n" +
		"su -l tester -c " + shQuote("env SANDBOX_BIN=/run/vmtest/ctl/bin/sandbox CI="+shQuote(os.Getenv("CI"))+
		" /run/vmtest/ctl/bin/guest.test -test.v=test2json "+strings.Join(systemdPass.args, " ")) +
		" >\"$VMTEST_OUT/systemd.out\" 2>&1\necho $? >\"$VMTEST_OUT/systemd.rc\"\n" +
		"echo \"vmtest: pass root as root\"\n" +
		"env SANDBOX_OCI_BIN=/run/vmtest/ctl/bin/sandbox-oci BUSYBOX_BIN=/run/vmtest/ctl/bin/busybox CI=" + shQuote(os.Getenv("CI")) +
		" /run/vmtest/ctl/bin/guest.test -test.v=test2json " + strings.Join(systemdRootPass.args, " ") +
		" >\"$VMTEST_OUT/root.out\" 2>&1\necho $? >\"$VMTEST_OUT/root.rc\"\n"
	if err := os.WriteFile(job, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "out")
	// systemd's boot under TCG: 10-40 s, minutes on a machine loaded by
	// other builds; this --boot-timeout overrides boot's.
	log, err := boot(t, here, out, "--boot-timeout", "360", "--systemd", cache, "--bin", sandbox, "--bin", oci, "--bin", busybox, "--bin", guestTest, "--bin", job,
		"--", "sh", "/run/vmtest/ctl/bin/job.sh")
	if err != nil {
		t.Fatalf("the VM run failed: %v\n%s", err, log)
	}
	t.Logf("%s", lastLine(log))
	t.Run(systemdPass.name, func(t *testing.T) { relayPass(t, out, systemdPass, log) })
	t.Run(systemdRootPass.name, func(t *testing.T) { relayPass(t, out, systemdRootPass, log) })
}

// ociBinary is sandbox-oci: beside $SANDBOX_BIN (scripts/build.sh builds
// both), else built into dir.
func ociBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("SANDBOX_BIN"); bin != "" {
		p := filepath.Join(filepath.Dir(bin), "sandbox-oci")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("sandbox-oci: %v (scripts/build.sh builds it beside sandbox)", err)
		}
		return p
	}
	p := filepath.Join(dir, "sandbox-oci")
	ctx, cancel := context.WithTimeout(context.Background(), buildTime)
	defer cancel()
	// cgo: exec's namespace stage (cmd/sandbox-oci/nsenter.c); the guest is
	// the same Debian as the host, so its libc serves.
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", p, "sandbox/cmd/sandbox-oci").CombinedOutput(); err != nil {
		t.Fatalf("SANDBOX_BIN is unset and building sandbox-oci failed: %v\n%s", err, out)
	}
	return p
}

// vmPrereqs: QEMU and an up-to-date kernel cache (as TestVM requires
// them); it returns vm/ and the kernel cache.
func vmPrereqs(t *testing.T) (string, string) {
	t.Helper()
	kernel := os.Getenv("SANDBOX_VM_CACHE")
	if kernel == "" {
		kernel = defaultCache
	}
	return kernelPrereqs(t, kernel), kernel
}

// kernelPrereqs checks QEMU and the guest kernel in cache and returns the
// vm directory.
func kernelPrereqs(t *testing.T, cache string) string {
	t.Helper()
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	qemu := os.Getenv("QEMU")
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	_, err = exec.LookPath(qemu)
	requireOrSkip(t, err == nil, qemu+" (Debian package qemu-system-x86)")
	requireOrSkip(t, kernelCacheOK(t, cache, filepath.Join(here, "fetch-kernel.sh")),
		"an up-to-date guest kernel in "+cache+" (made by vm/fetch-kernel.sh)")
	return here
}

// buildGuestTests builds ./guest with the build tags into dir/guest.test
// (static: the busybox guest has no libc).
func buildGuestTests(t *testing.T, dir, tags string) string {
	t.Helper()
	bin := filepath.Join(dir, "guest.test")
	ctx, cancel := context.WithTimeout(context.Background(), buildTime)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "test", "-c", "-tags", tags, "-o", bin, "./guest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest tests (go test -c -tags %s ./guest): %v\n%s", tags, err, out)
	}
	return bin
}
