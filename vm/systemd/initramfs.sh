#!/usr/bin/env bash
# vm/systemd/initramfs.sh IMAGE_DIR INITRAMFS.cpio: append the systemd
# guest's first stage (/stage1, and IMAGE_DIR/modules as /stage1.modules)
# to the busybox initramfs build-initramfs.sh made; the kernel unpacks
# concatenated archives in order (vm/run.sh --systemd).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/sandbox-vm-stage1.XXXXXX")"
trap 'rm -rf "$dir"' EXIT
install -m 0755 "$here/stage1" "$dir/stage1"
cp -r "$1/modules" "$dir/stage1.modules"
(cd "$dir" && find stage1 stage1.modules | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) >>"$2"
