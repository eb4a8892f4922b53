// Package guest holds the tests that run inside the test VM (see vm/README.md):
// as an unprivileged user in a systemd-shaped delegated cgroup v2 subtree, on
// the Debian kernel, in a busybox initramfs. Its test files carry the build
// tag vmguest, so `go test ./...` on a host compiles none of them; vm/vm_test.go
// builds them with `go test -c -tags vmguest`, boots the VM once and relays
// each guest test as a subtest of TestVM.
package guest
