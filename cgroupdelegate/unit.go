package cgroupdelegate

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Ownership is not delegation. Below user@UID.service the user manager
// runs as the user, so every unit's cgroup belongs to the user, delegated
// or not; a unit that is not delegated is still managed by systemd (its
// OOMPolicy=stop stops the whole unit when an OOM kill happens anywhere
// in it). There, only systemd's word counts: the delegation xattr it sets
// on the unit's cgroup, or the unit's Delegate property over D-Bus.

// UserUnit finds the unit of the user manager whose tree holds cgroup
// directory dir: the first element below …/user@UID.service that is not a
// slice. inTree is false outside a user manager's tree; unit is "" for the
// manager's own cgroup or a slice.
func UserUnit(dir string) (unitDir, unit string, inTree bool) {
	parts := strings.Split(path.Clean(dir), "/")
	for i, p := range parts {
		if !strings.HasPrefix(p, "user@") || !strings.HasSuffix(p, ".service") {
			continue
		}
		for j := i + 1; j < len(parts); j++ {
			if !strings.HasSuffix(parts[j], ".slice") {
				return strings.Join(parts[:j+1], "/"), parts[j], true
			}
		}
		return "", "", true
	}
	return "", "", false
}

// DelegateXattr reads the delegation mark systemd sets on a unit's cgroup
// (user.delegate, readable by the user; trusted.delegate needs
// CAP_SYS_ADMIN to read): "1" is delegated. known is false when neither is
// there (an older systemd, or the filesystem keeps no xattrs).
func DelegateXattr(dir string) (delegated, known bool) {
	for _, name := range []string{"user.delegate", "trusted.delegate"} {
		buf := make([]byte, 8)
		n, err := unix.Getxattr(dir, name, buf)
		if err == nil {
			return strings.TrimSpace(string(buf[:n])) == "1", true
		}
	}
	return false, false
}

// unitInterface is the D-Bus interface of a unit type that has Delegate=.
func unitInterface(unit string) string {
	switch path.Ext(unit) {
	case ".scope":
		return scopeIface
	case ".service":
		return "org.freedesktop.systemd1.Service"
	case ".socket":
		return "org.freedesktop.systemd1.Socket"
	case ".mount":
		return "org.freedesktop.systemd1.Mount"
	case ".swap":
		return "org.freedesktop.systemd1.Swap"
	}
	return ""
}

// UnitDelegated asks the systemd manager on the bus at addr whether unit
// has Delegate=yes.
func UnitDelegated(ctx context.Context, addr, unit string) (bool, error) {
	iface := unitInterface(unit)
	if iface == "" {
		return false, fmt.Errorf("%s is not a unit type that can be delegated", unit)
	}
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("connecting to the systemd user bus at %s: %w", addr, err)
	}
	defer conn.Close()
	var unitPath dbus.ObjectPath
	if err := conn.Object(systemdDest, systemdPath).CallWithContext(ctx, managerIface+".GetUnit", 0, unit).Store(&unitPath); err != nil {
		return false, fmt.Errorf("asking the systemd user manager about %s: %w", unit, err)
	}
	var v dbus.Variant
	if err := conn.Object(systemdDest, unitPath).CallWithContext(ctx, propertiesGet, 0, iface, "Delegate").Store(&v); err != nil {
		return false, fmt.Errorf("reading Delegate of %s: %w", unit, err)
	}
	d, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("Delegate of %s is %s, not a boolean", unit, v.Signature())
	}
	return d, nil
}

// Delegation is the judgment on the caller's cgroup.
type Delegation struct {
	Delegated bool
	// Unit is the user manager's unit holding the cgroup ("" outside a user
	// manager's tree); Why says how it was decided, or why not delegated.
	Unit, Why string
}

// JudgeDelegation says whether the caller may use dir as delegated: it
// must be writable, and inside a user manager's tree its unit must be
// delegated by systemd's word (xattr, else ask(unit) over D-Bus; an
// unanswered question is a no).
func JudgeDelegation(dir string, uid int, ask func(unit string) (bool, error)) Delegation {
	if !Writable(dir) {
		return Delegation{Why: fmt.Sprintf("your cgroup %s is not delegated to you (its cgroup.procs and cgroup.subtree_control are not writable by uid %d)", dir, uid)}
	}
	unitDir, unit, inTree := UserUnit(dir)
	if !inTree || unit == "" {
		return Delegation{Delegated: true, Why: fmt.Sprintf("your cgroup %s is delegated to you", dir)}
	}
	d := Delegation{Unit: unit}
	if v, known := DelegateXattr(unitDir); known {
		d.Delegated = v
	} else if v, err := ask(unit); err != nil {
		d.Why = fmt.Sprintf("your cgroup %s belongs to your user manager's unit %s, whose delegation is unknown (no delegate xattr; %v)", dir, unit, err)
		return d
	} else {
		d.Delegated = v
	}
	if d.Delegated {
		d.Why = fmt.Sprintf("your cgroup %s is in %s, delegated to you (Delegate=yes)", dir, unit)
	} else {
		d.Why = fmt.Sprintf("your cgroup %s is in %s, which your user manager owns but does not delegate (Delegate=no: systemd still manages it)", dir, unit)
	}
	return d
}
