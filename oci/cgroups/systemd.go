package cgroups

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"sandbox/cgroupdelegate"
)

// busAddress is the systemd manager's bus: the system bus as root, the
// user's bus rootless.
func (m *Manager) busAddress() (string, error) {
	if m.Rootless {
		return cgroupdelegate.UserBusAddress(os.Getenv, os.Getuid())
	}
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	return "unix:path=/run/dbus/system_bus_socket", nil
}

// startScope asks systemd for the transient scope holding pid and takes
// its cgroup.
func (m *Manager) startScope(pid int, ws []write) error {
	addr, err := m.busAddress()
	if err != nil {
		return fmt.Errorf("linux.cgroupsPath: --systemd-cgroup: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cg, err := cgroupdelegate.StartScopeIn(ctx, addr, m.Unit, m.Slice, pid, "sandbox-oci container "+m.Unit, unitProperties(ws)...)
	if err != nil {
		return fmt.Errorf("linux.cgroupsPath: --systemd-cgroup: %w", err)
	}
	mnt, err := m.mount()
	if err != nil {
		return err
	}
	if m.Path, err = mnt.Dir(cg); err != nil {
		return fmt.Errorf("linux.cgroupsPath: the scope %s: %w", m.Unit, err)
	}
	return nil
}

func (m *Manager) stopScope() error {
	addr, err := m.busAddress()
	if err != nil {
		return fmt.Errorf("stopping %s: %w", m.Unit, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cgroupdelegate.StopUnit(ctx, addr, m.Unit)
}

// setScope gives the scope the limits of an update as properties too.
func (m *Manager) setScope(ws []write) error {
	props := unitProperties(ws)
	if len(props) == 0 {
		return nil
	}
	addr, err := m.busAddress()
	if err != nil {
		return fmt.Errorf("%s: %w", ws[0].field, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cgroupdelegate.SetUnitProperties(ctx, addr, m.Unit, props...); err != nil {
		return fmt.Errorf("%s: %w", ws[0].field, err)
	}
	return nil
}

// unitProperties are the scope's properties for the limits systemd itself
// manages on a unit's own cgroup (memory.max, pids.max, cpu.max, …): given
// to systemd as well as written, so that a daemon-reload, which makes
// systemd write its view of them again, keeps them. Values systemd cannot
// take as a number (a unified "1G") are written only.
func unitProperties(ws []write) []cgroupdelegate.Property {
	var names []string
	vals := map[string]uint64{}
	set := func(name string, v uint64) {
		if _, ok := vals[name]; !ok {
			names = append(names, name)
		}
		vals[name] = v
	}
	num := func(s string) (uint64, bool) {
		if s == "max" {
			return math.MaxUint64, true
		}
		n, err := strconv.ParseUint(s, 10, 64)
		return n, err == nil
	}
	for _, w := range ws {
		name := map[string]string{"memory.max": "MemoryMax", "memory.low": "MemoryLow", "memory.swap.max": "MemorySwapMax",
			"pids.max": "TasksMax", "cpu.weight": "CPUWeight"}[w.file]
		if name != "" {
			if v, ok := num(w.value); ok {
				set(name, v)
			}
			continue
		}
		if w.file != "cpu.max" {
			continue
		}
		f := strings.Fields(w.value)
		if len(f) == 0 || len(f) > 2 {
			continue
		}
		period := uint64(100000)
		if len(f) == 2 {
			p, ok := num(f[1])
			if !ok || p == 0 || p == math.MaxUint64 {
				continue
			}
			period = p
			set("CPUQuotaPeriodUSec", p)
		}
		if q, ok := num(f[0]); ok && (q == math.MaxUint64 || q < math.MaxUint64/1000000) {
			if q != math.MaxUint64 {
				q = q * 1000000 / period
			}
			set("CPUQuotaPerSecUSec", q)
		}
	}
	props := make([]cgroupdelegate.Property, 0, len(names))
	for _, n := range names {
		props = append(props, cgroupdelegate.Property{Name: n, Value: dbus.MakeVariant(vals[n])})
	}
	return props
}
