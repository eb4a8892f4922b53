package mounts

import (
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func okSpec() *specs.Spec {
	return &specs.Spec{
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/etc/hosts", Type: "bind", Source: "/etc/hosts", Options: []string{"rprivate", "rro"}},
			{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "nosuid"}},
		},
		Linux: &specs.Linux{
			RootfsPropagation: "rslave",
			MaskedPaths:       []string{"/proc/kcore"},
			ReadonlyPaths:     []string{"/proc/sys"},
			Devices:           []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}},
		},
	}
}

func TestCheckAccepts(t *testing.T) {
	if err := Check(okSpec(), "/rootfs"); err != nil {
		t.Fatal(err)
	}
}

func TestCheckRefuses(t *testing.T) {
	cases := []struct {
		name string
		edit func(s *specs.Spec)
		want string // the error starts with it
	}{
		{"relative rootfs", func(s *specs.Spec) {}, "root.path:"},
		{"relative destination", func(s *specs.Spec) { s.Mounts[1].Destination = "dev" }, "mounts[1].destination:"},
		{"empty destination", func(s *specs.Spec) { s.Mounts[0].Destination = "" }, "mounts[0].destination:"},
		{"dotdot destination", func(s *specs.Spec) { s.Mounts[2].Destination = "/dev/../../etc" }, "mounts[2].destination:"},
		{"unknown type", func(s *specs.Spec) { s.Mounts[0].Type = "ext4" }, "mounts[0].type:"},
		{"none without bind", func(s *specs.Spec) { s.Mounts[3].Options = []string{"ro"} }, "mounts[3].type:"},
		{"idmap", func(s *specs.Spec) { s.Mounts[5].Options = append(s.Mounts[5].Options, "idmap") }, "mounts[5].options: option \"idmap\": id-mapped mounts are not supported"},
		{"ridmap", func(s *specs.Spec) { s.Mounts[5].Options = []string{"ridmap"} }, "mounts[5].options:"},
		{"mount mappings", func(s *specs.Spec) {
			s.Mounts[5].UIDMappings = []specs.LinuxIDMapping{{Size: 1}}
		}, "mounts[5].uidMappings:"},
		{"empty option", func(s *specs.Spec) { s.Mounts[1].Options = []string{""} }, "mounts[1].options:"},
		{"bind without source", func(s *specs.Spec) { s.Mounts[5].Source = "" }, "mounts[5].source:"},
		{"tmpcopyup on a bind", func(s *specs.Spec) { s.Mounts[5].Options = []string{"tmpcopyup"} }, "mounts[5].options:"},
		{"bad propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "everywhere" }, "linux.rootfsPropagation:"},
		{"relative masked", func(s *specs.Spec) { s.Linux.MaskedPaths = []string{"/a", "proc/kcore"} }, "linux.maskedPaths[1]:"},
		{"dotdot readonly", func(s *specs.Spec) { s.Linux.ReadonlyPaths = []string{"/../etc"} }, "linux.readonlyPaths[0]:"},
		{"device path", func(s *specs.Spec) { s.Linux.Devices[0].Path = "dev/fuse" }, "linux.devices[0].path:"},
		{"device type", func(s *specs.Spec) { s.Linux.Devices[0].Type = "x" }, "linux.devices[0].type:"},
		{"device mode", func(s *specs.Spec) {
			m := os.ModeDevice | 0o666
			s.Linux.Devices[0].FileMode = &m
		}, "linux.devices[0].fileMode:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := okSpec()
			c.edit(s)
			root := "/rootfs"
			if c.name == "relative rootfs" {
				root = "rootfs"
			}
			err := Check(s, root)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %q does not start with %q", err, c.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions([]string{"rbind", "ro", "nosuid", "rw", "mode=755", "size=1m", "rslave", "rnoexec", "rnoatime", "tmpcopyup", "noatime"})
	if err != nil {
		t.Fatal(err)
	}
	if o.flags != unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID|unix.MS_NOATIME || o.clear != unix.MS_RDONLY {
		t.Errorf("flags %#x clear %#x", o.flags, o.clear)
	}
	if strings.Join(o.data, ",") != "mode=755,size=1m" {
		t.Errorf("data %q", o.data)
	}
	if len(o.prop) != 1 || o.prop[0] != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("propagation %v", o.prop)
	}
	if o.rset != unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOATIME || o.rclr != unix.MOUNT_ATTR__ATIME {
		t.Errorf("recursive set %#x clr %#x", o.rset, o.rclr)
	}
	if !o.copyUp || !o.atime {
		t.Error("tmpcopyup or atime lost")
	}
	if o, _ := parseOptions([]string{"tmpcopyup", "notmpcopyup"}); o.copyUp || len(o.data) != 0 {
		t.Errorf("notmpcopyup: copyUp %v data %q", o.copyUp, o.data)
	}
	set, clr := attrs(o.flags, o.clear, o.atime)
	if set != unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOATIME || clr != unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR__ATIME {
		t.Errorf("attrs set %#x clr %#x", set, clr)
	}
}
