//go:build linux && vmguest && vmsystemd

package guest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandbox/internal/testimage"
)

// The root pass of the systemd guest (vm/systemd_test.go): Debian 12's
// containerd 1.6 and podman 4.3, as root, with sandbox-oci as their runtime,
// on a pure cgroup v2 host whose PID 1 is systemd 252: linux.resources as
// the engines write them, read back from the container's cgroup.

// ociBin is sandbox-oci, passed into the guest by the host test.
func ociBin(t *testing.T) string {
	t.Helper()
	return passedIn(t, "SANDBOX_OCI_BIN", "sandbox-oci")
}

// busyboxBin is the host's static busybox, passed into the VM.
func busyboxBin(t *testing.T) string {
	t.Helper()
	return passedIn(t, "BUSYBOX_BIN", "its static busybox")
}

// rootfsTar is a busybox root filesystem as a tar stream (testimage.Rootfs).
func rootfsTar(t *testing.T) []byte {
	t.Helper()
	raw, err := testimage.Rootfs(busyboxBin(t))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRootOCIContainerd: containerd (its systemd unit) with sandbox-oci
// through the runc v2 shim (ctr --runc-binary): --memory-limit becomes the
// container's memory.max and allocating beyond it is OOM-killed;
// --cpu-shares becomes cpu.weight (runc's map: 512 → 20).
// ctr 1.6 has no pids flag: linux.resources.pids is the podman test's.
func TestRootOCIContainerd(t *testing.T) {
	rt := ociBin(t)
	// The unit is enabled by the package; wait (bounded) until it answers.
	if r := command(t, "systemctl", "start", "containerd.service"); r.code != 0 || r.err != nil {
		t.Fatalf("starting containerd: %s", r)
	}
	var r result
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if r = command(t, "ctr", "version"); r.code == 0 && r.err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer within 60s: %s", r)
		}
	}
	const ref = "sandbox.test/busybox:latest"
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	if err := testimage.Archive(archive, ref, busyboxBin(t)); err != nil {
		t.Fatal(err)
	}
	// native: overlayfs is a module this guest does not load.
	ctr := func(args ...string) result {
		return command(t, "ctr", append([]string{"--namespace", "sbxvm"}, args...)...)
	}
	if r := ctr("image", "import", "--snapshotter", "native", archive); r.code != 0 || r.err != nil {
		t.Fatalf("ctr image import: %s", r)
	}
	const id = "c-limits"
	t.Cleanup(func() {
		ctr("task", "kill", "--signal", "SIGKILL", id)
		ctr("task", "delete", "--force", id)
		ctr("container", "delete", id)
	})
	// ctr's spec mounts no /sys/fs/cgroup: read containerd's /NAMESPACE/ID
	// cgroup from here.
	if r = ctr("run", "-d", "--snapshotter", "native", "--runc-binary", rt,
		"--memory-limit", "33554432", "--cpu-shares", "512", ref, id, "sleep", "120"); r.code != 0 || r.err != nil {
		t.Fatalf("ctr run -d: %s", r)
	}
	cg := "/sys/fs/cgroup/sbxvm/" + id
	for f, want := range map[string]string{"memory.max": "33554432", "cpu.weight": "20"} {
		if got := cgFile(t, cg, f); got != want {
			t.Errorf("%s/%s = %q, want %q", cg, f, got, want)
		}
	}
	// A process exec'd into it allocating past the limit: OOM-killed.
	r = ctr("task", "exec", "--exec-id", "oom", id, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	if r.code != 137 || r.err != nil {
		t.Errorf("ctr task exec dd bs=64M: want exit 137 (OOM-killed), got %s", r)
	}
	if ev := cgFile(t, cg, "memory.events"); !strings.Contains(ev, "\noom_kill 1") {
		t.Errorf("%s/memory.events after the exec:\n%s\nwant oom_kill 1", cg, ev)
	}
	ctr("task", "kill", "--signal", "SIGKILL", id)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if r = ctr("task", "delete", id); r.code == 0 || time.Now().After(deadline) {
			break
		}
	}
	if r = ctr("container", "delete", id); r.code != 0 || r.err != nil {
		t.Fatalf("ctr container delete: %s", r)
	}
	// The container's own process over the limit: ctr reports its 137.
	r = ctr("run", "--rm", "--snapshotter", "native", "--runc-binary", rt,
		"--memory-limit", "33554432", ref, id, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	if r.code != 137 || r.err != nil {
		t.Errorf("ctr run of dd bs=64M under --memory-limit 32 MiB: want exit 137 (OOM-killed), got %s", r)
	}
}

// podmanCmd runs podman as root with sandbox-oci, storage of the test's own
// (vfs: overlayfs is a module this guest does not load), systemd's cgroup
// manager (the default: sandbox-oci gets --systemd-cgroup and a
// machine.slice:libpod:ID path).
func podmanCmd(t *testing.T, rt, dir string, args ...string) result {
	t.Helper()
	g := []string{"--runtime", rt, "--cgroup-manager", "systemd", "--storage-driver", "vfs",
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"), "--events-backend", "file"}
	return command(t, "podman", append(g, args...)...)
}

// podmanDir is a directory for podman's storage, removed when the test
// ends, after the test's own cleanups (podman rm): what podman starts when
// a container exits (conmon runs `podman container cleanup`, which writes
// its event and exit files) may still write there just after `podman rm`
// returns, and t.TempDir's one removal then failed with "directory not
// empty". The removal is retried, bounded, before it fails the test.
func podmanDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbxvm-podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("removing podman's directory: %v", err)
				return
			}
		}
	})
	return dir
}

// TestRootOCIPodman: podman run --memory 32m --pids-limit 8 → memory.max
// and pids.max of the container's cgroup (its namespace), a fork loop past
// 8 fails, dd past 32 MiB is OOM-killed (137), the container is in
// systemd's machine.slice/libpod-ID.scope, and podman update changes a
// running container's memory.max.
func TestRootOCIPodman(t *testing.T) {
	rt := ociBin(t)
	dir := podmanDir(t)
	podman := func(args ...string) result { return podmanCmd(t, rt, dir, args...) }
	tarPath := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarPath, rootfsTar(t), 0o644); err != nil {
		t.Fatal(err)
	}
	const img = "localhost/sbxvm-busybox:latest"
	if r := podman("import", tarPath, img); r.code != 0 || r.err != nil {
		t.Fatalf("podman import: %s", r)
	}
	runArgs := []string{"run", "--rm", "--network", "none", "--memory", "32m", "--pids-limit", "8", img}
	r := podman(append(runArgs, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max")...)
	if r.code != 0 || r.err != nil || r.stdout != "33554432\n8\n" {
		t.Errorf("podman run cat memory.max pids.max: want 33554432 and 8, got %s", r)
	}
	// 12 background sleeps with 8 tasks allowed: the shell says it cannot fork.
	r = podman(append(runArgs, "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 2 & done 2>&1; wait")...)
	if r.err != nil || !strings.Contains(r.stdout+r.stderr, "can't fork") {
		t.Errorf("a fork loop past --pids-limit 8: want \"can't fork\", got %s", r)
	}
	r = podman(append(runArgs, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")...)
	if r.code != 137 || r.err != nil {
		t.Errorf("dd bs=64M under --memory 32m: want exit 137 (OOM-killed), got %s", r)
	}

	r = podman("run", "-d", "--network", "none", "--memory", "32m", img, "sleep", "120")
	if r.code != 0 || r.err != nil {
		t.Fatalf("podman run -d: %s", r)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { podman("rm", "--force", "--time", "0", id) })
	r = podman("inspect", "--format", "{{.State.Pid}} {{.OCIRuntime}}", id)
	pid, ociRuntime, _ := strings.Cut(strings.TrimSpace(r.stdout), " ")
	if r.code != 0 || pid == "" || pid == "0" {
		t.Fatalf("podman inspect: %s", r)
	}
	if filepath.Base(ociRuntime) != filepath.Base(rt) {
		t.Errorf("podman inspect: the container's runtime %q, want %s", ociRuntime, rt)
	}
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	cg := "/sys/fs/cgroup" + strings.TrimPrefix(strings.TrimSpace(string(b)), "0::")
	if want := "/machine.slice/libpod-" + id + ".scope"; !strings.HasSuffix(cg, want) {
		t.Errorf("the container's cgroup %s, want systemd's %s (--systemd-cgroup)", cg, want)
	}
	if r := command(t, "systemctl", "is-active", "libpod-"+id+".scope"); r.stdout != "active\n" {
		t.Errorf("the scope libpod-%s.scope: %s, want active", id, r)
	}
	if got := cgFile(t, cg, "memory.max"); got != "33554432" {
		t.Errorf("memory.max %q, want 33554432", got)
	}
	if r = podman("update", "--memory", "64m", id); r.code != 0 || r.err != nil {
		t.Fatalf("podman update --memory 64m: %s", r)
	}
	if got := cgFile(t, cg, "memory.max"); got != "67108864" {
		t.Errorf("memory.max after podman update --memory 64m: %q, want 67108864", got)
	}
}
