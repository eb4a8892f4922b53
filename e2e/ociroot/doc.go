// Package ociroot holds the end-to-end tests of sandbox-oci that need root:
// containerd driving it through its runc shim, and the opencontainers
// runtime-tools validation suite (scripts/oci-validation.sh). The tests
// build only with the tag ociroot (this file without it, so that a plain
// `go test ./...` sees a package with no tests); scripts/test.sh runs them
// as root after the unprivileged phase. The runtime under test is
// $SANDBOX_OCI_RUNTIME, else sandbox-oci beside $SANDBOX_BIN: pointing
// SANDBOX_OCI_RUNTIME at runc shows what the tests expect of a runtime.
package ociroot
