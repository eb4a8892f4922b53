#!/usr/bin/env bash
# File-system benchmark: the same workloads on a host directory, in the
# sandbox's root with kernel overlayfs, in the sandbox's root with the
# fuse-overlayfs fallback, and on stock fuse-overlayfs mounted by hand in a
# plain user namespace, interleaved in one run; medians and ratios to the host.
#
#   bench/fs.sh [--out DIR] [--runs N] [--fio-seconds N] [--fio-size SIZE] [--dir DIR] [--tar-mb N]
#
# As root it re-runs itself as the test user sbxtest (see scripts/setup-host.sh).
# SANDBOX_BIN defaults to the repository's bin/sandbox (scripts/build.sh).
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
bench_say_fd=2
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/fs.sh [--out DIR] [--runs N] [--fio-seconds N] [--fio-size SIZE] [--dir DIR] [--tar-mb N]

Times file-system workloads (20,000 small files: create, stat, read, delete;
untar of a ~50 MB tarball made from /usr/share; find over the extracted tree
and over a tree in the overlay's lower layer; fio sequential and random I/O)
on the host, in `sandbox run` with kernel overlayfs and with the fuse
fallback, and on fuse-overlayfs mounted by hand, and prints the medians and
each one's ratio to the host.

  --out DIR          write results.jsonl, summary.md, summary.json, env.txt to DIR
                     (default: a new temporary directory)
  --runs N           repetitions of every place, interleaved (default 5)
  --fio-seconds N    seconds per fio job, 4 jobs (default 10; 0 leaves fio out)
  --fio-size SIZE    fio's file (default 512M)
  --dir DIR          where the host's files go (default /srv/sandbox-fsbench):
                     on a disk, outside /home, /tmp and /run, and every
                     directory below the top-level one owned by you
  --tar-mb N         size of the tarball (default 50)

Environment: SANDBOX_BIN (default: <repo>/bin/sandbox).
EOF
}

out=""
runs=5
fio_seconds=10
fio_size=512M
dir=/srv/sandbox-fsbench
tar_mb=50
while [[ $# -gt 0 ]]; do
	[[ "$1" == -h || "$1" == --help ]] && { usage; exit 0; }
	[[ "$1" == --*=* ]] && set -- "${1%%=*}" "${1#*=}" "${@:2}"
	[[ $# -ge 2 ]] || { usage >&2; die "$1 needs a value"; }
	case "$1" in
	--out) out="$2" ;;
	--runs) runs="$2" ;;
	--fio-seconds) fio_seconds="$2" ;;
	--fio-size) fio_size="$2" ;;
	--dir) dir="$2" ;;
	--tar-mb) tar_mb="$2" ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift 2
done
[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 1 ]] || die "--runs must be a number >= 1"
[[ "$fio_seconds" =~ ^[0-9]+$ ]] || die "--fio-seconds must be a number"
[[ "$tar_mb" =~ ^[0-9]+$ && "$tar_mb" -ge 1 ]] || die "--tar-mb must be a number >= 1"
[[ "$dir" == /* ]] || die "--dir must be an absolute path"
dir="${dir%/}"

SANDBOX_BIN="${SANDBOX_BIN:-$repo/bin/sandbox}"
[[ -f "$SANDBOX_BIN" && -x "$SANDBOX_BIN" ]] ||
	die "SANDBOX_BIN=$SANDBOX_BIN is missing or not executable (build it: scripts/build.sh)"
SANDBOX_BIN="$(cd "$(dirname "$SANDBOX_BIN")" && pwd)/$(basename "$SANDBOX_BIN")"
if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

build_fswork() { # DEST: the workload runner and table printer (std lib only)
	(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$1" ./bench/cmd/fswork) ||
		die "could not build bench/cmd/fswork"
}

# ------------------------------------------------------ as root: re-run as sbxtest
if [[ "$(id -u)" -eq 0 ]]; then
	bench_test_user
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	bench_out_dir sandbox-fsbench-results
	[[ ! -e "$dir" ]] || die "$dir exists: remove it or pick another --dir"
	# The test user's directory, so that the sandbox can copy it up (its
	# owner must be mapped inside); the stage inside it is visible in the
	# sandbox at the same path, unlike /tmp.
	install -d -o "$TEST_USER" -g "$(id -g "$TEST_USER")" -m 0755 "$dir"
	trap 'rm -rf "$dir"' EXIT
	stage="$dir/stage"
	install -d -m 0755 "$stage"
	build_fswork "$stage/fswork"
	bench_stage_script "$stage" fs.sh
	cp "$SANDBOX_BIN" "$stage/sandbox"
	bench_stage_out "$stage"

	if bench_as_user SANDBOX_BIN="$stage/sandbox" BENCH_FSWORK_BIN="$stage/fswork" \
		BENCH_SANDBOX_LABEL="$SANDBOX_BIN" \
		bash "$stage/fs.sh" --out "$stage/out" --runs "$runs" --fio-seconds "$fio_seconds" \
		--fio-size "$fio_size" --dir "$dir" --tar-mb "$tar_mb" </dev/null; then
		rc=0
	else
		rc=$?
	fi
	bench_collect "$stage"
	exit "$rc"
fi

# ------------------------------------------------------ as the unprivileged user
uid="$(id -u)"
case "$dir/" in
/home/* | /root/* | /tmp/* | /run/* | "$HOME"/*)
	die "--dir $dir: the sandbox replaces that directory with an empty tmpfs; pick one on a disk, e.g. /srv/NAME or /opt/NAME" ;;
esac
[[ -d "$dir" && -w "$dir" ]] ||
	die "--dir $dir is not a writable directory (as root: install -d -o $(id -un) -g $(id -gn) $dir)"
fstype="$(findmnt -n -o FSTYPE -T "$dir")"
[[ "$fstype" != tmpfs ]] || die "--dir $dir is on tmpfs: the host column must be a disk's file system"
# Copying up a directory needs its owner mapped in the user namespace: every
# directory between the top-level one (an overlay's lower root) and $dir.
t="${dir#/}"
top="/${t%%/*}"
p="$dir"
while [[ "$p" != "$top" && "$p" != / ]]; do
	[[ "$(stat -c '%u:%g' "$p")" == "$uid:$(id -g)" ]] ||
		die "--dir $dir: $p is not owned by you and your group, so the sandbox cannot copy it up (EOVERFLOW); use a directory below the top-level one that is (as root: install -d -o $(id -un) -g $(id -gn) /srv/NAME)"
	p="$(dirname "$p")"
done
[[ "$top" != "$dir" ]] || die "--dir $dir is a top-level directory; use one below it"

fswork="${BENCH_FSWORK_BIN:-}"
base="$(mktemp -d "$dir/run.XXXXXX")"
# Upper layers go in the home: on the same disk here (checked below), and
# outside the top-level directory the overlay's lower is (kernel overlayfs
# refuses an upper layer inside its lower: ELOOP).
uppers="$(mktemp -d "$HOME/.sandbox-fsbench-upper.XXXXXX")"
cleanup() {
	chmod -R u+rwx "$uppers" "$base" 2>/dev/null || true
	rm -rf "$uppers" "$base"
}
trap cleanup EXIT
if [[ -z "$fswork" ]]; then
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	fswork="$base/fswork"
	build_fswork "$fswork"
fi
bench_out_dir sandbox-fsbench-results

same_disk="yes"
if [[ "$(stat -c %d "$dir")" != "$(stat -c %d "$uppers")" ]]; then
	same_disk="no: $(findmnt -n -o SOURCE -T "$uppers") for the uppers, $(findmnt -n -o SOURCE -T "$dir") for the host"
	say "note: the upper layers ($uppers) are not on the host directory's disk"
fi

# ------------------------------------------------------ data
data="$base/data"
mkdir -p "$data/lower"
say "making the ${tar_mb} MB tarball from /usr/share (regular files below 1 MiB, sorted by path)"
(cd /usr/share || exit 1; find . -xdev -type f -readable -size -1024k -printf '%s %P\n' 2>/dev/null || true) |
	LC_ALL=C sort -t ' ' -k 2 |
	awk -v max="$((tar_mb * 1024 * 1024))" 'full || sum + $1 > max { full = 1; next } { sum += $1; sub(/^[0-9]+ /, ""); print }' \
		>"$data/list"
tar -C /usr/share --no-recursion --owner=0 --group=0 --numeric-owner --mtime=@0 \
	-cf "$data/src.tar" -T "$data/list"
tar_bytes="$(stat -c %s "$data/src.tar")"
tar_files="$(wc -l <"$data/list")"
[[ "$tar_files" -gt 0 ]] || die "no readable files in /usr/share for the tarball"
# The tree the "walk lower" line reads: in the sandbox it is only in the
# overlay's lower layer.
tar --no-same-owner -xf "$data/src.tar" -C "$data/lower"

# ------------------------------------------------------ places
skipped=()
skip() {
	skipped+=("$1: $2")
	say "skipping $1: $2"
}
places=("host")
fio_note="fio ${fio_seconds}s per job, file $fio_size"
if [[ "$fio_seconds" -eq 0 ]]; then
	fio_note="fio left out (--fio-seconds 0)"
elif ! command -v fio >/dev/null; then
	fio_note="fio left out: not installed (apt-get install fio; scripts/setup-host.sh installs it)"
	say "$fio_note"
fi

# The sandbox's places: the --overlay value of each (none: the binary has no
# such flag, and kernel overlayfs is its only driver).
declare -A overlay
if "$SANDBOX_BIN" run --help 2>&1 | grep -q -- '--overlay'; then
	overlay["sandbox kernel overlay"]="--overlay=kernel"
	overlay["sandbox fuse fallback"]="--overlay=fuse"
	places+=("sandbox kernel overlay" "sandbox fuse fallback")
else
	overlay["sandbox kernel overlay"]=""
	places+=("sandbox kernel overlay")
	skip "sandbox fuse fallback" "this sandbox has no --overlay flag (before the fuse branch is merged): the kernel overlay ran without it (its default)"
fi

# Stock fuse-overlayfs by hand: lower = the top-level directory (as in the
# sandbox), upper on disk, in a user namespace that maps only you to root.
# Unmounted before the namespace ends: the daemon would keep it alive.
# Arguments: TOP MNT UPPERDIR CMD...; MNT/<path below TOP> is the host's path.
# shellcheck disable=SC2016 # expanded by that shell
readonly anchor_sh='set -e; top=$1 m=$2 u=$3; shift 3
fuse-overlayfs -o "lowerdir=$top,upperdir=$u/upper,workdir=$u/work" "$m"
rc=0; "$@" || rc=$?; umount "$m"; exit $rc'
rel="${base#"$top"/}"
if ! command -v fuse-overlayfs >/dev/null; then
	skip "fuse-overlayfs by hand" "fuse-overlayfs is not installed"
else
	t="$uppers/trial"
	mkdir -p "$t/upper" "$t/work" "$t/mnt"
	if err="$(unshare -rm sh -c "$anchor_sh" sh "$top" "$t/mnt" "$t" test -f "$t/mnt/$rel/data/src.tar" 2>&1)"; then
		places+=("fuse-overlayfs by hand")
	else
		skip "fuse-overlayfs by hand" "trial mount failed: $(echo "$err" | head -n 2 | tr '\n' ' ')"
	fi
fi

# ------------------------------------------------------ environment
load_start="$(cut -d ' ' -f 1-3 /proc/loadavg)"
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel: $(uname -srm)"
	echo "cpus: $(nproc)"
	echo "load average (start): $load_start"
	echo "user: $(id -un) ($uid)"
	echo "sandbox: ${BENCH_SANDBOX_LABEL:-$SANDBOX_BIN} ($("$SANDBOX_BIN" version 2>/dev/null | head -n 1 || echo '?')), --overlay flag: $([[ -n "${overlay[sandbox kernel overlay]}" ]] && echo yes || echo "no (kernel overlay by default)")"
	echo "host directory: $base ($fstype on $(findmnt -n -o SOURCE -T "$dir"))"
	echo "upper layers: $uppers ($(findmnt -n -o FSTYPE,SOURCE -T "$uppers" | tr -s ' ')), same disk as the host directory: $same_disk"
	echo "overlay lower: $top (the sandbox's overlay of it; fuse-overlayfs by hand: lowerdir=$top)"
	echo "tarball: $tar_files files, $tar_bytes bytes"
	echo "fio: $(fio --version 2>/dev/null || echo none), $fio_note"
	echo "fuse-overlayfs: $(fuse-overlayfs --version 2>/dev/null | grep -m 1 'fuse-overlayfs' || echo none)"
	echo "runs: $runs, interleaved"
	for s in "${skipped[@]}"; do echo "skipped: $s"; done
} >"$out/env.txt"
cat "$out/env.txt" >&2

# ------------------------------------------------------ measure
results="$out/results.jsonl"
declare -A dropped
: >"$results"
wl_args=(-tar "$data/src.tar" -lower "$data/lower" -fio-seconds "$fio_seconds" -fio-size "$fio_size")
for ((i = 1; i <= runs; i++)); do
	for place in "${places[@]}"; do
		[[ -z "${dropped[$place]:-}" ]] || continue
		# Write back what the previous place left dirty (the host directory
		# and the uppers share a file system), so that it does not land in
		# this place's numbers; not timed.
		sync -f "$base" "$uppers"
		say "run $i/$runs: $place (load $(cut -d ' ' -f 1 /proc/loadavg))"
		u="$uppers/$i"
		mkdir -p "$u/upper" "$u/work" "$u/mnt"
		args=(run -place "$place" -run "$i" -dir "$base/w" "${wl_args[@]}")
		case "$place" in
		host) cmd=("$fswork" "${args[@]}") ;;
		sandbox*)
			cmd=("$SANDBOX_BIN" run --cwd=none --chdir /)
			[[ -z "${overlay[$place]}" ]] || cmd+=("${overlay[$place]}")
			cmd+=(--upper "$u" -- "$fswork" "${args[@]}") ;;
		*)
			m="$u/mnt/$rel"
			cmd=(unshare -rm sh -c "$anchor_sh" sh "$top" "$u/mnt" "$u" "$fswork" run -place "$place"
				-run "$i" -dir "$m/w" -tar "$m/data/src.tar" -lower "$m/data/lower"
				-fio-seconds "$fio_seconds" -fio-size "$fio_size") ;;
		esac
		if ! "${cmd[@]}" </dev/null >>"$results" 2>"$out/last.err"; then
			cat "$out/last.err" >&2
			case "$place" in
			host | "sandbox kernel overlay") die "$place, run $i failed (command: ${cmd[*]})" ;;
			esac
			# The others are compared, not judged: go on without them.
			dropped[$place]=1
			skip "$place" "run $i failed: $(head -n 3 "$out/last.err" | tr '\n' ' ')"
			echo "skipped: ${skipped[-1]}" >>"$out/env.txt"
		fi
		chmod -R u+rwx "$u" 2>/dev/null || true
		rm -rf "$u"
	done
done
rm -f "$out/last.err"
echo "load average (end): $(cut -d ' ' -f 1-3 /proc/loadavg)" >>"$out/env.txt"

{
	echo "Medians of $runs interleaved runs; (N×) = times slower than the host (time ratio;"
	echo "for MiB/s and IOPS the host's rate ÷ the place's rate). Load average at the start"
	echo "$load_start, at the end $(cut -d ' ' -f 1-3 /proc/loadavg) (1, 5, 15 minutes)."
	echo
} >"$out/summary-head.md"
echo >&2
"$fswork" report -in "$results" -baseline host -md "$out/table.md" -json "$out/summary.json"
cat "$out/summary-head.md" "$out/table.md" >"$out/summary.md"
rm -f "$out/summary-head.md" "$out/table.md"
for s in "${skipped[@]}"; do echo "skipped: $s"; done
if [[ -z "${BENCH_FSWORK_BIN:-}" ]]; then # not when root re-ran us: it says where
	say "results in $out"
fi
