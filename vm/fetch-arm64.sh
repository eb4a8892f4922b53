#!/usr/bin/env bash
# Fetch what the arm64 VM guest needs into a cache directory.
#
#   vm/fetch-arm64.sh [CACHE_DIR]     # as root; default /var/cache/sandbox-vm-arm64
#
# Uses a private apt configuration (CACHE_DIR.apt: Debian 12 arm64 package
# lists of its own), so the host's dpkg architectures and apt state are left
# as they are. Downloads (never installs) the packages and leaves in CACHE_DIR:
#   Image      the uncompressed arm64 kernel (linux-image-arm64's dependency)
#   modules/   the few modules the guest needs, their dependencies and a
#              modules.dep (busybox depmod), laid out as lib/modules/VERSION
#   busybox    busybox-static for arm64
#   userland/  newuidmap/newgidmap (uidmap) with the libraries they load,
#              ld-linux-aarch64.so.1 included, laid out as in the guest's /
#   version    the kernel release
#   stamp      sha256 of this script: the cache is rebuilt only when it changes
# Everything is world-readable: the tests read it as an unprivileged user.
set -euo pipefail

cache="${1:-/var/cache/sandbox-vm-arm64}"
# Modules the guest loads (dependencies are added below); tun for --net=builtin.
readonly MODULES=(virtio_pci virtio_blk 9pnet_virtio 9p overlay tun)
# newuidmap/newgidmap and the libraries they link (Debian 12).
readonly USERLAND=(uidmap libc6 libaudit1 libcap-ng0 libselinux1 libpcre2-8-0)

say() { printf 'fetch-arm64: %s\n' "$*"; }
die() { printf 'fetch-arm64: ERROR: %s\n' "$*" >&2; exit 1; }

stamp="$(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ -f "$cache/stamp" && "$(cat "$cache/stamp")" == "$stamp" && -f "$cache/Image" ]]; then
	say "arm64 kernel $(cat "$cache/version") in $cache is up to date"
	exit 0
fi
[[ "$(id -u)" -eq 0 ]] || die "must run as root (apt-get download), e.g. sudo scripts/setup-host.sh"
for tool in apt-get apt-cache dpkg busybox gzip; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

umask 022
apt_dir="$cache.apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/parts"
cat >"$apt_dir/sources.list" <<'SOURCES'
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
SOURCES
: >"$apt_dir/status"
apt=(-q -o APT::Architecture=arm64 -o APT::Architectures::=arm64
	-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts="$apt_dir/parts"
	-o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status"
	-o Dir::Cache="$apt_dir" -o Dir::Cache::archives="$apt_dir/archives"
	-o Debug::NoLocking=1)

mkdir -p "$(dirname "$cache")"
work="$(mktemp -d "$cache.new.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

apt-get "${apt[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; die "apt-get update (arm64 lists) failed"; }
pkg="$(apt-cache "${apt[@]}" depends linux-image-arm64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')"
[[ -n "$pkg" ]] || die "cannot resolve linux-image-arm64"
(cd "$work" && apt-get "${apt[@]}" download "$pkg:arm64" busybox-static:arm64 "${USERLAND[@]/%/:arm64}") >>"$work/apt.log" 2>&1 ||
	{ cat "$work/apt.log" >&2; die "apt-get download failed"; }
say "downloaded $pkg, busybox-static, ${USERLAND[*]}"

for deb in "$work"/*.deb; do
	case "$(basename "$deb")" in
	linux-image-*) dpkg -x "$deb" "$work/k" ;;
	busybox-static_*) dpkg -x "$deb" "$work/bb" ;;
	*) dpkg -x "$deb" "$work/u" ;;
	esac
done
ver="$(ls "$work/k/lib/modules")"
[[ -n "$ver" && -f "$work/k/boot/vmlinuz-$ver" ]] || die "unexpected layout of $pkg"
# Debian 12's arm64 vmlinuz is a plain Image (other releases gzip it).
if [[ "$(head -c 2 "$work/k/boot/vmlinuz-$ver" | od -An -tx1 | tr -d ' ')" == 1f8b ]]; then
	gzip -dc <"$work/k/boot/vmlinuz-$ver" >"$work/Image" || die "cannot decompress vmlinuz-$ver"
else
	cp "$work/k/boot/vmlinuz-$ver" "$work/Image"
fi
[[ "$(dd if="$work/Image" bs=1 skip=56 count=4 2>/dev/null)" == ARMd ]] || die "vmlinuz-$ver is not an arm64 Image"

src="$work/k/lib/modules/$ver"
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

cp "$work/bb/bin/busybox" "$work/busybox"
mkdir -p "$work/userland/usr/bin" "$work/userland/lib/aarch64-linux-gnu"
cp "$work/u/usr/bin/newuidmap" "$work/u/usr/bin/newgidmap" "$work/userland/usr/bin/"
for lib in ld-linux-aarch64.so.1 libc.so.6 libaudit.so.1 libcap-ng.so.0 libselinux.so.1 libpcre2-8.so.0; do
	f="$(find "$work/u" -name "$lib" -print -quit)"
	[[ -n "$f" ]] || die "$lib not found in ${USERLAND[*]}"
	cp -L "$f" "$work/userland/lib/aarch64-linux-gnu/$lib"
done
ln -s aarch64-linux-gnu/ld-linux-aarch64.so.1 "$work/userland/lib/ld-linux-aarch64.so.1"

printf '%s\n' "$ver" >"$work/version"
printf '%s\n' "$stamp" >"$work/stamp"
rm -rf "$work/k" "$work/bb" "$work/u" "$work"/*.deb "$work/apt.log"
chmod -R a+rX "$work"
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
say "arm64 kernel $ver ($(find "$cache/modules" -name '*.ko' | wc -l) modules) in $cache"
