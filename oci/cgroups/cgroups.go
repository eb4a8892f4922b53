// Package cgroups places an OCI container in its cgroup (v2) and applies
// linux.resources: create, move a process in, set, update, freeze/thaw,
// list its processes, kill and remove. Where no cgroup can be had (rootless
// on a hybrid or v1 host) it does what runc does there: limits are skipped,
// the reason is kept for the log, never a crash.
package cgroups

import (
	"errors"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var errTODO = errors.New("oci/cgroups: not implemented yet")

// Options is how the runtime was invoked.
type Options struct {
	Systemd  bool // --systemd-cgroup: cgroupsPath is "slice:prefix:name"
	Rootless bool // not root in the initial user namespace
}

// Manager is one container's cgroup; it is stored in the container's
// record (JSON) so that later commands (update, pause, delete) find it.
type Manager struct {
	Path string `json:"path,omitempty"` // absolute directory of the cgroup; "" when skipped
	// Skipped says why the container has no cgroup of its own ("" when it has).
	Skipped string `json:"skipped,omitempty"`
	Systemd bool   `json:"systemd,omitempty"`
}

// New decides the container's cgroup from linux.cgroupsPath and checks
// linux.resources (pure: errors name the field).
func New(id, cgroupsPath string, r *specs.LinuxResources, o Options) (*Manager, error) {
	return nil, errTODO
}

// Apply creates the cgroup, moves pid into it and applies the resources.
func (m *Manager) Apply(pid int, r *specs.LinuxResources) error { return errTODO }

// Set applies new resources (update).
func (m *Manager) Set(r *specs.LinuxResources) error { return errTODO }

// Freeze and Thaw pause and resume every process of the cgroup.
func (m *Manager) Freeze() error { return errTODO }

// Thaw resumes a frozen cgroup.
func (m *Manager) Thaw() error { return errTODO }

// Frozen reports whether the cgroup is frozen.
func (m *Manager) Frozen() (bool, error) { return false, errTODO }

// Pids lists the cgroup's processes (recursively).
func (m *Manager) Pids() ([]int, error) { return nil, errTODO }

// Signal sends sig to every process of the cgroup (kill --all).
func (m *Manager) Signal(sig int) error { return errTODO }

// Destroy kills what is left and removes the cgroup.
func (m *Manager) Destroy() error { return errTODO }
