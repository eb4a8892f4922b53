package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/internal/testenv"
)

const cmdTimeout = 30 * time.Second

// ociBin is bin/sandbox-oci beside $SANDBOX_BIN (scripts/build.sh builds both).
func ociBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("SANDBOX_BIN")
	testenv.RequireOrSkip(t, bin != "", "SANDBOX_BIN (set by scripts/test.sh)")
	p := filepath.Join(filepath.Dir(bin), "sandbox-oci")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("sandbox-oci: %v (scripts/build.sh builds it beside sandbox)", err)
	}
	return p
}

// busyboxRootfs makes dir/rootfs: busybox-static with its applets linked,
// and the few files a container expects.
func busyboxRootfs(t testing.TB, dir string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		bb = "/bin/busybox"
	}
	_, err = os.Stat(bb)
	testenv.RequireOrSkip(t, err == nil, "busybox (Debian package busybox-static)")
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		_ = os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// subidStart is the first subordinate id of the current user in file
// (/etc/subuid or /etc/subgid), and how many.
func subidStart(t testing.TB, file string) (uint32, uint32) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	uid := strconv.Itoa(os.Getuid())
	name := ""
	if out, err := exec.Command("id", "-un").Output(); err == nil {
		name = strings.TrimSpace(string(out))
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 3 && (f[0] == name || f[0] == uid) {
			s, err1 := strconv.ParseUint(f[1], 10, 32)
			n, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 == nil && err2 == nil {
				return uint32(s), uint32(n)
			}
		}
	}
	t.Fatalf("%s has no range for %s (scripts/setup-host.sh gives sbxtest one)", file, name)
	return 0, 0
}

// rootlessSpec is a spec like `runc spec --rootless` over rootfs, but with
// the caller's subordinate range mapped above 0 (ids 1..65535 exist inside):
// root inside is the caller, the sandbox's usual mapping.
func rootlessSpec(t testing.TB, rootfs string, args ...string) *specs.Spec {
	t.Helper()
	us, un := subidStart(t, "/etc/subuid")
	gs, gn := subidStart(t, "/etc/subgid")
	if un > 65535 {
		un = 65535
	}
	if gn > 65535 {
		gn = 65535
	}
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: "oci-test",
		Root:     &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/bin", "TERM=xterm"},
			Cwd:  "/",
			User: specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps,
				Effective: defaultCaps,
				Permitted: defaultCaps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getuid()), Size: 1}, {ContainerID: 1, HostID: us, Size: un}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getgid()), Size: 1}, {ContainerID: 1, HostID: gs, Size: gn}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.UserNamespace}, {Type: specs.NetworkNamespace},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

var defaultCaps = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}

// bundle writes s as dir/config.json (dir holds rootfs) and returns dir.
func bundle(t testing.TB, dir string, s *specs.Spec) string {
	t.Helper()
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// oci runs sandbox-oci with --root root and args, bounded by cmdTimeout.
// Its output goes to files, not pipes: a created container keeps the
// stdio it was given, and a pipe would hold the wait until it ends.
func oci(t testing.TB, root string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociBin(t), append([]string{"--root", root}, args...)...)
	dir := t.TempDir()
	var files [2]*os.File
	for i, name := range []string{"stdout", "stderr"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	cmd.Stdout, cmd.Stderr = files[0], files[1]
	err := cmd.Run()
	o, _ := os.ReadFile(files[0].Name())
	e, _ := os.ReadFile(files[1].Name())
	r := result{stdout: string(o), stderr: string(e)}
	if ctx.Err() != nil {
		t.Fatalf("sandbox-oci %v: timed out after %v\n%s", args, cmdTimeout, r)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sandbox-oci %v: %v", args, err)
	}
	return r
}
