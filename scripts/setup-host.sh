#!/usr/bin/env bash
# Prepare a Debian 12 host for building, testing and benchmarking `sandbox`.
#
# Run as root. Idempotent: a second run only checks, and is fast.
#   - installs the needed Debian packages (apt-get update only when one is missing)
#   - creates the unprivileged test user sbxtest with its own subuid/subgid range
#   - makes /dev/net/tun and /dev/fuse 0666 (the distribution default)
#   - checks that newuidmap/newgidmap are setuid root
#   - delegates a cgroup v2 subtree to sbxtest, as systemd's Delegate=yes would
#   - fetches the VM tests' guest kernel into /var/cache/sandbox-vm (vm/fetch-kernel.sh), and
#     Debian 11's 5.10 (the oldest kernel supported) into /var/cache/sandbox-vm-5.10 (vm/fetch-old-kernel.sh)
#   - builds the systemd guest's image into /var/cache/sandbox-vm-systemd
#     (vm/systemd/build-image.sh; minutes the first time, then a no-op)
#   - fetches the arm64 guest (kernel, busybox, uidmap) into /var/cache/sandbox-vm-arm64
#     with a private apt configuration (vm/fetch-arm64.sh)
# Prints one line for each thing it checked or did.
set -euo pipefail

readonly TEST_USER=sbxtest
readonly TEST_HOME=/home/sbxtest
readonly SUBID_START=200000   # preferred first subordinate id of TEST_USER
readonly SUBID_COUNT=65536
readonly VM_CACHE=/var/cache/sandbox-vm # guest kernel of the VM tests (vm/README.md)
readonly VM_SYSTEMD_CACHE=/var/cache/sandbox-vm-systemd # the systemd guest's image (vm/systemd/)
readonly VM_CACHE_OLD=/var/cache/sandbox-vm-5.10 # the old-kernel guest's (bullseye)
readonly VM_ARM64_CACHE=/var/cache/sandbox-vm-arm64 # the arm64 guest's (vm/fetch-arm64.sh)

# Needed for the build, the tests and the benchmark (zsh and fish: the
# completion scripts' tests).
readonly REQUIRED_PKGS=(
	uidmap bubblewrap slirp4netns passt fuse-overlayfs fuse3 iproute2 procps
	psmisc util-linux hyperfine git ca-certificates iperf3 time
	qemu-system-x86 qemu-system-arm busybox-static xz-utils dbus-daemon zsh fish
	mmdebstrap e2fsprogs # the systemd guest's image (vm/systemd/build-image.sh)
	python3 curl gcc libc6-dev make # examples/ and their tests (e2e/examples_test.go); gcc: the holder stage (scripts/build.sh)
	gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross # the holder stage of the arm64 build the arm64 guest runs (vm/arm64_test.go)
	qemu-user-static                # the signal handlers' arm64 assembly under test (internal/archbuild)
	podman runc                     # nesting in a rootless container (e2e/nested_test.go)
	iptables nftables               # root inside tries to lift the egress policy (e2e/egress_test.go)
	containerd bsdutils             # the OCI runtime's engines: containerd + ctr (e2e/ociroot), script(1) for -t runs
)
# Benchmarks only (anchors, and fio for bench/fs.sh): a failure to install
# them is a warning.
readonly OPTIONAL_PKGS=(crun rootlesskit fio)

say() { printf 'setup-host: %s\n' "$*"; }
warn() { printf 'setup-host: WARNING: %s\n' "$*" >&2; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

if [[ "$(id -u)" -ne 0 ]]; then
	die "must run as root (try: sudo $0)"
fi

APT_LOG="$(mktemp /tmp/setup-host-apt.XXXXXX.log)"
cleanup() { rm -f "$APT_LOG"; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
readonly APT_OPTS=(-y -q --no-install-recommends
	-o DPkg::Lock::Timeout=300
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

is_installed() {
	local status
	status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null || true)"
	[[ "$status" == ii* ]]
}

apt_updated=0
apt_update_once() {
	if [[ "$apt_updated" -eq 1 ]]; then
		return 0
	fi
	if ! apt-get -q -o DPkg::Lock::Timeout=300 update </dev/null >>"$APT_LOG" 2>&1; then
		tail -n 20 "$APT_LOG" >&2
		die "apt-get update failed"
	fi
	apt_updated=1
	say "ran apt-get update"
}

apt_install() { # apt_install PKG... ; returns apt-get's status
	apt-get "${APT_OPTS[@]}" install "$@" </dev/null >>"$APT_LOG" 2>&1
}

# ---------------------------------------------------------------- packages
missing_required=()
for p in "${REQUIRED_PKGS[@]}"; do
	is_installed "$p" || missing_required+=("$p")
done
missing_optional=()
for p in "${OPTIONAL_PKGS[@]}"; do
	is_installed "$p" || missing_optional+=("$p")
done

if [[ "${#missing_required[@]}" -eq 0 ]]; then
	say "packages: all ${#REQUIRED_PKGS[@]} required packages already installed"
else
	apt_update_once
	if ! apt_install "${missing_required[@]}"; then
		tail -n 20 "$APT_LOG" >&2
		die "apt-get install failed for: ${missing_required[*]}"
	fi
	say "installed: ${missing_required[*]}"
fi

if [[ "${#missing_optional[@]}" -eq 0 ]]; then
	say "packages: benchmark anchors ${OPTIONAL_PKGS[*]} already installed"
else
	apt_update_once
	for p in "${missing_optional[@]}"; do
		if apt_install "$p"; then
			say "installed: $p (benchmark anchor)"
		else
			warn "could not install $p (benchmark anchor only; the benchmark will skip it)"
		fi
	done
fi

# ------------------------------------------------------------- test user
if id -u "$TEST_USER" >/dev/null 2>&1; then
	say "user $TEST_USER exists (uid $(id -u "$TEST_USER"))"
else
	# SUB_*_COUNT=0: no automatic subid allocation; we pick the range below.
	useradd --create-home --home-dir "$TEST_HOME" --shell /bin/bash \
		-K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$TEST_USER"
	say "created user $TEST_USER (uid $(id -u "$TEST_USER"), home $TEST_HOME, shell /bin/bash)"
fi
test_uid="$(id -u "$TEST_USER")"
test_gid="$(id -g "$TEST_USER")"
test_home="$(getent passwd "$TEST_USER" | cut -d: -f6)"
if [[ ! -d "$test_home" ]]; then
	install -d -m 0755 -o "$TEST_USER" -g "$test_gid" "$test_home"
	say "created missing home $test_home"
fi

touch /etc/subuid /etc/subgid

# own_ranges FILE: "start count" lines of TEST_USER (by name or uid)
own_ranges() {
	local file="$1" name start count
	while IFS=: read -r name start count; do
		if [[ "$name" == "$TEST_USER" || "$name" == "$test_uid" ]]; then
			printf '%s %s\n' "$start" "$count"
		fi
	done <"$file"
}

# other_overlap FILE START COUNT: print the first entry of another owner that
# overlaps [START, START+COUNT); status 0 when there is one.
other_overlap() {
	local file="$1" s="$2" c="$3" name start count
	while IFS=: read -r name start count; do
		[[ -n "$name" && "$start" =~ ^[0-9]+$ && "$count" =~ ^[0-9]+$ ]] || continue
		[[ "$name" == "$TEST_USER" || "$name" == "$test_uid" ]] && continue
		if ((start < s + c && s < start + count)); then
			printf '%s:%s:%s\n' "$name" "$start" "$count"
			return 0
		fi
	done <"$file"
	return 1
}

# free_start: first multiple of SUBID_COUNT at or above SUBID_START that is
# free in both files (bounded search).
free_start() {
	local s="$SUBID_START" i f hit start count
	for ((i = 0; i < 1000; i++)); do
		hit=""
		for f in /etc/subuid /etc/subgid; do
			if hit="$(other_overlap "$f" "$s" "$SUBID_COUNT")"; then
				break
			fi
			hit=""
		done
		if [[ -z "$hit" ]]; then
			printf '%s\n' "$s"
			return 0
		fi
		IFS=: read -r _ start count <<<"$hit"
		s=$(((start + count + SUBID_COUNT - 1) / SUBID_COUNT * SUBID_COUNT))
	done
	return 1
}

# Drop TEST_USER's ranges that overlap another owner's entry.
for f in /etc/subuid /etc/subgid; do
	while read -r start count; do
		[[ -n "$start" ]] || continue
		if hit="$(other_overlap "$f" "$start" "$count")"; then
			end=$((start + count - 1))
			if [[ "$f" == /etc/subuid ]]; then
				usermod --del-subuids "$start-$end" "$TEST_USER"
			else
				usermod --del-subgids "$start-$end" "$TEST_USER"
			fi
			say "removed $TEST_USER's range $start-$end from $f: it overlapped $hit"
		fi
	done < <(own_ranges "$f")
done

fmt_ranges() { # "start count" lines -> "start-end[,start-end...]"
	local out="" start count
	while read -r start count; do
		[[ -n "$start" ]] || continue
		out+="${out:+,}$start-$((start + count - 1))"
	done <<<"$1"
	printf '%s' "$out"
}

has_uid_range="$(own_ranges /etc/subuid)"
has_gid_range="$(own_ranges /etc/subgid)"
if [[ -n "$has_uid_range" && -n "$has_gid_range" ]]; then
	say "subids: $TEST_USER already has subuids $(fmt_ranges "$has_uid_range") and subgids $(fmt_ranges "$has_gid_range")"
else
	start="$(free_start)" || die "no free subordinate id range found"
	end=$((start + SUBID_COUNT - 1))
	if [[ -z "$has_uid_range" ]]; then
		usermod --add-subuids "$start-$end" "$TEST_USER"
		say "subids: added subuid range $start-$end for $TEST_USER"
	fi
	if [[ -z "$has_gid_range" ]]; then
		usermod --add-subgids "$start-$end" "$TEST_USER"
		say "subids: added subgid range $start-$end for $TEST_USER"
	fi
fi

# No other owner's range may contain TEST_USER's own uid/gid: those ids would
# then be reachable by that other user's namespaces.
for f in /etc/subuid /etc/subgid; do
	id_="$test_uid"
	[[ "$f" == /etc/subgid ]] && id_="$test_gid"
	if hit="$(other_overlap "$f" "$id_" 1)"; then
		warn "$f entry $hit contains $TEST_USER's own id $id_ (left alone: it is not ours to change)"
	fi
done

# ------------------------------------------------------------- devices
ensure_dev() { # ensure_dev PATH MAJOR MINOR
	local path="$1" major="$2" minor="$3" mode
	if [[ ! -e "$path" ]]; then
		mkdir -p "$(dirname "$path")"
		if mknod -m 0666 "$path" c "$major" "$minor" 2>/dev/null; then
			say "created $path (char $major:$minor) mode 0666 (distribution default)"
		else
			warn "$path is missing and could not be created"
		fi
		return 0
	fi
	mode="$(stat -c '%a' "$path")"
	if [[ "$mode" == 666 ]]; then
		say "$path is already 0666 (distribution default)"
	else
		chmod 0666 "$path"
		say "chmod 0666 $path (was 0$mode; 0666 is the distribution default)"
	fi
}
ensure_dev /dev/net/tun 10 200
ensure_dev /dev/fuse 10 229

# ------------------------------------------------------------- id helpers
for h in /usr/bin/newuidmap /usr/bin/newgidmap; do
	[[ -x "$h" ]] || die "$h is missing (package uidmap)"
	if [[ -u "$h" && "$(stat -c '%u' "$h")" == 0 ]]; then
		say "$h is setuid root"
	else
		chown root:root "$h"
		chmod u+s "$h"
		say "made $h setuid root"
	fi
done

# ------------------------------------------------------------- cgroup v2
# A delegated subtree for TEST_USER, made the way systemd's Delegate=yes
# makes one: the directory and its cgroup.procs, cgroup.subtree_control and
# cgroup.threads (and memory.oom.group, memory.reclaim where they exist)
# belong to the user. test.sh starts the tests inside it: the user could
# not move itself there (that needs write access to cgroup.procs of the
# common ancestor, here the root cgroup).
if deleg="$(bash "$(dirname "${BASH_SOURCE[0]}")/test-cgroup.sh" "$TEST_USER")"; then
	if [[ -d "$deleg" && "$(stat -c %u "$deleg")" == "$test_uid" ]]; then
		say "cgroup $deleg is already delegated to $TEST_USER"
	else
		mkdir -p "$deleg"
		say "created cgroup $deleg"
	fi
	for f in "$deleg" "$deleg"/cgroup.procs "$deleg"/cgroup.subtree_control "$deleg"/cgroup.threads \
		"$deleg"/memory.oom.group "$deleg"/memory.reclaim; do
		if [[ -e "$f" && "$(stat -c %u "$f")" != "$test_uid" ]]; then
			chown "$TEST_USER:$test_gid" "$f"
			say "chown $TEST_USER $f"
		fi
	done
else
	warn "no cgroup2 filesystem is mounted: the cgroup tests cannot run"
fi

# ------------------------------------------------------------- kernel
max_ns="$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo unknown)"
if [[ "$max_ns" == 0 ]]; then
	warn "user.max_user_namespaces is 0: unprivileged user namespaces are disabled"
else
	say "user.max_user_namespaces = $max_ns"
fi
if [[ -r /proc/sys/kernel/unprivileged_userns_clone ]] &&
	[[ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" == 0 ]]; then
	echo 1 >/proc/sys/kernel/unprivileged_userns_clone
	say "set kernel.unprivileged_userns_clone = 1"
fi
if [[ -r /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]] &&
	[[ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns)" == 1 ]]; then
	warn "kernel.apparmor_restrict_unprivileged_userns = 1 (left as is)"
fi

# ------------------------------------------------------------- VM tests
# The guest kernel of the VM tests (vm/): `apt-get download` needs root. A
# no-op while the cache's stamp matches vm/fetch-kernel.sh.
bash "$(dirname "${BASH_SOURCE[0]}")/../vm/fetch-kernel.sh" "$VM_CACHE" ||
	die "fetching the VM tests' kernel failed"
# The systemd guest's root filesystem (Debian 12 through this host's apt
# sources); a no-op while its stamp matches vm/systemd/ and the kernel.
bash "$(dirname "${BASH_SOURCE[0]}")/../vm/systemd/build-image.sh" "$VM_CACHE" "$VM_SYSTEMD_CACHE" ||
	die "building the systemd guest's image failed"
bash "$(dirname "${BASH_SOURCE[0]}")/../vm/fetch-old-kernel.sh" "$VM_CACHE_OLD" ||
	die "fetching the VM tests' old kernel (Debian 11, bullseye) failed"
bash "$(dirname "${BASH_SOURCE[0]}")/../vm/fetch-arm64.sh" "$VM_ARM64_CACHE" ||
	die "fetching the arm64 VM guest failed"

say "done"
