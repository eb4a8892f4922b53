#!/usr/bin/env bash
# Build the systemd guest's root filesystem (as root, from scripts/setup-host.sh).
#
#   vm/systemd/build-image.sh KERNEL_CACHE [CACHE_DIR]
#
# KERNEL_CACHE is vm/fetch-kernel.sh's (its version file names the kernel);
# CACHE_DIR defaults to /var/cache/sandbox-vm-systemd.
#
# A Debian 12 (bookworm) system with systemd as PID 1, dbus, logind and a
# lingering user tester (1000, with subordinate ids) whose user manager has
# Debian's stock delegation (user@.service Delegate=pids memory cpu: no io),
# and containerd and podman (the root pass's engines for sandbox-oci),
# built by mmdebstrap from the host's own apt sources and packed into an ext4
# image. vm/run.sh --systemd boots it (read-only: each boot writes to a
# throw-away snapshot); vmtest.service runs the job from the ctl share.
# Leaves in CACHE_DIR, world-readable:
#   rootfs.ext4    the image (2 GiB sparse, ~415 MB used)
#   packages.txt   the packages in it, with versions
#   modules/       ext4 and its dependencies for the guest's kernel, and
#                  `order` (insmod order): the first stage mounts the image
#   stamp          hash of this directory's files: rebuilt only when they change
# ~2-3 min on a 2-core machine; a no-op while the stamp matches.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kernel="${1:?usage: build-image.sh KERNEL_CACHE [CACHE_DIR]}"
cache="${2:-/var/cache/sandbox-vm-systemd}"
readonly PKGS=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,uidmap,passwd,procps,containerd,podman

say() { printf 'build-systemd-image: %s\n' "$*"; }
die() { printf 'build-systemd-image: ERROR: %s\n' "$*" >&2; exit 1; }

ver="$(cat "$kernel/version")" || die "no kernel in $kernel (vm/fetch-kernel.sh)"
stamp="$(cd "$here" && { cat build-image.sh vmtest-run vmtest.service; echo "$ver"; } | sha256sum | cut -c1-16)"
if [[ -f "$cache/stamp" && "$(cat "$cache/stamp")" == "$stamp" && -f "$cache/rootfs.ext4" ]]; then
	say "image in $cache is up to date"
	exit 0
fi
[[ "$(id -u)" -eq 0 ]] || die "must run as root (mmdebstrap, mkfs.ext4 -d), e.g. sudo scripts/setup-host.sh"
for tool in mmdebstrap mkfs.ext4 apt-get dpkg busybox; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install mmdebstrap e2fsprogs)"
done
sources=/etc/apt/sources.list.d/debian.sources
[[ -f "$sources" ]] || sources=/etc/apt/sources.list
[[ -f "$sources" ]] || die "no apt sources (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)"

umask 022
mkdir -p "$(dirname "$cache")"
work="$(mktemp -d "$cache.new.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
export here
start=$SECONDS
# The hooks: the test user (uid 1000, subordinate ids 100000+65536, lingering:
# its user manager starts at boot), a fixed machine-id (else every snapshot
# boot is a first boot), no gettys or timers, the job runner.
mmdebstrap --variant=apt --include="$PKGS" --skip=cleanup/apt/lists \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--customize-hook='chroot "$1" useradd -m -u 1000 -U -s /bin/bash -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 tester' \
	--customize-hook='echo tester:100000:65536 >"$1/etc/subuid" && echo tester:100000:65536 >"$1/etc/subgid"' \
	--customize-hook='mkdir -p "$1/var/lib/systemd/linger" && touch "$1/var/lib/systemd/linger/tester"' \
	--customize-hook='echo vmtest >"$1/etc/hostname" && echo 5a4d1b0e6a2c4f3e9d8c7b6a5f4e3d2c >"$1/etc/machine-id"' \
	--customize-hook='echo kernel.unprivileged_userns_clone=1 >"$1/etc/sysctl.d/50-userns.conf"' \
	--customize-hook='install -m 0755 "$here/vmtest-run" "$1/usr/local/sbin/vmtest-run"' \
	--customize-hook='install -m 0644 "$here/vmtest.service" "$1/etc/systemd/system/vmtest.service"' \
	--customize-hook='chroot "$1" systemctl enable vmtest.service' \
	--customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@ttyS0.service \
		apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
		e2scrub_reap.service systemd-timesyncd.service >/dev/null 2>&1 || true' \
	--customize-hook='chroot "$1" dpkg-query -W -f="\${Package} \${Version}\n" >"$1/etc/vmtest-packages.txt"' \
	bookworm "$work/root" "$sources" >"$work/mmdebstrap.log" 2>&1 ||
	{ tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
rm -rf "$work/root/var/lib/apt/lists"/* "$work/root/var/cache/apt"/*.bin
cp "$work/root/etc/vmtest-packages.txt" "$work/packages.txt"
mkfs.ext4 -q -L sbxvmroot -d "$work/root" "$work/rootfs.ext4" 2G || die "mkfs.ext4 failed"
rm -rf "$work/root" "$work/mmdebstrap.log"

# ext4 is a module of Debian's kernel: take it and what it depends on from
# the kernel's package (downloaded, never installed).
(cd "$work" && apt-get -q download "linux-image-$ver") >"$work/apt.log" 2>&1 ||
	{ cat "$work/apt.log" >&2; die "apt-get download linux-image-$ver failed"; }
dpkg -x "$work"/linux-image-*.deb "$work/k"
mkdir "$work/modules"
add_module() { # dependencies first: the order insmod needs
	local file dep
	[[ -e "$work/modules/$1.ko" ]] && return 0
	file="$(find "$work/k/lib/modules/$ver/kernel" \( -name "$1.ko" -o -name "${1//_/-}.ko" \) -print -quit)"
	if [[ -z "$file" ]]; then
		grep -qE "/${1//_/[-_]}\.ko\$" "$work/k/lib/modules/$ver/modules.builtin" || die "module $1 not found"
		return 0
	fi
	for dep in $(busybox strings -a "$file" | sed -n 's/^depends=//p' | head -n 1 | tr , ' '); do
		add_module "$dep"
	done
	cp "$file" "$work/modules/$1.ko"
	echo "$1" >>"$work/modules/order"
}
add_module crc32c_generic # ext4's checksums, through the crypto API (no depends=)
add_module ext4
rm -rf "$work/k" "$work"/*.deb "$work/apt.log"
printf '%s\n' "$stamp" >"$work/stamp"
chmod -R a+rX "$work"
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
say "image with $(wc -l <"$cache/packages.txt") packages in $cache ($((SECONDS - start)) s)"
