// Package oci is the root of sandbox's OCI runtime face (cmd/sandbox-oci):
// the runc command line over a bundle's config.json, so that podman,
// containerd and Kubernetes can run containers with sandbox's confinement.
//
// Its subpackages, one job each (none imports the command):
//
//	oci/config   read config.json (runtime-spec's own types), bounded, and check it: every error names the field
//	oci/state    the containers' records under --root: state.json, locks, the OCI state document
//	oci/mounts   the container's root filesystem: root, mounts, devices, pivot_root, masked and read-only paths
//	oci/cgroups  the container's cgroup v2: linux.resources, freeze/thaw, update, its processes, removal
//	oci/process  the process side: rlimits, user, capabilities, no_new_privs, seccomp, console, execve
//
// The container's init is cmd/sandbox-oci itself, re-executed from a sealed
// memfd (internal/memexec) in the new namespaces; `exec` enters them with a
// small C stage that runs before the Go runtime (cmd/sandbox-oci/nsenter.c).
package oci
