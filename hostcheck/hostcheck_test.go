package hostcheck

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"sandbox/idmap"
)

func good() Facts {
	return Facts{
		User: "alice", UID: 1000, Kernel: "6.18.44-fc", MaxUserNS: "15000",
		UIDRanges:  []idmap.Range{{Start: 100000, Count: 65536}},
		GIDRanges:  []idmap.Range{{Start: 100000, Count: 65536}},
		HelperErrs: []error{nil, nil},
		Tun:        DevAccess{Path: "/dev/net/tun", Exists: true, Mode: 0o666},
		Fuse:       DevAccess{Path: "/dev/fuse", Exists: true, Mode: 0o666},
		RootFSType: "ext4", LandlockABI: 7, Seccomp: true,
		Cgroup: CgroupFacts{
			Mount: "/sys/fs/cgroup", Base: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/vmtest.scope",
			Delegated: true, Root: []string{"cpuset", "cpu", "io", "memory", "pids"}, Available: []string{"cpu", "io", "memory", "pids"},
		},
	}
}

func find(t *testing.T, rs []Result, name string) Result {
	t.Helper()
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %q result in %+v", name, rs)
	return Result{}
}

func TestHealthyHost(t *testing.T) {
	rs := Judge(good())
	for _, r := range rs {
		if r.Level != OK {
			t.Errorf("%s: %s %s", r.Name, r.Level, r.Detail)
		}
	}
	if Failed(rs) {
		t.Error("healthy host reported as failed")
	}
}

func TestShapes(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Facts)
		result string
		level  Level
		inFix  string
	}{
		{"old kernel", func(f *Facts) { f.Kernel = "5.10.0-21-amd64" }, "kernel", Fail, "upgrade"},
		{"rc kernel", func(f *Facts) { f.Kernel = "5.11-rc1" }, "kernel", OK, ""},
		{"userns off", func(f *Facts) { f.MaxUserNS = "0" }, "user namespaces", Fail, "max_user_namespaces"},
		{"debian sysctl", func(f *Facts) { f.UnprivUserNSClone = "0" }, "user namespaces", Fail, "unprivileged_userns_clone=1"},
		{"ubuntu apparmor", func(f *Facts) { f.AppArmorRestrict = "1" }, "user namespaces", Fail, "apparmor_restrict_unprivileged_userns=0"},
		{"no ranges", func(f *Facts) { f.UIDRanges = nil }, "subordinate ids", Warn, "usermod --add-subuids"},
		{"small range", func(f *Facts) { f.GIDRanges = []idmap.Range{{Start: 100000, Count: 1000}} }, "subordinate ids", Warn, "usermod"},
		{"range has own uid", func(f *Facts) { f.UIDRanges = []idmap.Range{{Start: 0, Count: 65536}} }, "subordinate ids", Fail, ""},
		{"root", func(f *Facts) { f.UID, f.UIDRanges = 0, nil }, "subordinate ids", OK, ""},
		{"helper not setuid", func(f *Facts) {
			f.HelperErrs = []error{&idmap.HelperError{Problem: "newuidmap is not setuid root", Fix: "chmod u+s /usr/bin/newuidmap"}, nil}
		}, "newuidmap/newgidmap", Warn, "chmod u+s"},
		{"tun 0600", func(f *Facts) { f.Tun.Mode, f.Tun.Err = 0o600, syscall.EACCES }, "/dev/net/tun", Warn, "chmod 0666 /dev/net/tun"},
		{"fuse missing", func(f *Facts) { f.Fuse = DevAccess{Path: "/dev/fuse"} }, "/dev/fuse", Warn, "modprobe fuse"},
		{"initramfs root", func(f *Facts) { f.RootFSType = "rootfs" }, "pivot_root", Warn, ""},
		{"no seccomp", func(f *Facts) { f.Seccomp = false }, "seccomp", Fail, "--seccomp=unconfined"},
		{"no landlock", func(f *Facts) { f.LandlockABI = 0 }, "landlock", Warn, "CONFIG_SECURITY_LANDLOCK"},
		{"subid error", func(f *Facts) { f.SubidErr = errors.New("/etc/subuid:3: bad line") }, "subordinate ids", Warn, ""},
		{"no cgroup2", func(f *Facts) { f.Cgroup = CgroupFacts{} }, "cgroup v2", Warn, "unified_cgroup_hierarchy=1"},
		{"hybrid", func(f *Facts) {
			f.Cgroup.Mount, f.Cgroup.V1 = "/sys/fs/cgroup/unified", map[string]string{"memory": "/sys/fs/cgroup/memory"}
		}, "cgroup v2", Warn, "cgroup_no_v1=all"},
		{"hybrid controllers", func(f *Facts) {
			f.Cgroup.V1, f.Cgroup.Root, f.Cgroup.Available = map[string]string{"memory": "/sys/fs/cgroup/memory"}, []string{"cpu", "io", "pids"}, []string{"cpu", "io", "pids"}
		}, "cgroup controllers", Warn, ""},
		{"not delegated, no bus", func(f *Facts) { f.Cgroup.Delegated = false }, "cgroup delegation", Warn, "systemd-run --user --scope -p Delegate=yes"},
		{"not delegated, user bus", func(f *Facts) { f.Cgroup.Delegated, f.Cgroup.UserBus = false, "unix:path=/run/user/1000/bus" }, "cgroup delegation", OK, ""},
		{"io not delegated", func(f *Facts) { f.Cgroup.Available = []string{"cpu", "memory", "pids"} }, "cgroup controllers", Warn, "Delegate=cpu cpuset io memory pids"},
		{"cgroup unknown", func(f *Facts) { f.Cgroup.Err = errors.New("no 0:: line") }, "cgroup delegation", Warn, ""},
	}
	for _, c := range cases {
		f := good()
		c.mutate(&f)
		rs := Judge(f)
		r := find(t, rs, c.result)
		if r.Level != c.level {
			t.Errorf("%s: %s is %s (%s), want %s", c.name, c.result, r.Level, r.Detail, c.level)
		}
		if c.inFix != "" && !strings.Contains(r.Fix, c.inFix) {
			t.Errorf("%s: fix %q lacks %q", c.name, r.Fix, c.inFix)
		}
		if Failed(rs) != (c.level == Fail) {
			t.Errorf("%s: Failed = %v", c.name, Failed(rs))
		}
	}
}
