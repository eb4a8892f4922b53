// Package oci holds the end-to-end tests of sandbox-oci, the OCI runtime
// (cmd/sandbox-oci), run as the unprivileged test user: rootless bundles
// (a user namespace in config.json) over a busybox rootfs, and rootless
// podman with --runtime. The tests that need root (containerd, the
// runtime-tools validation suite) are in e2e/ociroot.
package oci
