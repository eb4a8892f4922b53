package cgroupdelegate

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"4096": 4096, "64M": 64 << 20, "64m": 64 << 20, "64MB": 64 << 20, "64MiB": 64 << 20, "1.5G": 3 << 29,
		"2k": 2048, "1T": 1 << 40, "0": 0, "10b": 10, "0.5K": 512,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1", "-64M", "64X", "64ib", "1e3", "0.3", "1.2.3", "M", "64 M", "9999999T", "inf", "nan"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{64 << 20: "64M", 3 << 29: "1536M", 1 << 30: "1G", 1000: "1000", 2048: "2K"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// fakeDevices knows /dev/vdb = 254:16 and 8:0; 8:1 is a partition.
type fakeDevices struct{}

func (fakeDevices) Resolve(dev string) (uint32, uint32, error) {
	switch dev {
	case "/dev/vdb", "254:16":
		return 254, 16, nil
	case "8:0":
		return 8, 0, nil
	}
	return 0, 0, errors.New("no such device")
}

func TestParseLimitsPlan(t *testing.T) {
	l, err := ParseLimits(Flags{
		Memory: "64M", CPUs: "0.3", CPUWeight: "200", Pids: "20", IOWeight: "50",
		IOMax: []string{"/dev/vdb:rbps=2M,wiops=100", "8:0:wbps=max,riops=10"},
	}, fakeDevices{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Write{
		{"memory", "memory.max", "67108864", "--memory 64M", false},
		{"memory", "memory.swap.max", "0", "--memory 64M", true},
		{"cpu", "cpu.max", "30000 100000", "--cpus 0.3", false},
		{"cpu", "cpu.weight", "200", "--cpu-weight 200", false},
		{"pids", "pids.max", "20", "--pids 20", false},
		{"io", "io.weight", "default 50", "--io-weight 50", false},
		{"io", "io.max", "254:16 rbps=2097152 wiops=100", "--io-max /dev/vdb:rbps=2M,wiops=100", false},
		{"io", "io.max", "8:0 wbps=max riops=10", "--io-max 8:0:wbps=max,riops=10", false},
	}
	if got := l.Plan(); !reflect.DeepEqual(got, want) {
		t.Errorf("Plan:\n got %+v\nwant %+v", got, want)
	}
	if got := Controllers(l.Plan()); !reflect.DeepEqual(got, []string{"cpu", "io", "memory", "pids"}) {
		t.Errorf("Controllers = %q", got)
	}
	if !l.Any() {
		t.Error("Any() = false")
	}

	for _, c := range []struct {
		f    Flags
		want string
	}{
		{Flags{MemorySwap: "1G", Memory: "1G"}, "memory.swap.max=1073741824"},
		{Flags{MemorySwap: "max"}, "memory.swap.max=max"},
		{Flags{MemorySwap: "0", Memory: "1G"}, "memory.swap.max=0"},
		{Flags{CPUs: "2"}, "cpu.max=200000 100000"},
		{Flags{CPUs: "0.01"}, "cpu.max=1000 100000"},
	} {
		l, err := ParseLimits(c.f, fakeDevices{})
		if err != nil {
			t.Errorf("%+v: %v", c.f, err)
			continue
		}
		found := false
		for _, w := range l.Plan() {
			found = found || w.File+"="+w.Value == c.want
		}
		if !found {
			t.Errorf("%+v: no %s in %+v", c.f, c.want, l.Plan())
		}
	}
	if l, _ := ParseLimits(Flags{}, fakeDevices{}); l.Any() || len(l.Plan()) != 0 {
		t.Errorf("no flags: %+v", l.Plan())
	}
}

func TestParseLimitsErrors(t *testing.T) {
	for _, c := range []struct {
		f    Flags
		flag string
	}{
		{Flags{Memory: "abc"}, "--memory abc"},
		{Flags{Memory: "0"}, "--memory 0"},
		{Flags{Memory: "-1"}, "--memory -1"},
		{Flags{MemorySwap: "lots"}, "--memory-swap lots"},
		{Flags{CPUs: "0"}, "--cpus 0"},
		{Flags{CPUs: "-1"}, "--cpus -1"},
		{Flags{CPUs: "abc"}, "--cpus abc"},
		{Flags{CPUs: "0.001"}, "--cpus 0.001"},
		{Flags{CPUs: "NaN"}, "--cpus NaN"},
		{Flags{CPUs: "inf"}, "--cpus inf"},
		{Flags{CPUs: "1_0"}, "--cpus 1_0"},
		{Flags{CPUs: "0x1p1"}, "--cpus 0x1p1"},
		{Flags{CPUs: "1e3"}, "--cpus 1e3"},
		{Flags{CPUs: "+1"}, "--cpus +1"},
		{Flags{CPUs: " 1"}, "--cpus  1"},
		{Flags{CPUWeight: "0"}, "--cpu-weight 0"},
		{Flags{CPUWeight: "10001"}, "--cpu-weight 10001"},
		{Flags{Pids: "0"}, "--pids 0"},
		{Flags{Pids: "-5"}, "--pids -5"},
		{Flags{Pids: "x"}, "--pids x"},
		{Flags{IOWeight: "0"}, "--io-weight 0"},
		{Flags{IOMax: []string{"/dev/vdb"}}, "--io-max /dev/vdb"},
		{Flags{IOMax: []string{"/dev/vdb:"}}, "--io-max /dev/vdb:"},
		{Flags{IOMax: []string{"/dev/vdb:rbps=0"}}, "--io-max /dev/vdb:rbps=0"},
		{Flags{IOMax: []string{"/dev/vdb:rbps=-1"}}, "--io-max /dev/vdb:rbps=-1"},
		{Flags{IOMax: []string{"/dev/vdb:riops=2M"}}, "--io-max /dev/vdb:riops=2M"},
		{Flags{IOMax: []string{"/dev/vdb:speed=2M"}}, "--io-max /dev/vdb:speed=2M"},
		{Flags{IOMax: []string{"/dev/vdb:rbps=1M,rbps=2M"}}, "--io-max /dev/vdb:rbps=1M,rbps=2M"},
		{Flags{IOMax: []string{"254:rbps=1M"}}, "--io-max 254:rbps=1M"},
		{Flags{IOMax: []string{"/dev/nope:rbps=1M"}}, "--io-max /dev/nope:rbps=1M"},
		{Flags{IOMax: []string{"/dev/vdb:rbps=1M", "254:16:wbps=1M"}}, "--io-max 254:16:wbps=1M"},
	} {
		_, err := ParseLimits(c.f, fakeDevices{})
		if err == nil || !strings.HasPrefix(err.Error(), c.flag+":") {
			t.Errorf("%+v: error %v does not start with %q", c.f, err, c.flag+":")
		}
	}
}

// TestSysDevices resolves over a fake /sys/dev/block and a fake stat.
func TestSysDevices(t *testing.T) {
	sys := t.TempDir()
	disk := filepath.Join(sys, "devices", "vdb")
	part := filepath.Join(disk, "vdb1")
	for _, d := range []string{part, filepath.Join(sys, "dev", "block")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, v := range map[string]string{disk + "/dev": "254:16\n", part + "/dev": "254:17\n", part + "/partition": "1\n"} {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../../devices/vdb", filepath.Join(sys, "dev", "block", "254:16"))
	os.Symlink("../../devices/vdb/vdb1", filepath.Join(sys, "dev", "block", "254:17"))
	stat := func(p string, st *unix.Stat_t) error {
		switch p {
		case "/dev/vdb":
			st.Mode, st.Rdev = unix.S_IFBLK|0o660, unix.Mkdev(254, 16)
		case "/dev/null":
			st.Mode, st.Rdev = unix.S_IFCHR|0o666, unix.Mkdev(1, 3)
		default:
			return unix.ENOENT
		}
		return nil
	}
	d := SysDevices{Sys: sys, Stat: stat}
	for _, dev := range []string{"/dev/vdb", "254:16"} {
		if ma, mi, err := d.Resolve(dev); err != nil || ma != 254 || mi != 16 {
			t.Errorf("%s: %d:%d, %v", dev, ma, mi, err)
		}
	}
	for dev, want := range map[string]string{
		"254:17": "use its disk 254:16", "/dev/null": "not a block device", "/dev/nope": "no such file",
		"9:9": "no block device 9:9", "a:b": "neither",
	} {
		if _, _, err := d.Resolve(dev); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", dev, err, want)
		}
	}
}
