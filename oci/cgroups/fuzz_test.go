package cgroups

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fileRe is a plain interface file name of a cgroup: controller.name, no
// "/", no whitespace or control character.
var fileRe = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[A-Za-z0-9_.]+$`)

// valueRe is, per file, the form of a value plan derives from a field
// (unified values are the config's own and go as they are).
var valueRe = map[string]*regexp.Regexp{
	"memory.max":      regexp.MustCompile(`^(max|[1-9][0-9]*)$`),
	"memory.low":      regexp.MustCompile(`^(max|[1-9][0-9]*)$`),
	"memory.swap.max": regexp.MustCompile(`^(max|[0-9]+)$`),
	"cpu.weight":      regexp.MustCompile(`^[0-9]+$`),
	"cpu.max":         regexp.MustCompile(`^(max|[1-9][0-9]{3,})( [1-9][0-9]{3,6})?$`),
	"cpu.max.burst":   regexp.MustCompile(`^[0-9]+$`),
	"cpu.idle":        regexp.MustCompile(`^[01]$`),
	"cpuset.cpus":     cpuListRe,
	"cpuset.mems":     cpuListRe,
	"pids.max":        regexp.MustCompile(`^(max|[1-9][0-9]*)$`),
	"io.bfq.weight":   regexp.MustCompile(`^([0-9]+|[0-9]+:[0-9]+ [0-9]+)$`),
	"io.weight":       regexp.MustCompile(`^default [0-9]+$`),
	"io.max":          regexp.MustCompile(`^[0-9]+:[0-9]+ (rbps|wbps|riops|wiops)=(max|[1-9][0-9]*)$`),
	"rdma.max":        regexp.MustCompile(`^[A-Za-z0-9_.:-]+( hca_handle=[0-9]+)?( hca_object=[0-9]+)?$`),
}

var hugetlbValueRe = regexp.MustCompile(`^[0-9]+$`)

// checkFile fails unless file may be written for a config: a plain file
// name of the controller ctrl (or a core file unified may name), never one
// of the runtime's own cgroup.* files.
func checkFile(t *testing.T, w write, file string) {
	t.Helper()
	if !fileRe.MatchString(file) || strings.Contains(file, "..") {
		t.Fatalf("%s: file %q is not a plain cgroup file name", w.field, file)
	}
	prefix, _, _ := strings.Cut(file, ".")
	switch {
	case w.ctrl == "":
		if !slices.Contains(unifiedCore, file) {
			t.Fatalf("%s: file %q of no controller", w.field, file)
		}
	case !slices.Contains(v2Controllers, w.ctrl) || prefix != w.ctrl:
		t.Fatalf("%s: file %q under controller %q", w.field, file, w.ctrl)
	}
}

// FuzzCgroupPlan feeds arbitrary linux.resources JSON to plan, which
// decides every file sandbox-oci writes in the container's cgroup (create
// and update). Properties: nothing panics; an error is one line naming a
// linux.resources field; every file written is a plain interface file
// name of a cgroup v2 controller (no "/", no "..", nothing that escapes
// the cgroup directory or reaches cgroup.procs, cgroup.subtree_control and
// the like), its controller the one enabled for it; a value plan derives
// from a number or a list has that file's form, without newline or NUL,
// and a unified value is written as given, bounded; the systemd properties
// and the device program built from the same input do not fail, and the
// program decides every access as the rules say (last match wins).
func FuzzCgroupPlan(f *testing.F) {
	for _, s := range []string{
		// sandbox-oci spec's (runc's) resources.
		`{"devices":[{"allow":false,"access":"rwm"}]}`,
		`{"memory":{"limit":67108864,"reservation":33554432,"swap":100663296}}`,
		`{"memory":{"limit":-1,"swap":0}}`,
		`{"memory":{"limit":1048576,"swap":-1,"checkBeforeUpdate":true}}`,
		`{"memory":{"limit":9223372036854775807,"swap":9223372036854775807}}`,
		`{"memory":{"limit":-9223372036854775808}}`,
		`{"memory":{"kernel":1,"kernelTCP":1,"swappiness":10,"disableOOMKiller":true,"useHierarchy":false}}`,
		`{"cpu":{"shares":1024,"quota":50000,"period":100000,"burst":1000,"idle":1,"cpus":"0-1,3","mems":"0"}}`,
		`{"cpu":{"shares":18446744073709551615,"quota":-1,"period":1000000}}`,
		`{"cpu":{"quota":-9223372036854775808,"period":18446744073709551615}}`,
		`{"cpu":{"quota":9223372036854775807,"idle":-1}}`,
		`{"cpu":{"realtimeRuntime":1000,"realtimePeriod":1000}}`,
		`{"cpu":{"cpus":"0-1\n+memory","mems":"0,"}}`,
		`{"pids":{"limit":-1}}`,
		`{"pids":{"limit":9223372036854775807}}`,
		`{"blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":300}],"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],"throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":0}],"throttleReadIOPSDevice":[{"major":9223372036854775807,"minor":1,"rate":18446744073709551615}],"throttleWriteIOPSDevice":[{"major":-1,"minor":0,"rate":1}]}}`,
		`{"blockIO":{"weight":1001,"leafWeight":10}}`,
		`{"blockIO":{"weightDevice":[{"major":8,"minor":-9223372036854775808,"leafWeight":1}]}}`,
		`{"hugepageLimits":[{"pageSize":"2MB","limit":4194304},{"pageSize":"1GB","limit":18446744073709551615}]}`,
		`{"hugepageLimits":[{"pageSize":"../2MB","limit":1}]}`,
		`{"hugepageLimits":[{"pageSize":"2MB/../../cgroup.procs","limit":1}]}`,
		`{"network":{"classID":1,"priorities":[{"name":"eth0","priority":1}]}}`,
		`{"rdma":{"mlx4_0":{"hcaHandles":2,"hcaObjects":100},"mlx5_1":{},"a b":{"hcaHandles":1}}}`,
		`{"rdma":{"mlx4_0 hca_handle=1\nx":{"hcaHandles":2}}}`,
		`{"unified":{"pids.max":"30","memory.high":"1000000","cgroup.max.depth":"2","io.max":"8:0 rbps=1"}}`,
		`{"unified":{"cgroup.procs":"1"}}`,
		`{"unified":{"cgroup.subtree_control":"+memory"}}`,
		`{"unified":{"../memory.max":"1"}}`,
		`{"unified":{"memory/../cgroup.procs":"1"}}`,
		`{"unified":{"memory..max":"1"}}`,
		`{"unified":{"memory.max\n":"1"}}`,
		`{"unified":{"memory.high":"1\n2"}}`,
		`{"unified":{"memory.high":"1\u0000"}}`,
		`{"unified":{"devices.allow":"a"}}`,
		`{"unified":{"":""}}`,
		`{"unified":{"ｍemory.max":"1"}}`,
		`{"pids":{"limit":20},"unified":{"pids.max":"max"}}`,
		`{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},{"allow":true,"type":"b","major":8,"access":"r"},{"allow":true,"type":"c","minor":4294967295,"access":"m"}]}`,
		`{"devices":[{"allow":true,"type":"a"},{"allow":false,"type":"c","major":4294967295,"minor":4294967295,"access":"rrwwmm"}]}`,
		`{"devices":[{"allow":true,"type":"x"}]}`,
		`{"devices":[{"allow":true,"access":"rwx"}]}`,
		`{"devices":[{"allow":true,"major":-2}]}`,
		`{"devices":[{"allow":true,"major":4294967296}]}`,
		// Nulls, wrong types, truncated, deep and long.
		`null`, `{}`, `{"memory":null,"cpu":null,"unified":null,"devices":null}`,
		`{"memory":{"limit":"1G"}}`, `{"cpu":{"shares":-1}}`, `{"pids":{"limit":1e400}}`,
		`{"memory":{"limit":1`, `{"unified":{"a":`,
		`{"unified":{"memory.high":"` + strings.Repeat("1", maxUnifiedValue+1) + `"}}`,
		`{"unified":{"memory.high":"` + strings.Repeat("\n", maxUnifiedValue) + `"}}`,
		`{"devices":[` + strings.Repeat(`{"allow":true,"type":"c","major":1,"minor":1,"access":"r"},`, maxDeviceRules-1) + `{}]}`,
		`{"devices":[` + strings.Repeat(`{},`, maxDeviceRules) + `{}]}`,
		`{"hugepageLimits":[` + strings.Repeat(`{"pageSize":"2MB","limit":1},`, 999) + `{}]}`,
		`{"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r specs.LinuxResources
		if json.Unmarshal(data, &r) != nil {
			return // config.json's decoding is FuzzConfig's
		}
		ws, err := plan(&r)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") || !strings.HasPrefix(msg, "linux.resources.") || ws != nil {
				t.Fatalf("error %q: more than one line, not naming a linux.resources field, or with writes", msg)
			}
			return
		}
		for _, w := range ws {
			if !strings.HasPrefix(w.field, "linux.resources.") {
				t.Fatalf("write %+v names no linux.resources field", w)
			}
			checkFile(t, w, w.file)
			if w.alt != "" {
				checkFile(t, w, w.alt)
			}
			if strings.HasPrefix(w.field, "linux.resources.unified[") {
				// As runc: the config's own value, as is; the kernel takes
				// one write(2) as one value, whatever it holds.
				if v, ok := r.Unified[w.file]; !ok || v != w.value || len(v) > maxUnifiedValue || strings.ContainsRune(v, 0) {
					t.Fatalf("%s: %q written to %s", w.field, w.value, w.file)
				}
				continue
			}
			re := valueRe[w.file]
			if strings.HasPrefix(w.file, "hugetlb.") {
				re = hugetlbValueRe
			}
			if re == nil {
				t.Fatalf("%s: plan writes %s, which this test does not know", w.field, w.file)
			}
			if !re.MatchString(w.value) || w.alt != "" && !valueRe[w.alt].MatchString(w.altValue) {
				t.Fatalf("%s: %q to %s (%q to %s) is not a value of that file", w.field, w.value, w.file, w.altValue, w.alt)
			}
			switch w.file {
			case "cpu.weight":
				if n, _ := strconv.Atoi(w.value); n < 1 || n > 10000 {
					t.Fatalf("%s: cpu.weight %s outside 1..10000", w.field, w.value)
				}
			case "io.bfq.weight":
				if n, err := strconv.Atoi(w.value); err == nil && (n < 10 || n > 1000) {
					t.Fatalf("%s: io.bfq.weight %s outside 10..1000", w.field, w.value)
				}
			}
		}
		for _, c := range controllers(ws) {
			if !slices.Contains(v2Controllers, c) {
				t.Fatalf("controller %q enabled", c)
			}
		}
		for _, p := range unitProperties(ws) {
			if _, ok := p.Value.Value().(uint64); !ok {
				t.Fatalf("property %s = %v", p.Name, p.Value)
			}
		}
		checkDeviceProgram(t, r.Devices)
	})
}

// checkDeviceProgram runs the device program of accepted rules (with run,
// the interpreter of devicefilter_test.go) over accesses near the rules'
// own devices and compares it with the rules read directly: the last rule
// that matches decides, else the default.
func checkDeviceProgram(t *testing.T, spec []specs.LinuxDeviceCgroup) {
	defaultAllow, rules := deviceRules(spec)
	prog := deviceProgram(defaultAllow, rules)
	want := func(typ, acc, major, minor uint32) bool {
		for i := len(rules) - 1; i >= 0; i-- {
			r := rules[i]
			if (r.Type == 0 || r.Type == typ) && acc&^r.Access == 0 &&
				(r.Major == -1 || uint32(r.Major) == major) && (r.Minor == -1 || uint32(r.Minor) == minor) {
				return r.Allow
			}
		}
		return defaultAllow
	}
	// Probe the devices of the first and last few rules, and others.
	probes := [][2]uint32{{1, 3}, {8, 0}, {136, 7}, {0, 0}, {4294967295, 4294967295}}
	for i, r := range rules {
		if i < 4 || i >= len(rules)-4 {
			probes = append(probes, [2]uint32{uint32(r.Major), uint32(r.Minor)}, [2]uint32{uint32(r.Major) + 1, uint32(r.Minor)})
		}
	}
	for _, p := range probes {
		for _, typ := range []uint32{bpfDevChar, bpfDevBlock} {
			for _, acc := range []uint32{bpfAccRead, bpfAccWrite, bpfAccMknod, bpfAccRead | bpfAccWrite, bpfAccAll} {
				if got, w := run(t, prog, typ, acc, p[0], p[1]), want(typ, acc, p[0], p[1]); got != w {
					t.Fatalf("device %d %d:%d access %d: the program says %v, the rules %v", typ, p[0], p[1], acc, got, w)
				}
			}
		}
	}
}
