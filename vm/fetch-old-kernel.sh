#!/usr/bin/env bash
# Fetch Debian 11's kernel (Linux 5.10, the oldest sandbox supports) for the
# old-kernel VM guest (vm/oldkernel_test.go).
#
#   vm/fetch-old-kernel.sh [CACHE_DIR]   # as root; default /var/cache/sandbox-vm-5.10
#
# fetch-kernel.sh does the work, with apt-get and apt-cache pointed at a
# private configuration in CACHE_DIR.apt (its own sources list naming the
# bullseye suite on the mirror the host's Debian sources use, its own state
# and cache): the host's apt state is never touched. Then the fuse module
# (fuse-overlayfs is how 5.10 gets overlays in a user namespace) is added
# from the same package. A no-op while stamp-old (this script's and
# fetch-kernel.sh's hash) matches.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${1:-/var/cache/sandbox-vm-5.10}"
readonly SUITE=bullseye

say() { printf 'fetch-old-kernel: %s\n' "$*"; }
die() { printf 'fetch-old-kernel: ERROR: %s\n' "$*" >&2; exit 1; }

stamp="$(cat "$here/fetch-kernel.sh" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
if [[ -f "$cache/stamp-old" && "$(cat "$cache/stamp-old")" == "$stamp" && -f "$cache/vmlinux" ]]; then
	say "kernel $(cat "$cache/version") in $cache is up to date"
	exit 0
fi
[[ "$(id -u)" -eq 0 ]] || die "must run as root (apt-get download), e.g. sudo scripts/setup-host.sh"

# The host's Debian mirror (deb822 or one-line sources), else deb.debian.org.
mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }')"
[[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
private="$cache.apt"
umask 022
mkdir -p "$private/state/lists/partial" "$private/cache/archives/partial" "$private/parts" "$private/debs"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$mirror" "$SUITE" >"$private/sources.list"

# apt-get and apt-cache for fetch-kernel.sh: the private configuration; a
# downloaded package is also kept in $private/debs for the fuse module.
shims="$(mktemp -d)"
trap 'rm -rf "$shims"' EXIT
opts="-o Dir::Etc::sourcelist=$private/sources.list -o Dir::Etc::sourceparts=$private/parts"
opts+=" -o Dir::State=$private/state -o Dir::Cache=$private/cache"
printf '#!/bin/sh\nexec %s %s "$@"\n' "$(command -v apt-cache)" "$opts" >"$shims/apt-cache"
printf '#!/bin/sh\n%s %s "$@" || exit\ncase " $* " in *" download "*) rm -f %s/*.deb; cp ./*.deb %s/ ;; esac\n' \
	"$(command -v apt-get)" "$opts" "$private/debs" "$private/debs" >"$shims/apt-get"
chmod 0755 "$shims/apt-cache" "$shims/apt-get"

# fetch-kernel.sh resolves the package from the package lists first.
"$shims/apt-get" -q update >"$private/update.log" 2>&1 || { tail -n 20 "$private/update.log" >&2; die "apt-get update ($SUITE) failed"; }
rm -f "$cache/stamp" # fetch-kernel.sh: fetch anew
PATH="$shims:$PATH" bash "$here/fetch-kernel.sh" "$cache"
ver="$(cat "$cache/version")"
deb="$(ls "$private/debs/linux-image-$ver"_*.deb 2>/dev/null | head -n 1)"
[[ -n "$deb" ]] || die "the package of $ver was not kept in $private/debs"
rel="lib/modules/$ver/kernel/fs/fuse/fuse.ko"
dpkg --fsys-tarfile "$deb" | tar -x -C "$cache/modules" "./$rel" || die "no $rel in $deb"
busybox depmod -b "$cache/modules" "$ver"
chmod -R a+rX "$cache"
printf '%s\n' "$stamp" >"$cache/stamp-old"
say "kernel $ver with the fuse module in $cache"
