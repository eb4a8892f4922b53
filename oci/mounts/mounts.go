// Package mounts builds an OCI container's root filesystem inside its mount
// namespace from config.json: root, mounts, linux.devices, rootfsPropagation,
// pivot_root, maskedPaths, readonlyPaths and root.readonly.
package mounts

import (
	"errors"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var errTODO = errors.New("oci/mounts: not implemented yet")

// Check validates what this package will do, without touching anything
// (create calls it before any namespace exists). Each error names the field
// (`mounts[3].destination: ...`).
func Check(s *specs.Spec, rootfs string) error { return errTODO }

// Setup runs in the container's init, in its new mount namespace: makes
// every mount private (then rootfsPropagation), binds rootfs (absolute host
// path) on itself, mounts s.Mounts inside it (destinations resolved inside
// rootfs, never through a symlink out of it), and creates linux.devices
// and the default devices (binds of the host's where mknod is refused).
func Setup(s *specs.Spec, rootfs string) error { return errTODO }

// Pivot makes rootfs the root (pivot_root) and changes to "/".
func Pivot(rootfs string) error { return errTODO }

// Finish runs after Pivot: maskedPaths, readonlyPaths, root.readonly.
func Finish(s *specs.Spec) error { return errTODO }
