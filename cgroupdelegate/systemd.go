package cgroupdelegate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/godbus/dbus/v5"
)

// The systemd manager's bus names.
const (
	systemdDest    = "org.freedesktop.systemd1"
	systemdPath    = dbus.ObjectPath("/org/freedesktop/systemd1")
	managerIface   = "org.freedesktop.systemd1.Manager"
	scopeIface     = "org.freedesktop.systemd1.Scope"
	propertiesGet  = "org.freedesktop.DBus.Properties.Get"
	jobRemovedName = managerIface + ".JobRemoved"
)

// ErrNoUserBus means no bus of a systemd user manager was found.
var ErrNoUserBus = errors.New("no systemd user bus (DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus does not exist)")

// UserBusAddress finds the user manager's bus the way sd_bus_open_user
// does: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus, else
// /run/user/UID/bus.
func UserBusAddress(getenv func(string) string, uid int) (string, error) {
	if a := getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	dirs := []string{filepath.Join("/run/user", strconv.Itoa(uid))}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "bus")); err == nil {
			return "unix:path=" + filepath.Join(d, "bus"), nil
		}
	}
	return "", ErrNoUserBus
}

// property is one (sv) of StartTransientUnit's properties.
type property struct {
	Name  string
	Value dbus.Variant
}

// Property is a unit property for StartScopeIn and SetUnitProperties.
type Property = property

// StartScope asks the systemd manager on the bus at addr for a transient
// scope unit holding pid with Delegate=yes (mode "fail": an existing unit
// of that name is an error), waits for the job, and returns the scope's
// cgroup path. This is what `systemd-run --user --scope -p Delegate=yes`
// does; the manager moves pid into the scope and chowns it to the user.
func StartScope(ctx context.Context, addr, unit string, pid int, description string) (string, error) {
	return StartScopeIn(ctx, addr, unit, "", pid, description)
}

// StartScopeIn is StartScope with the scope placed in slice ("": the
// manager's default) and extra properties (resource limits).
func StartScopeIn(ctx context.Context, addr, unit, slice string, pid int, description string, extra ...Property) (string, error) {
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("connecting to the systemd user bus at %s: %w", addr, err)
	}
	defer conn.Close()
	// Listen before the call: the job may end before the reply arrives.
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("JobRemoved")); err != nil {
		return "", fmt.Errorf("subscribing to systemd's job signals on %s: %w", addr, err)
	}
	mgr := conn.Object(systemdDest, systemdPath)
	// Subscribe asks systemd to emit its signals at all; it fails only
	// when nobody serves the name, which the next call reports better.
	mgr.CallWithContext(ctx, managerIface+".Subscribe", 0)
	props := []property{
		{"Description", dbus.MakeVariant(description)},
		{"PIDs", dbus.MakeVariant([]uint32{uint32(pid)})},
		{"Delegate", dbus.MakeVariant(true)},
		// Stop the scope at once when its processes are gone.
		{"CollectMode", dbus.MakeVariant("inactive-or-failed")},
	}
	if slice != "" {
		props = append(props, property{"Slice", dbus.MakeVariant(slice)})
	}
	props = append(props, extra...)
	aux := []struct {
		Name  string
		Props []property
	}{}
	var job dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, managerIface+".StartTransientUnit", 0, unit, "fail", props, aux).Store(&job); err != nil {
		return "", fmt.Errorf("asking systemd (user bus %s) for the scope %s: %w", addr, unit, err)
	}
	if err := waitJob(ctx, sigs, job, unit, "start", "starting"); err != nil {
		return "", err
	}
	var unitPath dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, managerIface+".GetUnit", 0, unit).Store(&unitPath); err != nil {
		return "", fmt.Errorf("looking up the scope %s: %w", unit, err)
	}
	var cg string
	if err := conn.Object(systemdDest, unitPath).CallWithContext(ctx, propertiesGet, 0, scopeIface, "ControlGroup").Store(&cg); err != nil {
		return "", fmt.Errorf("reading the cgroup of the scope %s: %w", unit, err)
	}
	if cg == "" {
		return "", fmt.Errorf("systemd started the scope %s but reports no cgroup for it", unit)
	}
	return cg, nil
}

// StopUnit asks the systemd manager on the bus at addr to stop unit and
// waits for the job; a unit that is not loaded (gone already) is no error.
func StopUnit(ctx context.Context, addr, unit string) error {
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connecting to the systemd bus at %s: %w", addr, err)
	}
	defer conn.Close()
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("JobRemoved")); err != nil {
		return fmt.Errorf("subscribing to systemd's job signals on %s: %w", addr, err)
	}
	mgr := conn.Object(systemdDest, systemdPath)
	mgr.CallWithContext(ctx, managerIface+".Subscribe", 0)
	var job dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, managerIface+".StopUnit", 0, unit, "replace").Store(&job); err != nil {
		var de dbus.Error
		if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit" {
			return nil
		}
		return fmt.Errorf("asking systemd (bus %s) to stop %s: %w", addr, unit, err)
	}
	return waitJob(ctx, sigs, job, unit, "stop", "stopping")
}

// SetUnitProperties changes properties of a running unit (runtime only:
// they end with it).
func SetUnitProperties(ctx context.Context, addr, unit string, props ...Property) error {
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connecting to the systemd bus at %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.Object(systemdDest, systemdPath).CallWithContext(ctx, managerIface+".SetUnitProperties", 0, unit, true, props).Err; err != nil {
		return fmt.Errorf("setting properties of %s: %w", unit, err)
	}
	return nil
}

// waitJob waits for JobRemoved of job (to verb the unit) and checks its result.
func waitJob(ctx context.Context, sigs <-chan *dbus.Signal, job dbus.ObjectPath, unit, verb, gerund string) error {
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for systemd to %s the scope %s: %w", verb, unit, ctx.Err())
		case s, ok := <-sigs:
			if !ok {
				return fmt.Errorf("the systemd bus closed while %s the scope %s", gerund, unit)
			}
			if s.Name != jobRemovedName || len(s.Body) != 4 {
				continue
			}
			if p, _ := s.Body[1].(dbus.ObjectPath); p != job {
				continue
			}
			if result, _ := s.Body[3].(string); result != "done" {
				return fmt.Errorf("systemd could not %s the scope %s: job result %q (see journalctl [--user] -u %s)", verb, unit, result, unit)
			}
			return nil
		}
	}
}
