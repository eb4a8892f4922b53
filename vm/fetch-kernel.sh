#!/usr/bin/env bash
# Fetch the Debian kernel for the VM tests into a cache directory.
#
#   vm/fetch-kernel.sh [CACHE_DIR]     # as root (apt-get download); default /var/cache/sandbox-vm
#
# Downloads (never installs) the package linux-image-amd64 depends on, and
# leaves in CACHE_DIR:
#   vmlinux    the uncompressed kernel: QEMU boots it through its PVH entry,
#              which skips ~2.5 s of in-guest xz decompression under TCG
#   modules/   the few modules the guest needs, with their dependencies and a
#              modules.dep (busybox depmod), laid out as lib/modules/VERSION
#   version    the kernel release
#   stamp      sha256 of this script: the cache is rebuilt only when it changes
# Everything is world-readable: the tests read it as an unprivileged user.
set -euo pipefail

cache="${1:-/var/cache/sandbox-vm}"
# Modules the guest loads (dependencies are added below).
readonly MODULES=(virtio_pci virtio_blk 9pnet_virtio 9p overlay)

say() { printf 'fetch-kernel: %s\n' "$*"; }
die() { printf 'fetch-kernel: ERROR: %s\n' "$*" >&2; exit 1; }

stamp="$(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ -f "$cache/stamp" && "$(cat "$cache/stamp")" == "$stamp" && -f "$cache/vmlinux" ]]; then
	say "kernel $(cat "$cache/version") in $cache is up to date"
	exit 0
fi
[[ "$(id -u)" -eq 0 ]] || die "must run as root (apt-get download), e.g. sudo scripts/setup-host.sh"
for tool in apt-get apt-cache dpkg xz busybox; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

umask 022
mkdir -p "$(dirname "$cache")"
work="$(mktemp -d "$cache.new.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'; }
download() { (cd "$work" && apt-get -q download "$1") >"$work/apt.log" 2>&1; }
pkg="$(resolve)"
if [[ -z "$pkg" ]] || ! download "$pkg"; then
	# Stale or missing package lists: update once and retry.
	apt-get -q -o DPkg::Lock::Timeout=300 update >"$work/apt.log" 2>&1 || true
	pkg="$(resolve)"
	[[ -n "$pkg" ]] || die "cannot resolve linux-image-amd64 (apt-get update failed?)"
	download "$pkg" || { cat "$work/apt.log" >&2; die "apt-get download $pkg failed"; }
fi
say "downloaded $pkg"
dpkg -x "$work"/*.deb "$work/x"
ver="$(ls "$work/x/lib/modules")"
[[ -n "$ver" && -f "$work/x/boot/vmlinuz-$ver" ]] || die "unexpected layout of $pkg"

# vmlinuz is a bzImage whose payload is xz-compressed: find the xz magic and
# decompress from there, as the kernel's scripts/extract-vmlinux does.
vmlinuz="$work/x/boot/vmlinuz-$ver"
offset="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)"
[[ -n "$offset" ]] || die "no xz payload in $vmlinuz"
tail -c "+$((offset + 1))" "$vmlinuz" | xz -dc --single-stream >"$work/vmlinux" 2>/dev/null || true
[[ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ')" == 7f454c46 ]] ||
	die "could not extract an ELF vmlinux from $vmlinuz"

# The wanted modules plus what their .modinfo depends= lists, recursively.
src="$work/x/lib/modules/$ver"
dst="$work/modules/lib/modules/$ver"
mkdir -p "$dst"
declare -A seen=()
add_module() {
	local name="$1" file rel dep
	[[ -z "${seen[$name]:-}" ]] || return 0
	seen[$name]=1
	file="$(find "$src/kernel" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) -print -quit)"
	if [[ -z "$file" ]]; then
		grep -qE "/${name//_/[-_]}\.ko\$" "$src/modules.builtin" || die "module $name not found"
		return 0 # built in
	fi
	rel="${file#"$src"/}"
	mkdir -p "$dst/$(dirname "$rel")"
	cp "$file" "$dst/$rel"
	for dep in $(busybox strings -a "$file" | sed -n 's/^depends=//p' | head -n 1 | tr , ' '); do
		add_module "$dep"
	done
}
for m in "${MODULES[@]}"; do
	add_module "$m"
done
cp "$src"/modules.builtin* "$src/modules.order" "$dst/"
busybox depmod -b "$work/modules" "$ver"

printf '%s\n' "$ver" >"$work/version"
printf '%s\n' "$stamp" >"$work/stamp"
rm -rf "$work/x" "$work"/*.deb "$work/apt.log"
chmod -R a+rX "$work"
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
say "kernel $ver ($(find "$cache/modules" -name '*.ko' | wc -l) modules) in $cache"
