package cgroupdelegate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Max is the value of a limit that is lifted ("max" in the interface files).
const Max = -1

// CPUPeriod is the cpu.max period for --cpus, in microseconds.
const CPUPeriod = 100000

// Flags are the limit flags of `sandbox run` as typed ("" when absent).
type Flags struct {
	Memory     string // --memory SIZE
	MemorySwap string // --memory-swap SIZE
	CPUs       string // --cpus N
	CPUWeight  string // --cpu-weight N
	Pids       string // --pids N
	IOWeight   string // --io-weight N
	IOMax      []string
}

// Limits are the parsed limits; zero means not asked for.
type Limits struct {
	Memory     int64  // bytes
	MemorySwap *int64 // bytes or Max; nil: none when Memory is set
	CPUQuota   int64  // microseconds per CPUPeriod
	CPUWeight  int64
	Pids       int64
	IOWeight   int64
	IOMax      []IOMax
	flags      map[string]string // file → the flag as typed, for messages (Any)
}

// IOMax is one --io-max device.
type IOMax struct {
	Spec         string // the flag's value as typed
	Dev          string // a block device path or MAJ:MIN
	Major, Minor uint32
	// Bytes and operations per second; 0: not given, Max: lifted.
	Rbps, Wbps, Riops, Wiops int64
}

// Devices resolves --io-max devices (a path or MAJ:MIN) to a whole disk.
type Devices interface {
	Resolve(dev string) (major, minor uint32, err error)
}

// ParseLimits validates the limit flags; every error names its flag.
func ParseLimits(f Flags, devs Devices) (Limits, error) {
	l := Limits{flags: map[string]string{}}
	var err error
	if f.Memory != "" {
		if l.Memory, err = positiveSize("--memory", f.Memory); err != nil {
			return l, err
		}
		l.flags["memory.max"] = "--memory " + f.Memory
	}
	if f.MemorySwap != "" {
		v := int64(Max)
		if f.MemorySwap != "max" {
			// 0 is allowed here: it is the default (no swap) said aloud.
			if v, err = ParseSize(f.MemorySwap); err != nil {
				return l, fmt.Errorf("--memory-swap %s: %w", f.MemorySwap, err)
			}
		}
		l.MemorySwap = &v
		l.flags["memory.swap.max"] = "--memory-swap " + f.MemorySwap
	} else if f.Memory != "" {
		l.flags["memory.swap.max"] = "--memory " + f.Memory
	}
	if f.CPUs != "" {
		if l.CPUQuota, err = parseCPUs(f.CPUs); err != nil {
			return l, err
		}
		l.flags["cpu.max"] = "--cpus " + f.CPUs
	}
	for _, n := range []struct {
		flag, val, file string
		max             int64
		dst             *int64
	}{
		{"--cpu-weight", f.CPUWeight, "cpu.weight", 10000, &l.CPUWeight},
		{"--pids", f.Pids, "pids.max", math.MaxInt32, &l.Pids},
		{"--io-weight", f.IOWeight, "io.weight", 10000, &l.IOWeight},
	} {
		if n.val == "" {
			continue
		}
		if *n.dst, err = intIn(n.flag, n.val, 1, n.max); err != nil {
			return l, err
		}
		l.flags[n.file] = n.flag + " " + n.val
	}
	for _, spec := range f.IOMax {
		m, err := ParseIOMax(spec)
		if err != nil {
			return l, err
		}
		if m.Major, m.Minor, err = devs.Resolve(m.Dev); err != nil {
			return l, fmt.Errorf("--io-max %s: %w", spec, err)
		}
		for _, o := range l.IOMax {
			if o.Major == m.Major && o.Minor == m.Minor {
				return l, fmt.Errorf("--io-max %s: device %d:%d is already limited by --io-max %s; give all its limits in one flag", spec, m.Major, m.Minor, o.Dev)
			}
		}
		l.IOMax = append(l.IOMax, m)
		l.flags["io.max"] = "--io-max " + spec
	}
	return l, nil
}

// Any says whether any limit was asked for.
func (l Limits) Any() bool { return len(l.flags) > 0 }

// Write is one value for one interface file of the sandbox's cgroup.
type Write struct {
	Controller string // memory, cpu, pids, io
	File       string // memory.max, …
	Value      string
	Flag       string // the flag that asked for it, as typed
	// Implied writes (memory.swap.max=0 for --memory alone) are skipped on
	// kernels without the file (no swap accounting: swap is not charged).
	Implied bool
}

// Plan turns the limits into writes, in a fixed order.
func (l Limits) Plan() []Write {
	var w []Write
	add := func(ctrl, file, value string, implied bool) {
		w = append(w, Write{ctrl, file, value, l.flags[file], implied})
	}
	if l.Memory > 0 {
		add("memory", "memory.max", strconv.FormatInt(l.Memory, 10), false)
	}
	switch {
	case l.MemorySwap != nil:
		add("memory", "memory.swap.max", maxOr(*l.MemorySwap), false)
	case l.Memory > 0:
		add("memory", "memory.swap.max", "0", true)
	}
	if l.CPUQuota > 0 {
		add("cpu", "cpu.max", fmt.Sprintf("%d %d", l.CPUQuota, CPUPeriod), false)
	}
	if l.CPUWeight > 0 {
		add("cpu", "cpu.weight", strconv.FormatInt(l.CPUWeight, 10), false)
	}
	if l.Pids > 0 {
		add("pids", "pids.max", strconv.FormatInt(l.Pids, 10), false)
	}
	if l.IOWeight > 0 {
		add("io", "io.weight", "default "+strconv.FormatInt(l.IOWeight, 10), false)
	}
	for _, m := range l.IOMax {
		v := fmt.Sprintf("%d:%d", m.Major, m.Minor)
		for _, kv := range []struct {
			k string
			n int64
		}{{"rbps", m.Rbps}, {"wbps", m.Wbps}, {"riops", m.Riops}, {"wiops", m.Wiops}} {
			if kv.n != 0 {
				v += " " + kv.k + "=" + maxOr(kv.n)
			}
		}
		w = append(w, Write{"io", "io.max", v, "--io-max " + m.Spec, false})
	}
	return w
}

// Controllers lists the controllers the writes need, sorted.
func Controllers(ws []Write) []string {
	var out []string
	for _, w := range ws {
		if !slices.Contains(out, w.Controller) {
			out = append(out, w.Controller)
		}
	}
	slices.Sort(out)
	return out
}

func maxOr(n int64) string {
	if n == Max {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// ParseIOMax parses DEV:rbps=N,wbps=N,riops=N,wiops=N, DEV being a block
// device path or MAJ:MIN; bps values are sizes (2M), iops whole numbers,
// and any of them may be "max".
func ParseIOMax(spec string) (IOMax, error) {
	m := IOMax{Spec: spec}
	bad := func(format string, a ...any) (IOMax, error) {
		return m, fmt.Errorf("--io-max %s: %s (expected DEV:rbps=N,wbps=N,riops=N,wiops=N with DEV a block device path or MAJ:MIN)",
			spec, fmt.Sprintf(format, a...))
	}
	var rest string
	if strings.HasPrefix(spec, "/") {
		var ok bool
		if m.Dev, rest, ok = strings.Cut(spec, ":"); !ok {
			return bad("no limits after the device")
		}
	} else {
		parts := strings.SplitN(spec, ":", 3)
		if len(parts) != 3 {
			return bad("no device")
		}
		m.Dev, rest = parts[0]+":"+parts[1], parts[2]
	}
	if rest == "" {
		return bad("no limits after the device")
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return bad("%q is not KEY=VALUE", kv)
		}
		var dst *int64
		switch k {
		case "rbps":
			dst = &m.Rbps
		case "wbps":
			dst = &m.Wbps
		case "riops":
			dst = &m.Riops
		case "wiops":
			dst = &m.Wiops
		default:
			return bad("unknown key %q (use rbps, wbps, riops, wiops)", k)
		}
		if *dst != 0 {
			return bad("%s given twice", k)
		}
		n, err := ioValue(k, v)
		if err != nil {
			return bad("%s=%s: %v", k, v, err)
		}
		*dst = n
	}
	return m, nil
}

func ioValue(key, v string) (int64, error) {
	if v == "max" {
		return Max, nil
	}
	var n int64
	var err error
	if strings.HasSuffix(key, "bps") {
		n, err = ParseSize(v)
	} else {
		n, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			err = errors.New("not a whole number")
		}
	}
	if err == nil && n <= 0 {
		err = errors.New("must be greater than 0 (or max)")
	}
	return n, err
}

// parseCPUs turns --cpus N (a decimal number of CPUs) into a cpu.max quota.
func parseCPUs(s string) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("--cpus %s: must be greater than 0", s)
	}
	// Digits and a point only: ParseFloat alone also takes 1_0 (10),
	// 0x1p1, 1e3 and inf, so that a typo would become another limit.
	f, err := strconv.ParseFloat(s, 64)
	if strings.ContainsFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }) || err != nil {
		return 0, fmt.Errorf("--cpus %s: not a number of CPUs (e.g. 0.5 or 2)", s)
	}
	if f <= 0 {
		return 0, fmt.Errorf("--cpus %s: must be greater than 0", s)
	}
	q := math.Round(f * CPUPeriod)
	// The kernel refuses quotas under 1 ms and over its own bound (~2^44 µs).
	if q < 1000 || q > 1<<40 {
		return 0, fmt.Errorf("--cpus %s: must be between 0.01 and %d", s, (1<<40)/CPUPeriod)
	}
	return int64(q), nil
}

func intIn(flag, s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %s: must be a whole number from %d to %d", flag, s, lo, hi)
	}
	return n, nil
}

func positiveSize(flag, s string) (int64, error) {
	n, err := ParseSize(s)
	if err == nil && n == 0 {
		err = errors.New("must be greater than 0")
	}
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", flag, s, err)
	}
	return n, nil
}

// ParseSize parses a byte count: plain bytes or a number with K, M, G or T
// (powers of 1024; case-insensitive; an optional B or iB after the unit),
// e.g. 64M, 1.5G, 4096.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(s)
	if strings.HasPrefix(t, "-") {
		return 0, errors.New("must not be negative")
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], t[i:]
	u := strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	exp := strings.Index("kmgt", u)
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || len(u) > 1 || u != "" && exp < 0 || unit == "ib" {
		return 0, errors.New("not a size (use bytes, or a number with K, M, G or T, e.g. 64M)")
	}
	v := f * math.Pow(1024, float64(exp+1))
	if u == "" {
		v = f
	}
	if v >= 1<<62 {
		return 0, errors.New("too large")
	}
	if v != math.Trunc(v) {
		return 0, errors.New("not a whole number of bytes")
	}
	return int64(v), nil
}

// FormatSize prints bytes with the largest unit that divides them (64M).
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}
