package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// good is a minimal valid spec over bundle/rootfs.
func good(t *testing.T) (string, *specs.Spec) {
	t.Helper()
	bundle := t.TempDir()
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bundle, &specs.Spec{
		Version:  "1.0.2",
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "h",
		Process:  &specs.Process{Args: []string{"sh"}, Cwd: "/", Env: []string{"PATH=/bin"}},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.UTSNamespace}, {Type: specs.UserNamespace},
			},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
		},
	}
}

func write(t *testing.T, bundle string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadGood(t *testing.T) {
	bundle, s := good(t)
	data, _ := json.Marshal(s)
	// Unknown fields are allowed, as runc allows them.
	data = []byte(strings.Replace(string(data), "{", `{"someEngineExtension":{"x":1},`, 1))
	write(t, bundle, data)
	got, err := Load(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if p := RootPath(got, bundle); p != filepath.Join(bundle, "rootfs") {
		t.Errorf("RootPath = %q", p)
	}
	s = &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/a", Type: "bind", Source: "vol"},
		{Destination: "/b", Type: "none", Source: "../vol", Options: []string{"rbind"}},
		{Destination: "/c", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/d", Type: "bind", Source: "/abs"},
	}}
	AbsBindSources(s, bundle)
	for i, want := range []string{filepath.Join(bundle, "vol"), filepath.Join(filepath.Dir(bundle), "vol"), "tmpfs", "/abs"} {
		if s.Mounts[i].Source != want {
			t.Errorf("mounts[%d].source = %q, want %q", i, s.Mounts[i].Source, want)
		}
	}
	abs := &specs.Spec{Root: &specs.Root{Path: "/x/../y"}}
	if p := RootPath(abs, bundle); p != "/y" {
		t.Errorf("RootPath(absolute) = %q", p)
	}
}

func TestCheckRefuses(t *testing.T) {
	many := func(n int) []string { return make([]string, n) }
	cases := []struct {
		name  string
		edit  func(s *specs.Spec)
		field string // the error must start with it
	}{
		{"no version", func(s *specs.Spec) { s.Version = "" }, "ociVersion:"},
		{"version 2", func(s *specs.Spec) { s.Version = "2.0.0" }, "ociVersion:"},
		{"version junk", func(s *specs.Spec) { s.Version = "x" }, "ociVersion:"},
		{"no root", func(s *specs.Spec) { s.Root = nil }, "root.path:"},
		{"missing root", func(s *specs.Spec) { s.Root.Path = "nothere" }, "root.path:"},
		{"root leaves bundle", func(s *specs.Spec) { s.Root.Path = "../../../" }, "root.path:"},
		{"root is a file", func(s *specs.Spec) { s.Root.Path = "config.json" }, "root.path:"},
		{"root is the host's", func(s *specs.Spec) { s.Root.Path = "/" }, "root.path:"},
		{"root is the host's by a link", func(s *specs.Spec) { s.Root.Path = "slash" }, "root.path:"},
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args:"},
		{"empty arg0", func(s *specs.Spec) { s.Process.Args = []string{""} }, "process.args[0]:"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "tmp" }, "process.cwd:"},
		{"bad env", func(s *specs.Spec) { s.Process.Env = []string{"PATH=/bin", "=x"} }, "process.env[1]:"},
		{"too many args", func(s *specs.Spec) { s.Process.Args = append([]string{"sh"}, many(MaxArgs)...) }, "process.args:"},
		{"too many env", func(s *specs.Spec) { s.Process.Env = many(MaxEnv + 1) }, "process.env:"},
		{"too many rlimits", func(s *specs.Spec) { s.Process.Rlimits = make([]specs.POSIXRlimit, MaxRlimits+1) }, "process.rlimits:"},
		{"too many mounts", func(s *specs.Spec) { s.Mounts = make([]specs.Mount, MaxMounts+1) }, "mounts:"},
		{"too many devices", func(s *specs.Spec) { s.Linux.Devices = make([]specs.LinuxDevice, MaxDevices+1) }, "linux.devices:"},
		{"too many masked", func(s *specs.Spec) { s.Linux.MaskedPaths = many(MaxPaths + 1) }, "linux.maskedPaths:"},
		{"too many readonly", func(s *specs.Spec) { s.Linux.ReadonlyPaths = many(MaxPaths + 1) }, "linux.readonlyPaths:"},
		{"too many sysctl", func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{}
			for i := 0; i <= MaxSysctl; i++ {
				s.Linux.Sysctl[strings.Repeat("k", 1)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = "1"
			}
		}, "linux.sysctl:"},
		{"too many hooks", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: make([]specs.Hook, MaxHooks+1)}
		}, "hooks.createRuntime:"},
		{"relative hook", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}, {Path: "true"}}}
		}, "hooks.poststop[1].path:"},
		{"too many syscalls", func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{Syscalls: make([]specs.LinuxSyscall, MaxSyscalls+1)}
		}, "linux.seccomp.syscalls:"},
		{"too many syscall names", func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{{Names: many(MaxSyscalls + 1)}}}
		}, "linux.seccomp.syscalls:"},
		{"unknown namespace", func(s *specs.Spec) {
			s.Linux.Namespaces[2].Type = "foo"
		}, `linux.namespaces[2].type: unknown namespace type "foo"`},
		{"duplicate namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}, "linux.namespaces[4].type:"},
		{"relative ns path", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "proc/1/ns/net"})
		}, "linux.namespaces[4].path:"},
		{"overlap inside", func(s *specs.Spec) {
			s.Linux.UIDMappings[1].ContainerID = 0
		}, "linux.uidMappings[1]: overlaps [0]"},
		{"overlap outside", func(s *specs.Spec) {
			s.Linux.GIDMappings = append(s.Linux.GIDMappings, specs.LinuxIDMapping{ContainerID: 5, HostID: 1000, Size: 2})
		}, "linux.gidMappings[1]: overlaps [0]"},
		{"size 0", func(s *specs.Spec) { s.Linux.UIDMappings[0].Size = 0 }, "linux.uidMappings[0].size:"},
		{"past 2^32", func(s *specs.Spec) {
			s.Linux.UIDMappings[1] = specs.LinuxIDMapping{ContainerID: 4294967295, HostID: 5, Size: 2}
		}, "linux.uidMappings[1]:"},
		{"too many map lines", func(s *specs.Spec) {
			s.Linux.UIDMappings = nil
			for i := uint32(0); i <= MaxMapLines; i++ {
				s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: i, HostID: 1000 + i, Size: 1})
			}
		}, "linux.uidMappings:"},
		{"maps without userns", func(s *specs.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[:3] }, "linux.uidMappings:"},
		{"userns without maps", func(s *specs.Spec) { s.Linux.GIDMappings = nil }, "linux.gidMappings:"},
		{"hostname without uts", func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.UserNamespace}}
		}, "hostname:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bundle, s := good(t)
			write(t, bundle, []byte("{}"))
			if err := os.Symlink("/", filepath.Join(bundle, "slash")); err != nil {
				t.Fatal(err)
			}
			c.edit(s)
			err := Check(s, bundle)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.HasPrefix(err.Error(), c.field) {
				t.Fatalf("error %q does not start with %q", err, c.field)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is more than one line: %q", err)
			}
		})
	}
}

func TestReadMalformed(t *testing.T) {
	bundle, s := good(t)
	full, _ := json.Marshal(s)
	cases := []struct {
		name, doc, want string
	}{
		{"truncated", string(full[:len(full)/2]), "config.json: truncated"},
		{"not json", "hello", "config.json: byte"},
		{"wrong type", `{"ociVersion":"1.0.0","process":{"args":"sh"}}`, "process.args:"},
		{"wrong type deep", `{"ociVersion":"1.0.0","linux":{"uidMappings":[{"size":-1}]}}`, "linux.uidMappings.size:"},
		{"array root", `[]`, "config.json:"},
		{"empty", ``, "config.json:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			write(t, bundle, []byte(c.doc))
			_, err := Load(bundle)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %v, want prefix %q", err, c.want)
			}
		})
	}
}

func TestReadTooBig(t *testing.T) {
	bundle, _ := good(t)
	write(t, bundle, []byte(`{"ociVersion":"1.0.0","x":"`+strings.Repeat("a", MaxSize)+`"}`))
	_, err := Read(bundle)
	if err == nil || !strings.Contains(err.Error(), "bytes, more than the 4194304 allowed") {
		t.Fatalf("error %v", err)
	}
	if _, err := Read(filepath.Join(bundle, "nothere")); err == nil || !strings.HasPrefix(err.Error(), "config.json:") {
		t.Fatalf("missing config.json: %v", err)
	}
}
