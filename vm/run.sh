#!/usr/bin/env bash
# vm/run.sh [options] [--] CMD [ARG...]
#
# Boot a throw-away QEMU/TCG guest (Debian kernel, busybox initramfs, pure
# cgroup v2 with systemd's delegation layout; see guest/init), run CMD there
# as root (cwd /), stream its stdout+stderr, and exit with its status.
# In the guest: `vm-as-user tester|stock CMD...` runs as that user in its
# delegated scope; /run/vmtest/ctl/bin holds the --bin files; the job may
# write files to $VMTEST_OUT (copied to --out DIR); $VMTEST_DISK is the
# scratch disk (owned by tester).
#
# Options:
#   --bin FILE        copy FILE into the guest's /run/vmtest/ctl/bin (repeatable)
#   --kernel DIR      the kernel cache to boot (default $SANDBOX_VM_CACHE), e.g.
#                     /var/cache/sandbox-vm-5.10 (fetch-kernel.sh DIR bullseye)
#   --out DIR         copy what the job wrote to $VMTEST_OUT into DIR
#   --timeout S       stop the guest after S seconds (default 600)   -> exit 124
#   --boot-timeout S  fail if the job has not started S seconds after
#                     QEMU was launched (default 120)                -> exit 125
#   --mem MB          guest memory (default 1024)
#   --cpus N          guest vCPUs (default 2)
#   --disk MB         scratch virtio disk /dev/vda (default 64; 0: none)
#   --keep            keep the run directory (console.log, qemu.log, ctl/)
#   --systemd DIR     boot the systemd guest of DIR/rootfs.ext4 (made by
#                     systemd/build-image.sh) instead of the busybox one: the
#                     job runs as root from vmtest.service (vm/README.md)
#   --arch amd64|arm64  guest architecture (default amd64); arm64 boots the
#                     cache of fetch-arm64.sh on qemu-system-aarch64 -M virt
#
# Exit status: CMD's; 124 timeout; 125 the guest failed to boot or never
# reported a result (the console's last lines are printed); 2 usage or a
# missing prerequisite. The run directory is removed on success and kept on
# failure. Environment: SANDBOX_VM_CACHE (kernel cache made by
# fetch-kernel.sh, default /var/cache/sandbox-vm; fetch-arm64.sh's,
# /var/cache/sandbox-vm-arm64, with --arch arm64), QEMU (default
# qemu-system-x86_64, or qemu-system-aarch64), TMPDIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="" bins=() out="" timeout=600 boot_timeout=120 mem=1024 cpus=2 disk=64 keep=0 systemd="" arch=amd64

usage() { sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { printf 'vm/run.sh: %s\n' "$*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
	case "$1" in
	--bin) bins+=("$2"); shift ;;
	--kernel) cache="$2"; shift ;;
	--out) out="$2"; shift ;;
	--timeout) timeout="$2"; shift ;;
	--boot-timeout) boot_timeout="$2"; shift ;;
	--mem) mem="$2"; shift ;;
	--cpus) cpus="$2"; shift ;;
	--disk) disk="$2"; shift ;;
	--keep) keep=1 ;;
	--systemd) systemd="$2"; shift ;;
	--arch) arch="$2"; shift ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
	shift
done
[[ $# -gt 0 ]] || usage
case "$arch" in
amd64)
	cache="${cache:-${SANDBOX_VM_CACHE:-/var/cache/sandbox-vm}}" qemu="${QEMU:-qemu-system-x86_64}" qpkg=qemu-system-x86
	kernel="$cache/vmlinux" console=ttyS0 machine=(-M q35)
	;;
arm64)
	# -cpu max: every feature TCG emulates (the kernel's arm64 baseline and
	# AArch32 EL0 for compat tasks).
	cache="${cache:-${SANDBOX_VM_CACHE:-/var/cache/sandbox-vm-arm64}}" qemu="${QEMU:-qemu-system-aarch64}" qpkg=qemu-system-arm
	kernel="$cache/Image" console=ttyAMA0 machine=(-M virt)
	;;
*) die "--arch: $arch is not amd64 or arm64" ;;
esac
command -v "$qemu" >/dev/null || die "$qemu not found (sudo scripts/setup-host.sh installs $qpkg)"
[[ -r "$kernel" ]] || die "no kernel in $cache (run: sudo scripts/setup-host.sh)"
[[ -z "$systemd" || "$arch" == amd64 ]] || die "--systemd: the systemd guest is amd64 only"
[[ -z "$systemd" || -r "$systemd/rootfs.ext4" ]] || die "no systemd image in $systemd (run: sudo scripts/setup-host.sh)"

run="$(mktemp -d "${TMPDIR:-/tmp}/sandbox-vm-run.XXXXXX")"
ctl="$run/ctl"
mkdir -p "$ctl/bin"
chmod 0777 "$ctl" # the guest's users write there through 9p
: >"$ctl/output.log"
: >"$run/console.log"
for b in "${bins[@]}"; do
	install -m 0755 "$b" "$ctl/bin/" || die "cannot copy $b"
done
{
	printf '#!/bin/sh\nexec'
	for a in "$@"; do
		printf " '%s'" "${a//\'/\'\\\'\'}"
	done
	printf '\n'
} >"$ctl/job.sh"
"$here/build-initramfs.sh" "$cache" "$run/initramfs.cpio" || die "building the initramfs failed"

append="console=$console cgroup_no_v1=all panic=-1 quiet loglevel=4 rdinit=/init"
# no_timer_check (x86): under TCG on a loaded host the timer-IRQ check can
# fail and older kernels (5.10) then panic ("IO-APIC + timer doesn't work").
[[ "$arch" != amd64 ]] || append+=" no_timer_check"
[[ "$arch" != arm64 ]] || append+=" vmtest.modules=tun" # for --net=builtin
drives=()
if [[ "$disk" != 0 ]]; then
	truncate -s "${disk}M" "$run/scratch.img"
	drives+=(-drive "if=none,id=scratch,file=$run/scratch.img,format=raw,cache=none,aio=threads"
		-device virtio-blk-pci,drive=scratch)
	append+=" vmtest.disk=/dev/vda"
fi
if [[ -n "$systemd" ]]; then
	"$here/systemd/initramfs.sh" "$systemd" "$run/initramfs.cpio" || die "adding the systemd guest's first stage failed"
	append+=" rdinit=/stage1"
	drives+=(-drive "if=none,id=root,file=$systemd/rootfs.ext4,format=raw,snapshot=on,cache=unsafe"
		-device virtio-blk-pci,drive=root)
fi

start="$EPOCHREALTIME"
# --foreground keeps QEMU in our process group: whoever kills the group (the
# Go test on its deadline) kills QEMU too.
timeout --foreground -k 5 "$timeout" "$qemu" \
	"${machine[@]}" -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$mem" \
	-nodefaults -no-user-config -display none -no-reboot \
	-kernel "$kernel" -initrd "$run/initramfs.cpio" -append "$append" \
	-serial "file:$run/console.log" \
	-virtfs "local,path=$ctl,mount_tag=ctl,security_model=none,id=ctl" \
	-device virtio-rng-pci "${drives[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qpid=$!
interrupted=0
trap 'interrupted=1; kill "$qpid" 2>/dev/null || true' INT TERM HUP
tail -n +1 -s 0.2 -F --pid="$qpid" "$ctl/output.log" 2>/dev/null &
tpid=$!
( # boot watchdog: the guest prints "vmtest: job start" on the console
	end=$((SECONDS + boot_timeout))
	while kill -0 "$qpid" 2>/dev/null; do
		grep -q 'vmtest: job start' "$run/console.log" && exit 0
		if [[ $SECONDS -ge $end ]]; then
			: >"$run/boot-timeout"
			kill "$qpid"
			exit 0
		fi
		sleep 0.5
	done
) &
wpid=$!
qrc=0
wait "$qpid" || qrc=$?
wait "$tpid" || true
kill "$wpid" 2>/dev/null || true
wait "$wpid" 2>/dev/null || true
trap - INT TERM HUP
elapsed="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"

if [[ -n "$out" && -d "$ctl/out" ]]; then
	mkdir -p "$out" && cp -r "$ctl/out/." "$out/"
fi
fail() { # fail MESSAGE STATUS
	{
		printf 'vm/run.sh: %s (after %ss, qemu exit %s)\n' "$1" "$elapsed" "$qrc"
		[[ ! -s "$run/qemu.log" ]] || sed 's/^/vm\/run.sh: qemu: /' "$run/qemu.log"
		printf 'vm/run.sh: --- last lines of the guest console ---\n'
		tail -n 30 "$run/console.log"
		printf 'vm/run.sh: --- end; run directory kept: %s\n' "$run"
	} >&2
	exit "$2"
}
[[ "$interrupted" -eq 0 ]] || fail "interrupted; QEMU stopped" 130
[[ ! -e "$run/boot-timeout" ]] || fail "BOOT TIMEOUT: the job did not start within ${boot_timeout}s" 125
[[ "$qrc" -ne 124 && "$qrc" -ne 137 ]] || fail "TIMEOUT: the guest did not finish within ${timeout}s" 124
[[ -s "$ctl/rc" ]] || fail "the guest never reported a result" 125
rc="$(tr -dc 0-9 <"$ctl/rc")"
boot="$(sed -n 's/.*vmtest: job start at \([0-9.]*\)s.*/\1/p' "$run/console.log")"
printf 'vm/run.sh: exit %s; guest booted in %ss, %ss wall\n' "$rc" "${boot:-?}" "$elapsed" >&2
if [[ "$keep" -eq 1 || "$rc" -ne 0 ]]; then
	printf 'vm/run.sh: run directory kept: %s\n' "$run" >&2
else
	rm -rf "$run"
fi
exit "$rc"
