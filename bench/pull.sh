#!/usr/bin/env bash
# Pull benchmark: `sandbox image pull` next to `podman pull` of the same ~50 MB
# multi-layer image from a local registry (bench/cmd/pullreg: go-containerregistry's
# in-memory registry on 127.0.0.1, plain HTTP), in interleaved rounds, every
# pull a full one into an emptied throwaway store. Wall time (medians) and peak
# memory (GNU time's %M), sandbox ÷ podman, and the goal (≤ 1.0).
#
#   bench/pull.sh [--out DIR] [--runs N] [--mb N] [--layers N] [--timeout S]
#
# As root it re-runs itself as the test user sbxtest. SANDBOX_BIN defaults to
# <repo>/bin/sandbox (scripts/build.sh). PODMAN_DRIVER (default overlay) is
# podman's storage driver.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
bench_say_fd=2
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/pull.sh [--out DIR] [--runs N] [--mb N] [--layers N] [--timeout S]

Pulls one generated multi-layer image from a registry on 127.0.0.1 with
`sandbox image pull` and `podman pull`, N interleaved rounds (the order
alternates), each pull into an emptied throwaway store; prints median wall
time, min–max, median peak RSS per tool and sandbox ÷ podman.

  --out DIR     results.tsv, summary.md, env.txt, logs (default: a new temporary directory)
  --runs N      timed pulls per tool (default 10; one untimed warm-up pull each before)
  --mb N        compressed size of the image in MB (default 50)
  --layers N    number of layers (default 5)
  --timeout S   bound of each pull, seconds (default 300)

Environment: SANDBOX_BIN (default <repo>/bin/sandbox), PODMAN_DRIVER (default overlay).
EOF
}

out=""
runs=10
mb=50
layers=5
pull_timeout=300
while [[ $# -gt 0 ]]; do
	case "$1" in
	--out) [[ $# -ge 2 ]] || die "--out needs a directory"; out="$2"; shift 2 ;;
	--runs) [[ $# -ge 2 ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
	--mb) [[ $# -ge 2 ]] || die "--mb needs a number"; mb="$2"; shift 2 ;;
	--layers) [[ $# -ge 2 ]] || die "--layers needs a number"; layers="$2"; shift 2 ;;
	--timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; pull_timeout="$2"; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
for v in runs mb layers pull_timeout; do
	[[ "${!v}" =~ ^[0-9]+$ && "${!v}" -ge 1 ]] || die "--${v/pull_/} must be a number >= 1"
done

# ------------------------------------------------------ as root: re-run as sbxtest
if [[ "$(id -u)" -eq 0 ]]; then
	bench_test_user
	bin="${SANDBOX_BIN:-$repo/bin/sandbox}"
	[[ -f "$bin" && -x "$bin" ]] || die "SANDBOX_BIN=$bin is missing or not executable (build it: scripts/build.sh)"
	[[ -d /usr/local/go/bin ]] && PATH="/usr/local/go/bin:$PATH"
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	bench_out_dir sandbox-pullbench-results
	stage="$(mktemp -d /tmp/sandbox-pullbench-stage.XXXXXX)"
	trap 'rm -rf "$stage"' EXIT
	trap 'exit 130' INT TERM
	chmod 0755 "$stage"
	(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$stage/pullreg" ./bench/cmd/pullreg) ||
		die "could not build bench/cmd/pullreg"
	install -m 0755 "$bin" "$stage/sandbox"
	bench_stage_script "$stage" pull.sh
	bench_stage_out "$stage"
	rc=0
	bench_as_user SANDBOX_BIN="$stage/sandbox" BENCH_PULLREG="$stage/pullreg" BENCH_SANDBOX_LABEL="$bin" \
		PODMAN_DRIVER="${PODMAN_DRIVER:-overlay}" \
		bash "$stage/pull.sh" --out "$stage/out" --runs "$runs" --mb "$mb" --layers "$layers" \
		--timeout "$pull_timeout" </dev/null || rc=$?
	bench_collect "$stage"
	exit "$rc"
fi

# ------------------------------------------------------ as the unprivileged user
SB="${SANDBOX_BIN:-$repo/bin/sandbox}"
[[ -f "$SB" && -x "$SB" ]] || die "SANDBOX_BIN=$SB is missing or not executable (build it: scripts/build.sh)"
SB="$(cd "$(dirname "$SB")" && pwd)/$(basename "$SB")"
driver="${PODMAN_DRIVER:-overlay}"
for t in timeout mkfifo; do command -v "$t" >/dev/null || die "$t not found"; done
gnu_time=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then
	gnu_time=/usr/bin/time
else
	say "GNU time (/usr/bin/time) is absent: no peak memory (apt-get install time)"
fi

bench_out_dir sandbox-pullbench-results
work="$(mktemp -d "${TMPDIR:-/tmp}/sandbox-pullbench.XXXXXX")"
skipped=""

pullreg="${BENCH_PULLREG:-}"
if [[ -z "$pullreg" ]]; then
	[[ -d /usr/local/go/bin ]] && PATH="/usr/local/go/bin:$PATH"
	(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$work/pullreg" ./bench/cmd/pullreg) ||
		die "could not build bench/cmd/pullreg"
	pullreg="$work/pullreg"
fi

# Throwaway stores: the sandbox's below its own XDG_DATA_HOME, podman's with
# its own --root/--runroot, HOME, XDG_RUNTIME_DIR and XDG_CONFIG_HOME, so
# nothing of the user's own images or configuration is used or touched.
sb_data="$work/sandbox-data"
p_home="$work/podman-home"
p_run="$work/podman-xdg-run"
mkdir -p "$p_home/.config"
install -d -m 0700 "$p_run"
sb_cmd=(env XDG_DATA_HOME="$sb_data" "$SB")
pm_cmd=(env HOME="$p_home" XDG_CONFIG_HOME="$p_home/.config" XDG_DATA_HOME="$p_home/.local/share"
	XDG_RUNTIME_DIR="$p_run" podman --root "$work/podman-root" --runroot "$work/podman-runroot"
	--storage-driver "$driver")

reg_pid=""
podman_used=0
cleanup() {
	local rc=$? pause=""
	exec 3>&- 2>/dev/null || true # the registry stops when its stdin closes
	if [[ -n "$reg_pid" ]]; then
		kill "$reg_pid" 2>/dev/null || true
		wait "$reg_pid" 2>/dev/null || true
	fi
	if [[ "$podman_used" = 1 ]]; then
		# podman's pause process holds the user namespace (and its overlay
		# mounts); reset empties root and runroot, then the pause process goes.
		timeout 120 "${pm_cmd[@]}" system reset -f >/dev/null 2>&1 ||
			say "podman system reset failed; $work may need: podman unshare rm -rf $work/podman-root"
		for f in "$p_run/libpod/tmp/pause.pid" "$work/podman-runroot/libpod/tmp/pause.pid"; do
			[[ -s "$f" ]] && pause="$(cat "$f")"
		done
		if [[ -n "$pause" && "$(cat "/proc/$pause/comm" 2>/dev/null)" == podman* ]]; then
			kill "$pause" 2>/dev/null || true
		fi
	fi
	rm -rf "$work" 2>/dev/null || say "could not remove all of $work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------ the registry
say "generating a ${mb} MB image of $layers layers and pushing it into the in-process registry"
mkfifo "$work/reg.stdin"
"$pullreg" serve -addr-file "$work/ref" -mb "$mb" -layers "$layers" \
	-max-life "$((runs * 2 * pull_timeout + 900))s" <"$work/reg.stdin" >"$out/registry.log" 2>&1 &
reg_pid=$!
exec 3>"$work/reg.stdin"
for _ in $(seq 1 600); do
	[[ -s "$work/ref" ]] && break
	kill -0 "$reg_pid" 2>/dev/null || die "the registry stopped: $(cat "$out/registry.log")"
	sleep 0.5
done
[[ -s "$work/ref" ]] || die "the registry did not come up in 300 s"
ref="$(cat "$work/ref")"
host="${ref%%/*}"
say "$(tail -n 1 "$out/registry.log")"

# ------------------------------------------------------ one pull of each
empty_sandbox() {
	if [[ -d "$sb_data" ]]; then
		timeout 60 "${sb_cmd[@]}" image rm "$ref" >/dev/null 2>&1 || true
		rm -rf "$sb_data" || die "could not empty the sandbox's store $sb_data"
	fi
}
empty_podman() {
	timeout 120 "${pm_cmd[@]}" rmi -a -f >/dev/null 2>&1 || true
	[[ -z "$(timeout 60 "${pm_cmd[@]}" images -q 2>/dev/null)" ]] || die "podman's store still has images after rmi -a"
}
# timed TOOL ROUND: empty the tool's store (not timed), pull, append a line
# to results.tsv.
timed() {
	local tool="$1" round="$2" t0 t1 rss="-" rc=0
	local -a cmd meter=()
	"empty_$tool"
	sync
	case "$tool" in
	sandbox) cmd=("${sb_cmd[@]}" image pull --insecure-registry "$host" "$ref") ;;
	podman) cmd=("${pm_cmd[@]}" pull -q --tls-verify=false "$ref") ;;
	esac
	[[ -z "$gnu_time" ]] || meter=("$gnu_time" -f %M -o "$work/rss")
	t0="$(date +%s%N)"
	"${meter[@]}" timeout "$pull_timeout" "${cmd[@]}" >>"$out/$tool.log" 2>&1 || rc=$?
	t1="$(date +%s%N)"
	[[ "$rc" -eq 0 ]] || { say "$tool pull failed (status $rc), see $out/$tool.log:"; tail -n 3 "$out/$tool.log" >&2; return 1; }
	[[ -z "$gnu_time" ]] || rss="$(tail -n 1 "$work/rss")"
	[[ "$rss" =~ ^[0-9]+$ ]] || rss="-"
	local secs
	secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')"
	[[ "$round" == warm-up ]] || printf '%s\t%s\t%s\t%s\n' "$tool" "$round" "$secs" "$rss" >>"$out/results.tsv"
	say "$tool round $round: $secs s, peak RSS $rss kB"
}

tools=(sandbox)
timed sandbox warm-up || die "sandbox image pull must work"
if ! command -v podman >/dev/null; then
	skipped="podman: not installed"
	say "$skipped"
else
	podman_used=1
	if timed podman warm-up; then
		tools+=(podman)
	else
		skipped="podman: its pull failed (see podman.log)"
	fi
fi
[[ -s "$out/sandbox.log" ]] && grep -q sha256: "$out/sandbox.log" || die "sandbox printed no digest"

# ------------------------------------------------------ env.txt
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "kernel: $(uname -r)"
	echo "cpus: $(nproc)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "user: $(id -un) ($(id -u))"
	echo "sandbox: ${BENCH_SANDBOX_LABEL:-$SB} ($("$SB" version 2>/dev/null | head -n 1))"
	echo "podman: $(podman --version 2>/dev/null || echo absent), storage driver $driver"
	echo "GNU time: ${gnu_time:-absent}"
	echo "image: $ref — $(tail -n 1 "$out/registry.log" | sed 's/^pullreg: [^ ]* //')"
	echo "stores: $work ($(stat -f -c %T "$work"))"
	echo "runs: $runs per tool, interleaved, order alternating; pull timeout ${pull_timeout}s"
	[[ -z "$skipped" ]] || echo "skipped: $skipped"
} >"$out/env.txt"

# ------------------------------------------------------ interleaved rounds
: >"$out/results.tsv"
for r in $(seq 1 "$runs"); do
	order=("${tools[@]}")
	if ((r % 2 == 0)) && [[ "${#tools[@]}" -eq 2 ]]; then order=(podman sandbox); fi
	for t in "${order[@]}"; do
		timed "$t" "$r" || die "$t failed in round $r"
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"

"$pullreg" report -in "$out/results.tsv" -md "$out/summary.md" -goal 1.0
echo
cat "$out/env.txt"
