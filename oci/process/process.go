// Package process applies an OCI process (config.json's process, or exec's
// --process) to the calling process and executes it: rlimits,
// oomScoreAdj, user (additional groups, gid, uid), capabilities,
// no_new_privs, seccomp, cwd, environment, the console, execve. Used by the
// container's init once started and by exec once inside the namespaces.
package process

import (
	"errors"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var errTODO = errors.New("oci/process: not implemented yet")

// Plan is a checked process, ready to apply (JSON, so that a parent can
// check it and hand it on).
type Plan struct {
	Process *specs.Process `json:"process"`
}

// Prepare checks p (with the spec's linux.seccomp, linux.sysctl where it
// matters) and compiles what can be compiled; errors name the field
// (`process.capabilities.bounding[2]: ...`). Pure.
func Prepare(p *specs.Process, s *specs.Spec) (*Plan, error) { return nil, errTODO }

// Console opens a pty in the current root's /dev/pts, sends its master over
// the unix socket at path (runc's console-socket protocol: SCM_RIGHTS) and
// makes the slave the calling process's stdio and controlling terminal.
func Console(socketPath string) error { return errTODO }

// Exec applies the plan to the calling process and executes it; it
// returns only on failure.
func (p *Plan) Exec() error { return errTODO }
