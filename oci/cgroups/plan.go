package cgroups

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// write is one value for one interface file of the container's cgroup.
type write struct {
	field string // the config field that asked for it: linux.resources.memory.limit
	ctrl  string // the controller the file belongs to ("" for cgroup.* core files)
	file  string
	value string
	// alt is written instead when file does not exist (io.bfq.weight →
	// io.weight, whose scale differs: altValue).
	alt, altValue string
	// missingOK: a missing file is no error (memory.swap.max "max" or "0"
	// on a kernel without swap accounting: nothing to limit, as runc does).
	missingOK bool
}

// v2Controllers are the controllers of cgroup v2 whose files a unified
// key may name.
var v2Controllers = []string{"cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc"}

// unifiedCore are the core files (no controller) a unified key may name;
// cgroup.procs, cgroup.subtree_control, cgroup.freeze, cgroup.kill … are
// the runtime's business, never the config's.
var unifiedCore = []string{"cgroup.max.depth", "cgroup.max.descendants"}

var (
	cpuListRe  = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)
	pageSizeRe = regexp.MustCompile(`^[1-9][0-9]*[KMG]B$`)
	unifiedRe  = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[A-Za-z0-9_.]+$`)
	rdmaDevRe  = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

// maxUnifiedValue bounds one value of linux.resources.unified.
const maxUnifiedValue = 4096

// plan checks r and turns it into writes as runc does on cgroup v2; every
// field this package cannot apply is an error naming it. Devices are
// checked here and applied apart (see devices.go).
func plan(r *specs.LinuxResources) ([]write, error) {
	if r == nil {
		return nil, nil
	}
	var ws []write
	add := func(field, ctrl, file, value string) *write {
		ws = append(ws, write{field: field, ctrl: ctrl, file: file, value: value})
		return &ws[len(ws)-1]
	}
	const res = "linux.resources"
	if err := checkDevices(r.Devices); err != nil {
		return nil, err
	}
	if m := r.Memory; m != nil {
		f := res + ".memory"
		limit := int64(0)
		if m.Limit != nil {
			limit = *m.Limit
			if v, ok, err := memValue(f+".limit", limit); err != nil {
				return nil, err
			} else if ok {
				add(f+".limit", "memory", "memory.max", v)
			}
		}
		if m.Reservation != nil {
			if v, ok, err := memValue(f+".reservation", *m.Reservation); err != nil {
				return nil, err
			} else if ok {
				add(f+".reservation", "memory", "memory.low", v)
			}
		}
		if m.Swap != nil {
			v, err := swapValue(*m.Swap, limit)
			if err != nil {
				return nil, fmt.Errorf("%s.swap: %w", f, err)
			}
			if v != "" {
				w := add(f+".swap", "memory", "memory.swap.max", v)
				w.missingOK = v == "max" || v == "0"
			}
		}
		switch {
		case m.Kernel != nil && *m.Kernel != 0:
			return nil, fmt.Errorf("%s.kernel: kernel memory limits are a cgroup v1 feature (removed from Linux); cgroup v2 counts kernel memory in memory.max", f)
		case m.KernelTCP != nil && *m.KernelTCP != 0:
			return nil, fmt.Errorf("%s.kernelTCP: kernel TCP memory limits are a cgroup v1 feature; cgroup v2 counts it in memory.max", f)
		case m.Swappiness != nil:
			return nil, fmt.Errorf("%s.swappiness: memory.swappiness is a cgroup v1 file; cgroup v2 has no per-cgroup swappiness", f)
		case m.DisableOOMKiller != nil && *m.DisableOOMKiller:
			return nil, fmt.Errorf("%s.disableOOMKiller: disabling the OOM killer is a cgroup v1 feature (memory.oom_control); cgroup v2 cannot", f)
		case m.UseHierarchy != nil && !*m.UseHierarchy:
			return nil, fmt.Errorf("%s.useHierarchy: false is a cgroup v1 mode; cgroup v2 is always hierarchical", f)
		}
	}
	if c := r.CPU; c != nil {
		f := res + ".cpu"
		if c.Shares != nil && *c.Shares != 0 {
			s := *c.Shares
			if s < 2 || s > 262144 {
				return nil, fmt.Errorf("%s.shares: %d is outside 2..262144", f, s)
			}
			// runc's linear map of shares [2, 262144] onto weight [1, 10000].
			add(f+".shares", "cpu", "cpu.weight", strconv.FormatUint(1+((s-2)*9999)/262142, 10))
		}
		if (c.Quota != nil && *c.Quota != 0) || (c.Period != nil && *c.Period != 0) {
			// "max" unless a positive quota; the period only when given
			// (the kernel keeps its own, 100 ms, otherwise).
			v := "max"
			field := f + ".period"
			if c.Quota != nil && *c.Quota != 0 {
				field = f + ".quota"
				if *c.Quota > 0 {
					if *c.Quota < 1000 {
						return nil, fmt.Errorf("%s.quota: %d µs is below the kernel's minimum of 1000", f, *c.Quota)
					}
					v = strconv.FormatInt(*c.Quota, 10)
				}
			}
			if c.Period != nil && *c.Period != 0 {
				if *c.Period < 1000 || *c.Period > 1000000 {
					return nil, fmt.Errorf("%s.period: %d µs is outside the kernel's 1000..1000000", f, *c.Period)
				}
				v += " " + strconv.FormatUint(*c.Period, 10)
			}
			add(field, "cpu", "cpu.max", v)
		}
		if c.Burst != nil {
			add(f+".burst", "cpu", "cpu.max.burst", strconv.FormatUint(*c.Burst, 10))
		}
		if c.Idle != nil {
			if *c.Idle != 0 && *c.Idle != 1 {
				return nil, fmt.Errorf("%s.idle: %d is neither 0 nor 1", f, *c.Idle)
			}
			add(f+".idle", "cpu", "cpu.idle", strconv.FormatInt(*c.Idle, 10))
		}
		if (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) || (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) {
			return nil, fmt.Errorf("%s.realtimeRuntime: real-time CPU bandwidth is a cgroup v1 feature (cpu.rt_*); cgroup v2 has none", f)
		}
		if c.Cpus != "" {
			if !cpuListRe.MatchString(c.Cpus) {
				return nil, fmt.Errorf("%s.cpus: %q is not a CPU list such as 0-3,6", f, c.Cpus)
			}
			add(f+".cpus", "cpuset", "cpuset.cpus", c.Cpus)
		}
		if c.Mems != "" {
			if !cpuListRe.MatchString(c.Mems) {
				return nil, fmt.Errorf("%s.mems: %q is not a memory node list such as 0-1", f, c.Mems)
			}
			add(f+".mems", "cpuset", "cpuset.mems", c.Mems)
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		// As runc: zero or negative lifts the limit.
		v := "max"
		if *p.Limit > 0 {
			v = strconv.FormatInt(*p.Limit, 10)
		}
		add(res+".pids.limit", "pids", "pids.max", v)
	}
	if b := r.BlockIO; b != nil {
		bws, err := planBlockIO(b)
		if err != nil {
			return nil, err
		}
		ws = append(ws, bws...)
	}
	for i, h := range r.HugepageLimits {
		f := fmt.Sprintf("%s.hugepageLimits[%d]", res, i)
		if !pageSizeRe.MatchString(h.Pagesize) {
			return nil, fmt.Errorf("%s.pageSize: %q is not a page size such as 2MB or 1GB", f, h.Pagesize)
		}
		add(f, "hugetlb", "hugetlb."+h.Pagesize+".max", strconv.FormatUint(h.Limit, 10))
	}
	if n := r.Network; n != nil && (n.ClassID != nil || len(n.Priorities) > 0) {
		return nil, fmt.Errorf("%s.network: net_cls and net_prio are cgroup v1 controllers; cgroup v2 has neither (use a BPF program or tc)", res)
	}
	for _, dev := range slices.Sorted(maps.Keys(r.Rdma)) {
		f := fmt.Sprintf("%s.rdma[%q]", res, dev)
		if !rdmaDevRe.MatchString(dev) {
			return nil, fmt.Errorf("%s: %q is not an RDMA device name", f, dev)
		}
		l := r.Rdma[dev]
		if l.HcaHandles == nil && l.HcaObjects == nil {
			continue
		}
		v := dev
		if l.HcaHandles != nil {
			v += " hca_handle=" + strconv.FormatUint(uint64(*l.HcaHandles), 10)
		}
		if l.HcaObjects != nil {
			v += " hca_object=" + strconv.FormatUint(uint64(*l.HcaObjects), 10)
		}
		add(f, "rdma", "rdma.max", v)
	}
	// Unified last: a key there overrides what a field above wrote to the
	// same file, as in runc.
	for _, k := range slices.Sorted(maps.Keys(r.Unified)) {
		f := fmt.Sprintf("%s.unified[%q]", res, k)
		ctrl, err := unifiedController(k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		v := r.Unified[k]
		if len(v) > maxUnifiedValue || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("%s: the value is longer than %d bytes or holds a NUL byte", f, maxUnifiedValue)
		}
		add(f, ctrl, k, v)
	}
	return ws, nil
}

// unifiedController checks a linux.resources.unified key and returns the
// controller its file belongs to.
func unifiedController(k string) (string, error) {
	if strings.Contains(k, "/") || strings.Contains(k, "..") || !unifiedRe.MatchString(k) {
		return "", fmt.Errorf("%q is not the name of a cgroup v2 interface file (no /, no ..)", k)
	}
	if slices.Contains(unifiedCore, k) {
		return "", nil
	}
	ctrl, _, _ := strings.Cut(k, ".")
	if !slices.Contains(v2Controllers, ctrl) {
		return "", fmt.Errorf("%q is not a file of a cgroup v2 controller (%s, or %s)", k, strings.Join(v2Controllers, ", "), strings.Join(unifiedCore, ", "))
	}
	return ctrl, nil
}

// memValue is a memory.max / memory.low value: -1 is max, 0 not set.
func memValue(field string, n int64) (string, bool, error) {
	switch {
	case n == -1:
		return "max", true, nil
	case n == 0:
		return "", false, nil
	case n < 0:
		return "", false, fmt.Errorf("%s: %d is negative (only -1, unlimited, is)", field, n)
	}
	return strconv.FormatInt(n, 10), true, nil
}

// swapValue converts memory.swap (memory+swap, cgroup v1's meaning, which
// the spec keeps) into memory.swap.max (swap alone), as runc does; "" is
// nothing to write.
func swapValue(swap, limit int64) (string, error) {
	switch {
	case swap == 0 && limit == -1:
		// Memory lifted and swap not said: lift both.
		return "max", nil
	case swap == -1:
		return "max", nil
	case swap == 0:
		return "", nil
	case swap < 0:
		return "", fmt.Errorf("%d is negative (only -1, unlimited, is)", swap)
	case limit <= 0:
		return "", fmt.Errorf("a swap limit needs linux.resources.memory.limit (swap is memory+swap)")
	case swap < limit:
		return "", fmt.Errorf("%d is below linux.resources.memory.limit %d (swap is memory+swap)", swap, limit)
	}
	return strconv.FormatInt(swap-limit, 10), nil
}

// planBlockIO converts the blkio fields (cgroup v1 terms) to the io
// controller's files.
func planBlockIO(b *specs.LinuxBlockIO) ([]write, error) {
	const f = "linux.resources.blockIO"
	var ws []write
	if b.LeafWeight != nil {
		return nil, fmt.Errorf("%s.leafWeight: leaf weights are a cgroup v1 (CFQ) feature; cgroup v2 has none", f)
	}
	if b.Weight != nil && *b.Weight != 0 {
		w := *b.Weight
		if w < 10 || w > 1000 {
			return nil, fmt.Errorf("%s.weight: %d is outside 10..1000", f, w)
		}
		// io.bfq.weight takes blkio's scale; io.weight (1..10000) runc's map.
		ws = append(ws, write{field: f + ".weight", ctrl: "io", file: "io.bfq.weight", value: strconv.Itoa(int(w)),
			alt: "io.weight", altValue: "default " + strconv.Itoa(1+(int(w)-10)*9999/990)})
	}
	for i, d := range b.WeightDevice {
		df := fmt.Sprintf("%s.weightDevice[%d]", f, i)
		if d.Major < 0 || d.Minor < 0 {
			return nil, fmt.Errorf("%s: negative device number %d:%d", df, d.Major, d.Minor)
		}
		if d.LeafWeight != nil {
			return nil, fmt.Errorf("%s.leafWeight: leaf weights are a cgroup v1 (CFQ) feature; cgroup v2 has none", df)
		}
		if d.Weight == nil {
			continue
		}
		if *d.Weight < 1 || *d.Weight > 1000 {
			return nil, fmt.Errorf("%s.weight: %d is outside 1..1000", df, *d.Weight)
		}
		// Per-device weights exist only under BFQ (io.bfq.weight MAJ:MIN W).
		ws = append(ws, write{field: df, ctrl: "io", file: "io.bfq.weight", value: fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight)})
	}
	for _, t := range []struct {
		name, key string
		devs      []specs.LinuxThrottleDevice
	}{
		{"throttleReadBpsDevice", "rbps", b.ThrottleReadBpsDevice},
		{"throttleWriteBpsDevice", "wbps", b.ThrottleWriteBpsDevice},
		{"throttleReadIOPSDevice", "riops", b.ThrottleReadIOPSDevice},
		{"throttleWriteIOPSDevice", "wiops", b.ThrottleWriteIOPSDevice},
	} {
		for i, d := range t.devs {
			df := fmt.Sprintf("%s.%s[%d]", f, t.name, i)
			if d.Major < 0 || d.Minor < 0 {
				return nil, fmt.Errorf("%s: negative device number %d:%d", df, d.Major, d.Minor)
			}
			// A rate of 0 lifts the limit, as writing 0 did in cgroup v1.
			rate := "max"
			if d.Rate > 0 {
				rate = strconv.FormatUint(d.Rate, 10)
			}
			ws = append(ws, write{field: df, ctrl: "io", file: "io.max", value: fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, t.key, rate)})
		}
	}
	return ws, nil
}

// controllers lists the controllers the writes need, in order of first use.
func controllers(ws []write) []string {
	var out []string
	for _, w := range ws {
		if w.ctrl != "" && !slices.Contains(out, w.ctrl) {
			out = append(out, w.ctrl)
		}
	}
	return out
}
