//go:build linux && vmguest

package guest

// The old-kernel pass (TestVMOldKernel on the host boots Debian 11's 5.10
// for it): before 5.11 a user namespace cannot mount overlayfs, and
// mount_setattr is 5.12. Run only there (-test.run ^TestOld).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOldKernelShape: the guest really runs a kernel before 5.11 (a harness
// that booted the wrong kernel fails here, not in a puzzling way later).
func TestOldKernelShape(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	if rel := strings.TrimSpace(string(b)); !strings.HasPrefix(rel, "5.10.") {
		t.Fatalf("kernel %s, want Debian 11's 5.10", rel)
	}
	if _, err := os.Stat("/etc/hosts"); !os.IsNotExist(err) {
		t.Fatalf("the guest has an /etc/hosts (%v): the --read-only test needs a host without one", err)
	}
}

type oldReport struct {
	Root struct {
		OverlayDriver string   `json:"overlay_driver"`
		FuseMounts    []string `json:"fuse_mounts"`
	} `json:"root"`
	Warnings []string `json:"warnings"`
}

func readReport(t *testing.T, file string) oldReport {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	var r oldReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	return r
}

// TestOldDefaultRun: a default run works; --overlay=auto falls back to
// fuse-overlayfs on its own, says so in one warning line naming the
// mounts, in -v, and in the report.
func TestOldDefaultRun(t *testing.T) {
	rep := filepath.Join(t.TempDir(), "r.json")
	r := run(t, "run", "-v", "--net=none", "--report", rep, "--", "sh", "-c", "echo changed >/etc/x && cat /etc/x")
	wantCode(t, r, 0)
	if strings.TrimSpace(r.stdout) != "changed" {
		t.Errorf("stdout %q, want changed\n%s", r.stdout, r)
	}
	var warns []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "sandbox: warning: ") && strings.Contains(l, "overlayfs") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "fuse-overlayfs serves") || !strings.Contains(warns[0], "/etc") {
		t.Errorf("want one overlay warning naming the mounts fuse-overlayfs serves, got %q\n%s", warns, r)
	}
	if !strings.Contains(r.stderr, "overlay on /etc: fuse-overlayfs") {
		t.Errorf("-v does not say /etc is fuse-overlayfs:\n%s", r)
	}
	got := readReport(t, rep)
	if got.Root.OverlayDriver != "fuse" || !slices.Contains(got.Root.FuseMounts, "/etc") {
		t.Errorf("report: overlay_driver %q fuse_mounts %v, want fuse with /etc", got.Root.OverlayDriver, got.Root.FuseMounts)
	}
	if _, err := os.Stat("/etc/x"); !os.IsNotExist(err) {
		t.Errorf("the guest's /etc/x: %v, want it untouched", err)
	}
}

// TestOldReadOnly: --read-only (read-only binds: the bind remount fallback
// of mount_setattr) works, also on a host without /etc/hosts.
func TestOldReadOnly(t *testing.T) {
	r := run(t, "run", "--read-only", "--net=none", "--", "sh", "-c",
		"grep -q localhost /etc/hosts && echo hosts; touch /etc/x 2>/dev/null || echo ro-etc; touch /usr/x 2>/dev/null || echo ro-usr")
	wantCode(t, r, 0)
	if got := strings.Fields(r.stdout); !slices.Equal(got, []string{"hosts", "ro-etc", "ro-usr"}) {
		t.Errorf("got %q, want hosts ro-etc ro-usr\n%s", got, r)
	}
}

// oldRootfs is a minimal root: busybox.
func oldRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "cat", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestOldRootfsUpper: --rootfs with a persistent --upper: fuse-overlayfs
// serves it, the change persists, the upper records fuse only once a mount
// succeeded; --overlay=kernel fails with the kernel named, and its new
// upper records nothing.
func TestOldRootfsUpper(t *testing.T) {
	root, upper := oldRootfs(t), filepath.Join(t.TempDir(), "upper")
	if err := os.Mkdir(upper, 0o700); err != nil {
		t.Fatal(err)
	}
	r := run(t, "run", "--net=none", "--rootfs", root, "--upper", upper, "--", "/bin/sh", "-c", "echo kept >/kept")
	wantCode(t, r, 0)
	r = run(t, "run", "--net=none", "--rootfs", root, "--upper", upper, "--", "/bin/cat", "/kept")
	wantCode(t, r, 0)
	if strings.TrimSpace(r.stdout) != "kept" {
		t.Errorf("the --upper change did not persist: %s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "overlay-driver")); strings.TrimSpace(string(b)) != "fuse" {
		t.Errorf("--upper marker %q, want fuse", b)
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	if err := os.Mkdir(fresh, 0o700); err != nil {
		t.Fatal(err)
	}
	r = run(t, "run", "--net=none", "--overlay=kernel", "--rootfs", root, "--upper", fresh, "--", "/bin/true")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "before 5.11") || strings.Contains(r.stderr, "AppArmor") {
		t.Errorf("--overlay=kernel on 5.10: want the error to name the kernel (before 5.11), not an LSM:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(fresh, "overlay-driver")); !os.IsNotExist(err) {
		t.Errorf("a failed kernel mount left a driver marker in the new --upper (%v): it would pin the upper", err)
	}
}

// TestOldCheck: check names the old kernel (WARN, not FAIL), does not
// blame an LSM for the refused overlayfs, and run works as it says.
func TestOldCheck(t *testing.T) {
	r := run(t, "check", "--json")
	var doc struct {
		OK      bool `json:"ok"`
		Results []struct {
			ID, Status, Message, Fix string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("check --json: %v\n%s", err, r)
	}
	by := map[string]string{}
	for _, x := range doc.Results {
		by[x.ID] = x.Status + " " + x.Message + " fix: " + x.Fix
	}
	if !doc.OK || r.code != 0 {
		t.Errorf("check says run cannot work (exit %d):\n%s", r.code, r.stdout)
	}
	if k := by["kernel"]; !strings.HasPrefix(k, "WARN") || !strings.Contains(k, "fuse-overlayfs") {
		t.Errorf("kernel line: %s", k)
	}
	if o := by["overlayfs"]; strings.Contains(o, "AppArmor") || !strings.Contains(o, "older than 5.11") {
		t.Errorf("overlayfs line blames the wrong cause: %s", o)
	}
	if run := by["run"]; !strings.HasPrefix(run, "OK") && !strings.HasPrefix(run, "WARN") {
		t.Errorf("run line: %s", run)
	}
}
