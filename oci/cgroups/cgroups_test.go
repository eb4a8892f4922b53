package cgroups

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/cgroupdelegate"
)

func i64(n int64) *int64    { return &n }
func u64(n uint64) *uint64  { return &n }
func u16(n uint16) *uint16  { return &n }
func u32(n uint32) *uint32  { return &n }
func yes(b bool) *bool      { return &b }
func str(s string) []string { return strings.Fields(s) }

// files turns a plan into file → value (the last write of a file wins, as
// in the cgroup).
func files(ws []write) map[string]string {
	out := map[string]string{}
	for _, w := range ws {
		out[w.file] = w.value
	}
	return out
}

// The fake trees are no cgroups: no device program can be attached there
// (TestDevicesAsRoot checks when it is; devicefilter_test.go what it does).
func TestMain(m *testing.M) {
	attachDevices = func(string, []specs.LinuxDeviceCgroup) error { return nil }
	os.Exit(m.Run())
}

func TestPlanConversions(t *testing.T) {
	for _, c := range []struct {
		name string
		r    specs.LinuxResources
		want map[string]string
	}{
		{"memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Reservation: i64(32 << 20), Swap: i64(96 << 20)}},
			map[string]string{"memory.max": "67108864", "memory.low": "33554432", "memory.swap.max": "33554432"}},
		{"memory lifted, swap unsaid", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(0)}},
			map[string]string{"memory.max": "max", "memory.swap.max": "max"}},
		{"swap equal to memory: no swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(1 << 20)}},
			map[string]string{"memory.max": "1048576", "memory.swap.max": "0"}},
		{"swap -1", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(-1)}},
			map[string]string{"memory.max": "1048576", "memory.swap.max": "max"}},
		{"cpu shares", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1024)}},
			map[string]string{"cpu.weight": "39"}},
		{"cpu shares bounds", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(262144)}},
			map[string]string{"cpu.weight": "10000"}},
		{"quota and period", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Period: u64(100000)}},
			map[string]string{"cpu.max": "50000 100000"}},
		{"quota alone", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(20000)}},
			map[string]string{"cpu.max": "20000"}},
		{"quota -1", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1), Period: u64(50000)}},
			map[string]string{"cpu.max": "max 50000"}},
		{"cpuset, burst, idle", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-1,3", Mems: "0", Burst: u64(1000), Idle: i64(1)}},
			map[string]string{"cpuset.cpus": "0-1,3", "cpuset.mems": "0", "cpu.max.burst": "1000", "cpu.idle": "1"}},
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(20)}},
			map[string]string{"pids.max": "20"}},
		{"pids unlimited", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-1)}},
			map[string]string{"pids.max": "max"}},
		{"blkio throttles", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1048576}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 0}},
		}}, map[string]string{"io.max": "8:16 wiops=max"}},
		{"blkio weight device", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
			WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Weight: u16(300)}},
		}}, map[string]string{"io.bfq.weight": "8:0 300"}},
		{"hugetlb", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}},
			map[string]string{"hugetlb.2MB.max": "4194304"}},
		{"rdma", specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {HcaHandles: u32(2), HcaObjects: u32(100)}}},
			map[string]string{"rdma.max": "mlx4_0 hca_handle=2 hca_object=100"}},
		{"unified overrides", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(20)}, Unified: map[string]string{"pids.max": "30", "memory.high": "1000000", "cgroup.max.depth": "2"}},
			map[string]string{"pids.max": "30", "memory.high": "1000000", "cgroup.max.depth": "2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws, err := plan(&c.r)
			if err != nil {
				t.Fatal(err)
			}
			got := files(ws)
			if len(got) != len(c.want) {
				t.Errorf("writes %v, want %v", got, c.want)
			}
			for f, v := range c.want {
				if got[f] != v {
					t.Errorf("%s = %q, want %q (all: %v)", f, got[f], v, got)
				}
			}
		})
	}
	// Two throttles of one device are two writes of io.max, both kept.
	ws, _ := plan(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
		ThrottleReadBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1048576}},
		ThrottleWriteBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 2048}},
	}})
	if len(ws) != 2 || ws[0].value != "8:0 rbps=1048576" || ws[1].value != "8:0 wbps=2048" {
		t.Errorf("io.max writes %+v", ws)
	}
	// blkio.weight: io.bfq.weight, else io.weight rescaled.
	ws, _ = plan(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}})
	if len(ws) != 1 || ws[0].file != "io.bfq.weight" || ws[0].value != "500" || ws[0].alt != "io.weight" || ws[0].altValue != "default 4950" {
		t.Errorf("blkio weight %+v", ws)
	}
}

func TestPlanErrorsNameTheField(t *testing.T) {
	for _, c := range []struct {
		r     specs.LinuxResources
		field string
	}{
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: i64(1 << 20)}}, "linux.resources.memory.kernel:"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: i64(1 << 20)}}, "linux.resources.memory.kernelTCP:"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(10)}}, "linux.resources.memory.swappiness:"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: yes(true)}}, "linux.resources.memory.disableOOMKiller:"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{UseHierarchy: yes(false)}}, "linux.resources.memory.useHierarchy:"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-5)}}, "linux.resources.memory.limit:"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(1 << 20)}}, "linux.resources.memory.swap:"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(2 << 20), Swap: i64(1 << 20)}}, "linux.resources.memory.swap:"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1)}}, "linux.resources.cpu.shares:"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(10)}}, "linux.resources.cpu.quota:"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(10)}}, "linux.resources.cpu.period:"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(1000)}}, "linux.resources.cpu.realtimeRuntime:"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-1\n+memory"}}, "linux.resources.cpu.cpus:"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "x"}}, "linux.resources.cpu.mems:"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(2)}}, "linux.resources.cpu.idle:"},
		{specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: u16(100)}}, "linux.resources.blockIO.leafWeight:"},
		{specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(5)}}, "linux.resources.blockIO.weight:"},
		{specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: -1}}}}}, "linux.resources.blockIO.throttleReadBpsDevice[0]:"},
		{specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "../2MB"}}}, "linux.resources.hugepageLimits[0].pageSize:"},
		{specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32(1)}}, "linux.resources.network:"},
		{specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"a b": {HcaHandles: u32(1)}}}, `linux.resources.rdma["a b"]:`},
		{specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x"}}}, "linux.resources.devices[0].type:"},
		{specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Access: "rwx"}}}, "linux.resources.devices[0].access:"},
		{specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Major: i64(-2)}}}, "linux.resources.devices[0].major:"},
		{specs.LinuxResources{Devices: make([]specs.LinuxDeviceCgroup, 5000)}, "linux.resources.devices:"},
	} {
		_, err := plan(&c.r)
		if err == nil || !strings.HasPrefix(err.Error(), c.field) {
			t.Errorf("%+v: error %v, want one starting %q", c.r, err, c.field)
		}
	}
}

func TestUnifiedKeys(t *testing.T) {
	for k, ok := range map[string]bool{
		"memory.high": true, "pids.max": true, "io.max": true, "hugetlb.2MB.max": true, "cgroup.max.depth": true,
		"cgroup.procs": false, "cgroup.subtree_control": false, "cgroup.kill": false, "cgroup.freeze": false,
		"../memory.max": false, "memory/../x": false, "x/memory.max": false, "devices.allow": false,
		"cpuacct.usage": false, "memory": false, "": false, "memory..max": false, "net_cls.classid": false,
	} {
		_, err := plan(&specs.LinuxResources{Unified: map[string]string{k: "1"}})
		if (err == nil) != ok {
			t.Errorf("unified key %q: error %v, want ok=%v", k, err, ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "linux.resources.unified[") {
			t.Errorf("unified key %q: %v does not name the field", k, err)
		}
	}
	if _, err := plan(&specs.LinuxResources{Unified: map[string]string{"memory.high": strings.Repeat("1", 5000)}}); err == nil {
		t.Error("a 5000-byte unified value was accepted")
	}
}

// fakeHost is a cgroup2 "mount" in a temporary directory; the caller's
// cgroup is /user.slice/me.scope.
func fakeHost(t *testing.T, controllers string, v1 map[string]string) host {
	t.Helper()
	root := t.TempDir()
	fakeCg(t, root, controllers)
	fakeCg(t, filepath.Join(root, "user.slice"), controllers)
	fakeCg(t, filepath.Join(root, "user.slice/me.scope"), controllers)
	if v1 == nil {
		v1 = map[string]string{}
	}
	return host{cgroupdelegate.Mount{Point: root, Root: "/", V1: v1}, "0::/user.slice/me.scope\n"}
}

// fakeCg makes a cgroup directory with the interface files the tests write.
func fakeCg(t *testing.T, dir, controllers string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fs := map[string]string{"cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.procs": "",
		"cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0"}
	for _, c := range str(controllers) {
		switch c {
		case "memory":
			fs["memory.max"], fs["memory.low"], fs["memory.swap.max"], fs["memory.current"] = "max", "0", "max", "4096"
		case "pids":
			fs["pids.max"] = "max"
		case "cpu":
			fs["cpu.max"], fs["cpu.weight"] = "max 100000", "100"
		case "io":
			fs["io.max"], fs["io.weight"] = "", "default 100"
		}
	}
	for f, v := range fs {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestNewPaths(t *testing.T) {
	h := fakeHost(t, "", nil)
	for _, c := range []struct{ path, want, err string }{
		{"/machine.slice/c1", h.mnt.Point + "/machine.slice/c1", ""},
		{"/a//b/", h.mnt.Point + "/a/b", ""},
		{"ctr/x", h.mnt.Point + "/user.slice/me.scope/ctr/x", ""},
		{"", h.mnt.Point + "/user.slice/me.scope/sandbox-oci-c1", ""},
		{"/", "", "linux.cgroupsPath: / is the root"},
		{"/a/../../etc", "", "linux.cgroupsPath:"},
		{"../x", "", "linux.cgroupsPath:"},
		{".", "", "linux.cgroupsPath:"},
	} {
		m, err := newManager(h, "c1", c.path, Options{})
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.path, err, c.err)
			}
			continue
		}
		if err != nil || m.Path != c.want || m.Mount != h.mnt.Point {
			t.Errorf("%q: %+v, %v; want path %s", c.path, m, err, c.want)
		}
	}
	// A caller moved into sandbox-leaf puts containers beside it.
	h.procCgroup = "0::/user.slice/me.scope/" + cgroupdelegate.Leaf + "\n"
	if m, err := newManager(h, "c1", "", Options{}); err != nil || m.Path != h.mnt.Point+"/user.slice/me.scope/sandbox-oci-c1" {
		t.Errorf("from the leaf: %+v, %v", m, err)
	}
	if _, err := newManager(h, "a/b", "", Options{}); err == nil {
		t.Error("an id with / named a cgroup")
	}
}

func TestSystemdUnit(t *testing.T) {
	for _, c := range []struct {
		path        string
		rootless    bool
		slice, unit string
		err         bool
	}{
		{"system.slice:docker:abc", false, "system.slice", "docker-abc.scope", false},
		{"machine.slice:libpod:abc", false, "machine.slice", "libpod-abc.scope", false},
		{":crio:abc", true, "user.slice", "crio-abc.scope", false},
		{"", false, "system.slice", "sandbox-oci-c1.scope", false},
		{"", true, "user.slice", "sandbox-oci-c1.scope", false},
		{"user.slice::abc", true, "user.slice", "abc.scope", false},
		{"/sys/fs", false, "", "", true},
		{"a:b", false, "", "", true},
		{"notaslice:p:n", false, "", "", true},
		{"system.slice:p:", false, "", "", true},
		{"system.slice:p:x.slice", false, "", "", true},
		{"system.slice:p/q:n", false, "", "", true},
	} {
		m, err := newManager(fakeHost(t, "", nil), "c1", c.path, Options{Systemd: true, Rootless: c.rootless})
		if c.err {
			if err == nil || !strings.HasPrefix(err.Error(), "linux.cgroupsPath:") {
				t.Errorf("%q: error %v, want one naming linux.cgroupsPath", c.path, err)
			}
			continue
		}
		if err != nil || m.Slice != c.slice || m.Unit != c.unit {
			t.Errorf("%q: %+v, %v; want %s %s", c.path, m, err, c.slice, c.unit)
		}
	}
}

func TestApplyWritesAndEnables(t *testing.T) {
	h := fakeHost(t, "cpu io memory pids", nil)
	m, err := newManager(h, "c1", "/machine.slice/c1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel makes the interface files; the fake must have them first.
	fakeCg(t, filepath.Join(h.mnt.Point, "machine.slice"), "cpu io memory pids")
	fakeCg(t, m.Path, "cpu io memory pids")
	r := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(64 << 20)},
		Pids:    &specs.LinuxPids{Limit: i64(20)},
		CPU:     &specs.LinuxCPU{Quota: i64(30000), Period: u64(100000)},
		BlockIO: &specs.LinuxBlockIO{Weight: u16(1000)},
	}
	if err := m.Apply(os.Getpid(), r); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"memory.max": "67108864", "memory.swap.max": "0", "pids.max": "20",
		"cpu.max": "30000 100000", "io.weight": "default 10000", "cgroup.procs": itoa(os.Getpid())} {
		if got := read(t, filepath.Join(m.Path, f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	// Each controller was enabled, one write each, in both ancestors.
	for _, d := range []string{h.mnt.Point, filepath.Join(h.mnt.Point, "machine.slice")} {
		if got := read(t, filepath.Join(d, "cgroup.subtree_control")); !strings.HasPrefix(got, "+") {
			t.Errorf("%s/cgroup.subtree_control = %q, want a controller enabled", d, got)
		}
	}
	// update: only the fields given; checkBeforeUpdate against memory.current.
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(50)}}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(m.Path, "pids.max")); got != "50" {
		t.Errorf("pids.max after update = %q", got)
	}
	if got := read(t, filepath.Join(m.Path, "memory.max")); got != "67108864" {
		t.Errorf("memory.max after a pids update = %q", got)
	}
	err = m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1024), CheckBeforeUpdate: yes(true)}})
	if err == nil || !strings.Contains(err.Error(), "linux.resources.memory.limit") {
		t.Errorf("a limit under memory.current with checkBeforeUpdate: %v", err)
	}
	// A file the kernel lacks names the field.
	err = m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: u64(10)}})
	if err == nil || !strings.HasPrefix(err.Error(), "linux.resources.cpu.burst: cpu.max.burst does not exist") {
		t.Errorf("cpu.max.burst missing: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestApplyMissingController(t *testing.T) {
	pids := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(20)}}
	// Pure cgroup v2 without the pids controller: an error naming the
	// field, rootless or not.
	for _, rootless := range []bool{false, true} {
		h := fakeHost(t, "cpu memory", nil)
		m, _ := newManager(h, "c1", "", Options{Rootless: rootless})
		fakeCg(t, m.Path, "")
		err := m.Apply(os.Getpid(), pids)
		want := "linux.resources.pids.limit: the pids controller is not available in " + h.mnt.Point
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("rootless=%v: %v, want %q", rootless, err, want)
		}
		if _, err := os.Stat(m.Path); err == nil && read(t, filepath.Join(m.Path, "cgroup.procs")) != "" {
			t.Errorf("rootless=%v: the init was moved in although Apply failed", rootless)
		}
	}
	// Hybrid host (cgroup v1 holds pids): as root an error saying so;
	// rootless the limit is skipped and said, the cgroup kept.
	v1 := map[string]string{"pids": "/sys/fs/cgroup/pids"}
	h := fakeHost(t, "", v1)
	m, _ := newManager(h, "c1", "", Options{})
	fakeCg(t, m.Path, "")
	err := m.Apply(os.Getpid(), pids)
	if err == nil || !strings.HasPrefix(err.Error(), "linux.resources.pids.limit: the pids controller is not available") ||
		!strings.Contains(err.Error(), "hybrid host: cgroup v1 holds it, at /sys/fs/cgroup/pids") {
		t.Errorf("root on a hybrid host: %v", err)
	}
	h = fakeHost(t, "", v1)
	m, _ = newManager(h, "c1", "", Options{Rootless: true})
	fakeCg(t, m.Path, "")
	if err := m.Apply(os.Getpid(), pids); err != nil {
		t.Fatalf("rootless on a hybrid host: %v", err)
	}
	if m.Path == "" || !strings.Contains(m.Skipped, "linux.resources.pids.limit") || read(t, filepath.Join(m.Path, "cgroup.procs")) != itoa(os.Getpid()) {
		t.Errorf("rootless on a hybrid host: %+v", m)
	}
	// Root on a hybrid host without limits: a cgroup all the same.
	h = fakeHost(t, "", v1)
	m, _ = newManager(h, "c1", "", Options{})
	fakeCg(t, m.Path, "")
	if err := m.Apply(os.Getpid(), nil); err != nil || m.Skipped != "" || read(t, filepath.Join(m.Path, "cgroup.procs")) != itoa(os.Getpid()) {
		t.Errorf("root, hybrid, no limits: %+v, %v", m, err)
	}
}

// TestRootlessV1Host: rootless with no cgroup2 at all, limits are skipped
// as runc does rootless on a cgroup v1 host.
func TestRootlessV1Host(t *testing.T) {
	// mnt: what a pure cgroup v2 host would answer, so that only v1Only
	// decides (this CI host is hybrid, where limits are skipped anyway).
	m := &Manager{Skipped: "no cgroup v2 hierarchy", Rootless: true, v1Only: true, mnt: &cgroupdelegate.Mount{Point: t.TempDir(), Root: "/"}}
	if err := m.Apply(os.Getpid(), &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}}); err != nil || m.Path != "" {
		t.Errorf("rootless on a cgroup v1 host: %+v, %v", m, err)
	}
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}}); !errors.Is(err, ErrNoCgroup) {
		t.Errorf("update on a cgroup v1 host: %v", err)
	}
}

func TestApplyRootlessWithoutRights(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; scripts/test.sh runs this as an unprivileged user")
	}
	h := fakeHost(t, "pids", nil)
	scope := filepath.Join(h.mnt.Point, "user.slice/me.scope")
	if err := os.Chmod(scope, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(scope, 0o755) })
	m, _ := newManager(h, "c1", "", Options{Rootless: true})
	if err := m.Apply(os.Getpid(), nil); err != nil || m.Path != "" || !strings.Contains(m.Skipped, "permission denied") {
		t.Errorf("rootless, no rights, no limits: %+v, %v", m, err)
	}
	if err := m.Freeze(); !errors.Is(err, ErrNoCgroup) {
		t.Errorf("Freeze without a cgroup: %v", err)
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("Destroy without a cgroup: %v", err)
	}
	// Limits asked for on a pure cgroup v2 host: an error, as runc.
	m, _ = newManager(h, "c1", "", Options{Rootless: true})
	err := m.Apply(os.Getpid(), &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}})
	if err == nil || !strings.HasPrefix(err.Error(), "linux.resources.pids.limit: creating the cgroup") {
		t.Errorf("rootless, no rights, a limit: %v", err)
	}
	// Not rootless: an error too.
	m, _ = newManager(h, "c1", "", Options{})
	if err := m.Apply(os.Getpid(), nil); err == nil || !strings.HasPrefix(err.Error(), "linux.cgroupsPath: creating the cgroup") {
		t.Errorf("root-like, no rights: %v", err)
	}
}

func TestDevicesAsRoot(t *testing.T) {
	var got []specs.LinuxDeviceCgroup
	calls := 0
	attachDevices = func(dir string, rules []specs.LinuxDeviceCgroup) error {
		calls++
		got = rules
		if read(t, filepath.Join(dir, "cgroup.procs")) != "" {
			t.Error("the device program was attached after the init was moved in")
		}
		return nil
	}
	t.Cleanup(func() { attachDevices = func(string, []specs.LinuxDeviceCgroup) error { return nil } })
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for _, rootless := range []bool{false, true} {
		h := fakeHost(t, "", nil)
		m, _ := newManager(h, "c1", "", Options{Rootless: rootless})
		fakeCg(t, m.Path, "")
		if err := m.Apply(os.Getpid(), &specs.LinuxResources{Devices: rules}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 || len(got) != 1 {
		t.Errorf("attached %d times (%v), want once, as root", calls, got)
	}
	// update with the same rules (engines pass all linux.resources) is
	// fine; other rules are refused, naming the field.
	h := fakeHost(t, "pids", nil)
	m, _ := newManager(h, "c1", "", Options{})
	fakeCg(t, m.Path, "pids")
	if err := m.Apply(os.Getpid(), &specs.LinuxResources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	later := &Manager{Path: m.Path, Mount: m.Mount, Devices: m.Devices, mnt: m.mnt}
	if err := later.Set(&specs.LinuxResources{Devices: rules, Pids: &specs.LinuxPids{Limit: i64(9)}}); err != nil {
		t.Errorf("update with the same device rules: %v", err)
	}
	err := later.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}})
	if err == nil || !strings.HasPrefix(err.Error(), "linux.resources.devices:") {
		t.Errorf("update with other device rules: %v", err)
	}
	// A program that cannot be attached fails Apply, naming the field.
	attachDevices = func(string, []specs.LinuxDeviceCgroup) error {
		return errors.New("linux.resources.devices: no")
	}
	h = fakeHost(t, "", nil)
	m, _ = newManager(h, "c1", "", Options{})
	fakeCg(t, m.Path, "")
	if err := m.Apply(os.Getpid(), nil); err == nil || !strings.HasPrefix(err.Error(), "linux.resources.devices:") {
		t.Errorf("a failed attach: %v", err)
	}
}

func TestFreezeFake(t *testing.T) {
	h := fakeHost(t, "", nil)
	m, _ := newManager(h, "c1", "/c1", Options{})
	fakeCg(t, m.Path, "")
	// The fake kernel never says frozen: a bounded wait, an error, and the
	// cgroup thawed again.
	err := m.Freeze()
	if err == nil || !strings.Contains(err.Error(), "did not say frozen 1") {
		t.Errorf("Freeze on a cgroup that never freezes: %v", err)
	}
	if got := read(t, filepath.Join(m.Path, "cgroup.freeze")); got != "0" {
		t.Errorf("cgroup.freeze left at %q after a failed freeze", got)
	}
	os.Remove(filepath.Join(m.Path, "cgroup.freeze"))
	if err := m.Freeze(); err == nil || !strings.Contains(err.Error(), "Linux 5.2") {
		t.Errorf("Freeze without cgroup.freeze: %v", err)
	}
}

func TestUnitProperties(t *testing.T) {
	ws, err := plan(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(-1)},
		Pids:   &specs.LinuxPids{Limit: i64(10)},
		CPU:    &specs.LinuxCPU{Shares: u64(1024), Quota: i64(50000), Period: u64(200000), Cpus: "0"},
		// A later unified value overrides; one systemd cannot parse is left to the file.
		Unified: map[string]string{"memory.low": "1G", "pids.max": "12", "cpu.max": ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, p := range unitProperties(ws) {
		got[p.Name] = p.Value.Value()
	}
	want := map[string]any{"MemoryMax": uint64(64 << 20), "MemorySwapMax": uint64(math.MaxUint64), "TasksMax": uint64(12),
		"CPUWeight": uint64(39), "CPUQuotaPeriodUSec": uint64(200000), "CPUQuotaPerSecUSec": uint64(250000)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("properties %v, want %v", got, want)
	}
}
