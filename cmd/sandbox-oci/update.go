package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/state"
)

type updateCmd struct {
	Resources    string `short:"r" help:"linux.resources JSON from FILE, or - for stdin." placeholder:"FILE"`
	Memory       string `help:"Memory limit (bytes, or with k/m/g; -1: none)."`
	MemorySwap   string `name:"memory-swap" help:"Memory plus swap limit (bytes, k/m/g; -1: none)."`
	MemoryReserv string `name:"memory-reservation" help:"Memory soft limit (bytes, k/m/g)."`
	CPUShares    string `name:"cpu-share" aliases:"cpu-shares" help:"CPU shares (relative weight)."`
	CPUQuota     string `name:"cpu-quota" help:"CPU CFS quota (µs per period; -1: none)."`
	CPUPeriod    string `name:"cpu-period" help:"CPU CFS period (µs)."`
	CpusetCpus   string `name:"cpuset-cpus" help:"CPUs to run on (0-3,5)."`
	CpusetMems   string `name:"cpuset-mems" help:"Memory nodes (0-1)."`
	PidsLimit    string `name:"pids-limit" help:"Maximum number of processes (-1: none)."`
	BlkioWeight  string `name:"blkio-weight" help:"Block IO weight (10-1000)."`
	ID           string `arg:"" help:"Container id."`
}

func (c *updateCmd) Run(g *globals) error {
	ct, unlock, err := loadLocked(g, c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := ct.Status()
	if err != nil {
		return err
	}
	if st == specs.StateStopped {
		return fmt.Errorf("update: container %q is stopped", c.ID)
	}
	spec, err := loadSpec(ct)
	if err != nil {
		return err
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	r := spec.Linux.Resources
	if r == nil {
		r = &specs.LinuxResources{}
	}
	if c.Resources != "" {
		var in io.Reader = os.Stdin
		if c.Resources != "-" {
			f, err := os.Open(c.Resources)
			if err != nil {
				return fmt.Errorf("--resources: %w", err)
			}
			defer f.Close()
			in = f
		}
		var nr specs.LinuxResources
		if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&nr); err != nil {
			return fmt.Errorf("--resources: %w", err)
		}
		mergeResources(r, &nr)
	}
	if err := c.flags(r); err != nil {
		return err
	}
	if ct.Cgroup == nil || ct.Cgroup.Path == "" {
		return fmt.Errorf("update: the container has no cgroup (%s)", skippedWhy(ct))
	}
	if err := ct.Cgroup.Set(r); err != nil {
		return err
	}
	spec.Linux.Resources = r
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return state.WriteAtomic(filepath.Join(ct.Dir, state.ConfigFile), data, 0o600)
}

// mergeResources sets in r what n gives (update's JSON names only what
// changes).
func mergeResources(r, n *specs.LinuxResources) {
	if n.Memory != nil {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		m, o := r.Memory, n.Memory
		setI64(&m.Limit, o.Limit)
		setI64(&m.Swap, o.Swap)
		setI64(&m.Reservation, o.Reservation)
		if o.Swappiness != nil {
			m.Swappiness = o.Swappiness
		}
		if o.DisableOOMKiller != nil {
			m.DisableOOMKiller = o.DisableOOMKiller
		}
	}
	if n.CPU != nil {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		c, o := r.CPU, n.CPU
		if o.Shares != nil {
			c.Shares = o.Shares
		}
		setI64(&c.Quota, o.Quota)
		if o.Period != nil {
			c.Period = o.Period
		}
		if o.Cpus != "" {
			c.Cpus = o.Cpus
		}
		if o.Mems != "" {
			c.Mems = o.Mems
		}
		if o.Idle != nil {
			c.Idle = o.Idle
		}
	}
	if n.Pids != nil {
		r.Pids = n.Pids
	}
	if n.BlockIO != nil {
		r.BlockIO = n.BlockIO
	}
	if n.Unified != nil {
		if r.Unified == nil {
			r.Unified = map[string]string{}
		}
		for k, v := range n.Unified {
			r.Unified[k] = v
		}
	}
	if n.HugepageLimits != nil {
		r.HugepageLimits = n.HugepageLimits
	}
}

func setI64(dst **int64, v *int64) {
	if v != nil {
		*dst = v
	}
}

func (c *updateCmd) flags(r *specs.LinuxResources) error {
	mem := func() *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	cpu := func() *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	for _, f := range []struct {
		name, val string
		set       func(int64)
		size      bool
	}{
		{"--memory", c.Memory, func(v int64) { mem().Limit = &v }, true},
		{"--memory-swap", c.MemorySwap, func(v int64) { mem().Swap = &v }, true},
		{"--memory-reservation", c.MemoryReserv, func(v int64) { mem().Reservation = &v }, true},
		{"--cpu-share", c.CPUShares, func(v int64) { u := uint64(v); cpu().Shares = &u }, false},
		{"--cpu-quota", c.CPUQuota, func(v int64) { cpu().Quota = &v }, false},
		{"--cpu-period", c.CPUPeriod, func(v int64) { u := uint64(v); cpu().Period = &u }, false},
		{"--pids-limit", c.PidsLimit, func(v int64) { r.Pids = &specs.LinuxPids{Limit: &v} }, false},
		{"--blkio-weight", c.BlkioWeight, func(v int64) {
			w := uint16(v)
			if r.BlockIO == nil {
				r.BlockIO = &specs.LinuxBlockIO{}
			}
			r.BlockIO.Weight = &w
		}, false},
	} {
		if f.val == "" {
			continue
		}
		v, err := parseSize(f.val, f.size)
		if err != nil {
			return fmt.Errorf("%s %q: %w", f.name, f.val, err)
		}
		switch f.name {
		case "--cpu-share", "--cpu-period":
			if v < 0 {
				return fmt.Errorf("%s %q: must not be negative", f.name, f.val)
			}
		case "--blkio-weight":
			if v < 10 || v > 1000 {
				return fmt.Errorf("%s %q: want 10..1000", f.name, f.val)
			}
		}
		f.set(v)
	}
	if c.CpusetCpus != "" {
		cpu().Cpus = c.CpusetCpus
	}
	if c.CpusetMems != "" {
		cpu().Mems = c.CpusetMems
	}
	return nil
}

// parseSize reads an integer, -1, or (for sizes) one with a k/m/g/t
// suffix (powers of 1024; "b" and "ib" tolerated).
func parseSize(s string, size bool) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		if v < -1 {
			return 0, fmt.Errorf("below -1")
		}
		return v, nil
	}
	if !size {
		return 0, fmt.Errorf("not an integer")
	}
	l := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(s), "b"), "i")
	mult := int64(1)
	switch {
	case strings.HasSuffix(l, "k"):
		mult = 1 << 10
	case strings.HasSuffix(l, "m"):
		mult = 1 << 20
	case strings.HasSuffix(l, "g"):
		mult = 1 << 30
	case strings.HasSuffix(l, "t"):
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("not a size")
	}
	v, err := strconv.ParseInt(l[:len(l)-1], 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("not a size")
	}
	return v * mult, nil
}
