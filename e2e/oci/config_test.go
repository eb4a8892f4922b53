package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestOCIConfigHostile: malformed, truncated and hostile config.json
// documents make create exit 125 with one line naming the field, leave no
// container and touch no host path.
func TestOCIConfigHostile(t *testing.T) {
	cases := []struct {
		name string
		edit func(s *specs.Spec)
		raw  func(doc []byte) []byte // instead of edit: the document itself
		want string
	}{
		{name: "unknown namespace", edit: func(s *specs.Spec) { s.Linux.Namespaces[2].Type = "foo" },
			want: `linux.namespaces[2].type: unknown namespace type "foo"`},
		{name: "duplicate namespace", edit: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}, want: "linux.namespaces[6].type"},
		{name: "mapping overlap", edit: func(s *specs.Spec) { s.Linux.UIDMappings[1].ContainerID = 0 },
			want: "linux.uidMappings[1]: overlaps [0]"},
		{name: "root leaves the bundle", edit: func(s *specs.Spec) { s.Root.Path = "../../../../../../" },
			want: "root.path"},
		{name: "no root", edit: func(s *specs.Spec) { s.Root.Path = "/nonexistent-rootfs" }, want: "root.path"},
		{name: "relative cwd", edit: func(s *specs.Spec) { s.Process.Cwd = "tmp" }, want: "process.cwd"},
		{name: "no args", edit: func(s *specs.Spec) { s.Process.Args = nil }, want: "process.args"},
		{name: "version 2", edit: func(s *specs.Spec) { s.Version = "2.0.0" }, want: "ociVersion"},
		{name: "hostname without uts", edit: func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.UserNamespace}, {Type: specs.MountNamespace}}
		}, want: "hostname"},
		{name: "enormous mounts", edit: func(s *specs.Spec) {
			for len(s.Mounts) <= 4096 {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
			}
		}, want: "mounts: 4097 entries, more than the 4096 allowed"},
		{name: "enormous env", edit: func(s *specs.Spec) {
			for len(s.Process.Env) <= 65536 {
				s.Process.Env = append(s.Process.Env, "A=b")
			}
		}, want: "process.env"},
		{name: "truncated", raw: func(doc []byte) []byte { return doc[:len(doc)/2] }, want: "config.json: truncated"},
		{name: "not json", raw: func([]byte) []byte { return []byte("\x00\x01garbage") }, want: "config.json"},
		{name: "wrong type", raw: func([]byte) []byte {
			return []byte(`{"ociVersion":"1.0.2","process":{"args":"sh","cwd":"/"},"root":{"path":"rootfs"}}`)
		}, want: "process.args"},
		{name: "too big", raw: func(doc []byte) []byte {
			return []byte(strings.Replace(string(doc), "{", `{"pad":"`+strings.Repeat("x", 5<<20)+`",`, 1))
		}, want: "more than the 4194304 allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			rootfs := busyboxRootfs(t, dir)
			s := rootlessSpec(t, rootfs, "touch", "/host-was-touched")
			s.Root.Path = "rootfs"
			if c.edit != nil {
				c.edit(s)
			}
			bundle(t, dir, s)
			if c.raw != nil {
				doc, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "config.json"), c.raw(doc), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			root := filepath.Join(dir, "state")
			t.Cleanup(func() { oci(t, root, "delete", "--force", "hostile") })
			r := oci(t, root, "create", "--bundle", dir, "hostile")
			checkRefused(t, r, root, "hostile", c.want)
			if _, err := os.Stat(filepath.Join(rootfs, "host-was-touched")); err == nil {
				t.Fatal("the container's process ran")
			}
		})
	}
}
