// Package vm is the project's QEMU test harness: vm_test.go boots one
// software-emulated VM (Debian kernel, busybox initramfs, pure cgroup v2 with
// a systemd-shaped delegated subtree) and runs the guest tests of vm/guest in
// it as an unprivileged user. The shell scripts next to it fetch the kernel
// (fetch-kernel.sh, as root, from scripts/setup-host.sh), build the initramfs
// and boot the guest (run.sh). See README.md.
package vm
