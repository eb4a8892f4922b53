//go:build ociroot

package ociroot

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestOCIRootMounts: as real root (no user namespace) devices are made by
// mknod with the mode and owner asked for, and the root filesystem's
// policies hold: masked and read-only paths, root.readonly, a read-only
// bind, a mount through a symlink out of the rootfs landing inside.
func TestOCIRootMounts(t *testing.T) {
	requireRoot(t)
	rt := runtimePath(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	host := filepath.Join(dir, "hostdir")
	vol := filepath.Join(dir, "vol")
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "tmp", "ro-dir"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{host, vol} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb := requireCommand(t, "busybox", "busybox-static")
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			_ = os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(rootfs, "evil")); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		`stat -c "%n %a %u %g %t:%T %F" /dev/fuse /dev/null /dev/zero /dev/tty`,
		"echo secret=[$(cat /etc/secret)]",
		"touch /ro-dir/x 2>/dev/null && echo RO-DIR-WRITABLE",
		"touch /x 2>/dev/null && echo ROOT-WRITABLE",
		"touch /vol/x 2>/dev/null && echo VOL-WRITABLE",
		"echo ptmx=$(readlink /dev/ptmx)",
		"echo in > /evil/x/f && echo evil-ok",
		"true",
	}, "\n")
	mode := os.FileMode(0o600)
	five, six := uint32(5), uint32(6)
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: "ociroot-mounts",
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"}, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"},
			},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "ro"}},
			{Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
			Devices:       []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode, UID: &five, GID: &six}},
			MaskedPaths:   []string{"/etc/secret", "/proc/kcore"},
			ReadonlyPaths: []string{"/ro-dir", "/proc/sys"},
		},
	}
	doc, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	id := "ociroot-mounts-" + strings.ToLower(filepath.Base(dir))
	t.Cleanup(func() { run(t, 30*time.Second, rt, "--root", state, "delete", "--force", id) })
	r := run(t, 60*time.Second, rt, "--root", state, "run", "--bundle", dir, id)
	if r.code != 0 {
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"/dev/fuse 600 5 6 a:e5 character special file",
		"/dev/null 666 0 0 1:3 character special file",
		"/dev/zero 666 0 0 1:5 character special file",
		"/dev/tty 666 0 0 5:0 character special file",
		"secret=[]", "ptmx=pts/ptmx", "evil-ok",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", want, r.stdout, r.stderr)
		}
	}
	for _, bad := range []string{"RO-DIR-WRITABLE", "ROOT-WRITABLE", "VOL-WRITABLE"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("%s\nstdout: %s", bad, r.stdout)
		}
	}
	if ents, err := os.ReadDir(host); err != nil || len(ents) != 0 {
		t.Errorf("the host directory behind the rootfs's symlink was touched: %v %v", ents, err)
	}
}
