#!/usr/bin/env bash
# Build the guest's initramfs (any user; ~0.3 s).
#
#   vm/build-initramfs.sh KERNEL_DIR OUT.cpio
#
# KERNEL_DIR is fetch-kernel.sh's cache. The archive holds: static busybox
# with relative applet links, the kernel's modules, newuidmap/newgidmap with
# the libraries they load (so the guest has the sandbox's full id mapping),
# fuse-overlayfs,
# users tester (1000) and stock (1001) with subordinate id ranges, and
# guest/init + guest/vm-as-user. It is left uncompressed: unpacking gzip
# under TCG costs more than QEMU copying a few more MB.
# An unprivileged build cannot make root-owned or setuid files: guest/init
# fixes owners and modes at boot.
set -euo pipefail

die() { printf 'build-initramfs: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 KERNEL_DIR OUT.cpio"
kernel="$1"
out="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ver="$(cat "$kernel/version")" || die "no kernel in $kernel (run: sudo scripts/setup-host.sh)"
# A foreign-architecture cache (fetch-arm64.sh) brings its own busybox and
# id-map helpers (userland/); otherwise the host's are used.
if [[ -d "$kernel/userland" ]]; then
	busybox="$kernel/busybox"
else
	busybox="$(command -v busybox)" || die "busybox not found (apt-get install busybox-static)"
fi

root="$(mktemp -d "${TMPDIR:-/tmp}/sandbox-vm-initramfs.XXXXXX")"
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root" # the guest's /: uid 1000 must be able to exec from it

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,home,mnt,lib/modules}
cp "$busybox" "$root/bin/busybox"
if [[ ! -d "$kernel/userland" ]] && ldd "$busybox" >/dev/null 2>&1; then # the guest has no libc for it
	die "$busybox is not static (apt-get install busybox-static)"
fi
# Relative links (absolute ones, as `busybox --install -s` makes, point
# nowhere in the guest); one perl instead of ~400 ln processes. The list
# comes from the host's busybox (a foreign one cannot run here).
lister="$busybox"
[[ ! -d "$kernel/userland" ]] || lister="$(command -v busybox)" || die "busybox not found (apt-get install busybox-static)"
"$lister" --list | grep -vx busybox |
	(cd "$root/bin" && perl -ne 'chomp; symlink("busybox", $_) or die "$_: $!\n"')
ln -s ../bin/busybox "$root/sbin/modprobe" # request_module() runs /sbin/modprobe
cp -a "$kernel/modules/lib/modules/$ver" "$root/lib/modules/"

# newuidmap/newgidmap and fuse-overlayfs (what --overlay=auto falls back to
# where the kernel refuses overlayfs, as 5.10 does) with their shared
# libraries (ld.so included); a foreign-arch cache brings its own userland.
[[ ! -d "$kernel/userland" ]] || cp -a "$kernel/userland/." "$root/"
for helper in /usr/bin/newuidmap /usr/bin/newgidmap /usr/bin/fuse-overlayfs; do
	[[ ! -d "$kernel/userland" ]] || break
	[[ -x "$helper" ]] || die "$helper not found (apt-get install uidmap fuse-overlayfs)"
	cp "$helper" "$root$helper"
	for lib in $(ldd "$helper" | grep -oE '/[^ ]+'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:delegated test user:/home/tester:/bin/sh
stock:x:1001:1001:test user with stock Debian delegation:/home/stock:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
tester:x:1000:
stock:x:1001:
nogroup:x:65534:
GROUP
printf '%s\n' 'root:*:19000:0:99999:7:::' 'tester:*:19000:0:99999:7:::' 'stock:*:19000:0:99999:7:::' >"$root/etc/shadow"
printf '%s\n' tester:100000:65536 stock:200000:65536 >"$root/etc/subuid"
cp "$root/etc/subuid" "$root/etc/subgid"
install -m 0755 "$here/guest/init" "$root/init"
install -m 0755 "$here/guest/vm-as-user" "$root/bin/vm-as-user"

(cd "$root" && find . | LC_ALL=C sort | "$lister" cpio -o -H newc 2>/dev/null) >"$out.tmp"
mv "$out.tmp" "$out"
