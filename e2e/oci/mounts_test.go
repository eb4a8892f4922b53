package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestOCIMounts runs a rootless container through sandbox-oci with a
// tmpfs, a read-only bind, masked and read-only paths, a read-only root and
// a mount through a symlink that points out of the rootfs, and checks all
// of it from inside (and the host directory from outside).
func TestOCIMounts(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, dir)
	host := filepath.Join(dir, "hostdir")
	vol := filepath.Join(dir, "vol")
	for _, d := range []string{host, vol, filepath.Join(rootfs, "masked-dir"), filepath.Join(rootfs, "ro-dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range map[string]string{
		filepath.Join(vol, "data"):                 "volume-data",
		filepath.Join(rootfs, "etc/secret"):        "secret",
		filepath.Join(rootfs, "masked-dir/secret"): "secret",
	} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(host, filepath.Join(rootfs, "evil")); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"echo tmpfs-ok > /data/f && cat /data/f",
		"touch /vol/new 2>/dev/null && echo VOL-WRITABLE",
		"cat /vol/data; echo",
		"echo secret=[$(cat /etc/secret)]",
		"echo masked-dir=$(ls /masked-dir | wc -l)",
		"touch /ro-dir/x 2>/dev/null && echo RO-DIR-WRITABLE",
		"touch /newfile 2>/dev/null && echo ROOT-WRITABLE",
		"touch /proc/sys/kernel/hostname 2>/dev/null; echo x > /proc/sys/kernel/hostname 2>/dev/null && echo PROC-SYS-WRITABLE",
		"for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo dev-$d; done",
		"echo ptmx=$(readlink /dev/ptmx) fd=$(readlink /dev/fd)",
		"echo escape > /evil/x/f && echo evil-ok",
		"cat /proc/self/mountinfo",
		"true",
	}, "\n")
	s := rootlessSpec(t, rootfs, "sh", "-c", script)
	s.Root.Readonly = true
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=1m"}},
		specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"},
	)
	s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/etc/secret", "/masked-dir")
	s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/ro-dir")
	bundle(t, dir, s)

	root := filepath.Join(dir, "state")
	id := "mounts-" + strings.ToLower(filepath.Base(dir))
	t.Cleanup(func() { oci(t, root, "delete", "--force", id) })
	r := oci(t, root, "run", "--bundle", dir, id)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	out := r.stdout
	for _, want := range []string{
		"tmpfs-ok", "volume-data", "secret=[]", "masked-dir=0", "evil-ok",
		"dev-null", "dev-zero", "dev-full", "dev-random", "dev-urandom", "dev-tty",
		"ptmx=pts/ptmx fd=/proc/self/fd",
		" " + host + "/x ", // the tmpfs through evil, inside the container's root
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, r)
		}
	}
	for _, bad := range []string{"VOL-WRITABLE", "RO-DIR-WRITABLE", "ROOT-WRITABLE", "PROC-SYS-WRITABLE"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s\n%s", bad, r)
		}
	}
	if ents, err := os.ReadDir(host); err != nil || len(ents) != 0 {
		t.Errorf("the host directory behind the rootfs's symlink was touched: %v %v", ents, err)
	}
	if _, err := os.Stat(filepath.Join(vol, "new")); err == nil {
		t.Error("the read-only volume was written")
	}
}

// TestOCIMountsRefused: mounts the runtime cannot honour are refused at
// create with one line naming the field, and nothing is left behind.
func TestOCIMountsRefused(t *testing.T) {
	cases := []struct {
		name string
		edit func(s *specs.Spec)
		want string
	}{
		{"relative destination", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "data", Type: "tmpfs", Source: "tmpfs"})
		}, "mounts[6].destination"},
		{"dotdot destination", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp/../../x", Type: "tmpfs", Source: "tmpfs"})
		}, "mounts[6].destination"},
		{"unknown type", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "ext4", Source: "/dev/sda1"})
		}, "mounts[6].type"},
		{"idmap", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/tmp", Options: []string{"rbind", "idmap"}})
		}, "mounts[6].options"},
		{"bad propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" }, "linux.rootfsPropagation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			rootfs := busyboxRootfs(t, dir)
			s := rootlessSpec(t, rootfs, "true")
			c.edit(s)
			bundle(t, dir, s)
			root := filepath.Join(dir, "state")
			t.Cleanup(func() { oci(t, root, "delete", "--force", "bad") })
			r := oci(t, root, "create", "--bundle", dir, "bad")
			checkRefused(t, r, root, "bad", c.want)
		})
	}
}

// checkRefused: exit 125, one stderr line naming field, no container.
func checkRefused(t *testing.T, r result, root, id, field string) {
	t.Helper()
	if r.code != 125 {
		t.Fatalf("exit %d, want 125\n%s", r.code, r)
	}
	msg := strings.TrimSpace(r.stderr)
	if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "sandbox-oci: ") || !strings.Contains(msg, field) {
		t.Fatalf("stderr is not one line `sandbox-oci: ...` naming %s\n%s", field, r)
	}
	if _, err := os.Stat(filepath.Join(root, id)); err == nil {
		t.Fatalf("a state directory was left behind for %s", id)
	}
}
