// Package state keeps the containers' records under the runtime's --root:
// one directory per container id, its record, its lock, and the OCI state
// document (`state`).
package state

import (
	"errors"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/cgroups"
)

var errTODO = errors.New("oci/state: not implemented yet")

// Container is one container's record (<root>/<id>/state.json).
type Container struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Pid         int               `json:"pid"`       // init's pid (the container's process once started)
	PidStart    uint64            `json:"pid_start"` // its start time (/proc/PID/stat field 22): a reused pid is not ours
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Cgroup      *cgroups.Manager  `json:"cgroup,omitempty"`
	Rootless    bool              `json:"rootless,omitempty"`
	// Dir is the container's directory (not stored).
	Dir string `json:"-"`
}

// Load reads the record of id under root; an unknown id is an error that
// says so (`container "x" does not exist`).
func Load(root, id string) (*Container, error) { return nil, errTODO }

// Status is the container's OCI status: creating, created, running,
// paused or stopped.
func (c *Container) Status() (specs.ContainerState, error) { return "", errTODO }

// State is the OCI state document of the container.
func (c *Container) State() (*specs.State, error) { return nil, errTODO }

// Lock takes the container's lock for a command that changes it.
func (c *Container) Lock() (unlock func(), err error) { return nil, errTODO }
