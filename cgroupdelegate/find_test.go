package cgroupdelegate

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// Mount tables as /proc/self/mountinfo shows them.
const (
	// This CI host: hybrid, cgroup v1 owns every controller.
	mountinfoHybrid = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=4096k
26 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
30 26 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	// A pure cgroup v2 host with systemd (Debian 12).
	mountinfoV2 = `26 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
22 26 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	// Old systemd, cgroup v1 only ("legacy"): no cgroup2 at all.
	mountinfoV1 = `26 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
30 26 0:27 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
`
	// A container whose runtime bound the host's subtree of the container.
	mountinfoBound = `500 400 0:50 / / rw - overlay overlay rw
510 500 0:23 /system.slice/ctr.scope /sys/fs/cgroup ro - cgroup2 cgroup2 rw
`
)

func mounts(t *testing.T, text string) []*mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func TestFindMount(t *testing.T) {
	m, err := FindMount(mounts(t, mountinfoHybrid))
	if err != nil || m.Point != "/sys/fs/cgroup/unified" || m.Root != "/" || !m.Hybrid() {
		t.Errorf("hybrid: %+v, %v", m, err)
	}
	if got := m.V1Owner("memory"); got != "/sys/fs/cgroup/memory" {
		t.Errorf("hybrid: memory is held by %q", got)
	}
	if got := m.V1Owner("io"); got != "/sys/fs/cgroup/blkio" {
		t.Errorf("hybrid: io (blkio) is held by %q", got)
	}
	if got := m.V1Owner("systemd"); got != "" {
		t.Errorf("name=systemd is no controller, got %q", got)
	}

	m, err = FindMount(mounts(t, mountinfoV2))
	if err != nil || m.Point != "/sys/fs/cgroup" || m.Hybrid() {
		t.Errorf("pure v2: %+v, %v", m, err)
	}

	if _, err = FindMount(mounts(t, mountinfoV1)); !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("v1 only: %v", err)
	}

	m, err = FindMount(mounts(t, mountinfoBound))
	if err != nil || m.Root != "/system.slice/ctr.scope" {
		t.Fatalf("bound subtree: %+v, %v", m, err)
	}
	if d, err := m.Dir("/system.slice/ctr.scope/sub"); err != nil || d != "/sys/fs/cgroup/sub" {
		t.Errorf("bound subtree: Dir = %q, %v", d, err)
	}
	if _, err := m.Dir("/system.slice/ctr.scopeX"); err == nil {
		t.Error("a sibling with a common prefix was taken for a child")
	}
}

func TestMountDir(t *testing.T) {
	m := Mount{Point: "/sys/fs/cgroup/unified", Root: "/"}
	for in, want := range map[string]string{
		"/":                           "/sys/fs/cgroup/unified",
		"/sandbox-test.slice/sbxtest": "/sys/fs/cgroup/unified/sandbox-test.slice/sbxtest",
	} {
		if got, err := m.Dir(in); err != nil || got != want {
			t.Errorf("Dir(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestBase(t *testing.T) {
	m := Mount{Point: "/sys/fs/cgroup", Root: "/"}
	scope := "/user.slice/user-1000.slice/user@1000.service/app.slice/vmtest.scope"
	for text, want := range map[string]string{
		"0::" + scope + "\n":              "/sys/fs/cgroup" + scope,
		"0::" + scope + "/" + Leaf + "\n": "/sys/fs/cgroup" + scope,
	} {
		if got, err := m.Base(text); err != nil || got != want {
			t.Errorf("Base(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
	if _, err := m.Base("1:cpu:/\n"); err == nil {
		t.Error("Base of a v1-only process: no error")
	}
}

func TestParseProcCgroup(t *testing.T) {
	cases := []struct {
		name, text, want string
		ok               bool
	}{
		{"hybrid", "9:name=systemd:/\n4:memory:/process_api/9a24\n1:cpu:/\n0::/sandbox-test.slice/sbxtest\n", "/sandbox-test.slice/sbxtest", true},
		{"pure v2 scope", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/vmtest.scope\n",
			"/user.slice/user-1000.slice/user@1000.service/app.slice/vmtest.scope", true},
		{"root", "0::/\n", "/", true},
		{"v1 only", "12:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n", "", false},
		{"garbage", "0::relative\n", "", false},
	}
	for _, c := range cases {
		got, err := ParseProcCgroup(c.text)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}
