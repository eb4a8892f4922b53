#!/usr/bin/env bash
# Network benchmark: throughput of each --net driver (sandbox→host through
# the gateway, host→sandbox through a published port) side by side with host
# loopback and pasta run by hand, in one run (iperf3, short runs), and the
# start-up latency each driver adds to `sandbox run --net=none -- true`
# (hyperfine), next to rootlesskit+slirp4netns.
#
#   bench/network.sh [--seconds N] [--runs N]
#
# As root it re-runs itself as the test user sbxtest. Only 127.0.0.1 and the
# sandbox's own addresses are used. SANDBOX_BIN defaults to <repo>/bin/sandbox.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
bench_say_fd=2
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"
seconds=3
runs=20
while [[ $# -gt 0 ]]; do
	case "$1" in
	--seconds) seconds="$2"; shift 2 ;;
	--runs) runs="$2"; shift 2 ;;
	*) echo "usage: bench/network.sh [--seconds N] [--runs N]" >&2; exit 2 ;;
	esac
done

if [[ "$(id -u)" -eq 0 ]]; then
	bin="${SANDBOX_BIN:-$repo/bin/sandbox}"
	[[ -x "$bin" ]] || die "no $bin (run scripts/build.sh)"
	work="$(mktemp -d /tmp/sandbox-netbench.XXXXXX)"
	trap 'rm -rf "$work"' EXIT
	install -m 0755 "$bin" "$work/sandbox"
	bench_stage_script "$work" network.sh
	chown -R "$TEST_USER" "$work"
	cd "$work"
	# Not exec: the EXIT trap removes the work directory once the run is over.
	rc=0
	runuser -u "$TEST_USER" -- env -i HOME="/home/$TEST_USER" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		SANDBOX_BIN="$work/sandbox" bash "$work/network.sh" --seconds "$seconds" --runs "$runs" || rc=$?
	exit "$rc"
fi

for t in iperf3 hyperfine python3; do command -v "$t" >/dev/null || die "$t is not installed (sudo scripts/setup-host.sh)"; done
SB="${SANDBOX_BIN:-$repo/bin/sandbox}"
cd "$(dirname "$SB")"

# gbps: the receiver's rate in Gbit/s from iperf3 -J output on stdin.
gbps() { python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'; }

port=$((20000 + RANDOM % 20000))
server() { # server PORT: one iperf3 server on the host's loopback for one test
	iperf3 -s -1 -B 127.0.0.1 -p "$1" >/dev/null 2>&1 &
	sleep 0.3
}

declare -A out_rate in_rate
say "host loopback"
port=$((port + 1)); server "$port"
host_rate="$(iperf3 -J -c 127.0.0.1 -p "$port" -t "$seconds" | gbps)"
wait

drivers=()
for d in pasta slirp4netns builtin; do
	if "$SB" run --net="$d" -- true 2>/dev/null; then drivers+=("$d"); else say "skipping $d: not usable here"; fi
done
for d in "${drivers[@]}"; do
	say "$d: sandbox → host"
	port=$((port + 1)); server "$port"
	out_rate[$d]="$("$SB" run --net="$d" --allow-host-loopback -- iperf3 -J -c 10.0.2.2 -p "$port" -t "$seconds" | gbps)"
	wait
	say "$d: host → published port"
	port=$((port + 1))
	"$SB" run --net="$d" -p "$port:5201" -- iperf3 -s -1 >/dev/null 2>&1 &
	sb=$!
	rate=""
	for _ in $(seq 1 50); do
		sleep 0.2
		if rate="$(iperf3 -J -c 127.0.0.1 -p "$port" -t "$seconds" 2>/dev/null | gbps 2>/dev/null)"; then break; fi
		rate=""
	done
	in_rate[$d]="${rate:-failed}"
	kill "$sb" 2>/dev/null || true
	wait "$sb" 2>/dev/null || true
done

pasta_out="n/a" pasta_in="n/a"
if command -v pasta >/dev/null; then
	say "pasta by hand (pasta --config-net -- iperf3 …)"
	port=$((port + 1)); server "$port"
	# by hand, pasta maps its gateway to the host's loopback
	gw="$(ip -4 route show default | awk '{print $3; exit}')"
	pasta_out="$(pasta -q --config-net -- iperf3 -J -c "$gw" -p "$port" -t "$seconds" 2>/dev/null | gbps || echo failed)"
	wait || true
	port=$((port + 1))
	pasta -q --config-net -t "127.0.0.1/$port:5201" -- iperf3 -s -1 >/dev/null 2>&1 &
	pp=$!
	for _ in $(seq 1 50); do
		sleep 0.2
		if pasta_in="$(iperf3 -J -c 127.0.0.1 -p "$port" -t "$seconds" 2>/dev/null | gbps 2>/dev/null)"; then break; fi
		pasta_in="failed"
	done
	kill "$pp" 2>/dev/null || true
	wait "$pp" 2>/dev/null || true
fi

echo
echo "## Throughput (Gbit/s, iperf3 ${seconds}s, one stream)"
echo
echo "| path | sandbox→host | host→sandbox (published port) | × host loopback (out / in) |"
echo "|---|---:|---:|---:|"
ratio() { python3 -c "import sys; a,b=sys.argv[1],sys.argv[2]; print('%.2f' % (float(a)/float(b)) if a.replace('.','',1).isdigit() else '-')" "$1" "$2"; }
echo "| host loopback | $host_rate | $host_rate | 1.00 / 1.00 |"
for d in "${drivers[@]}"; do
	echo "| sandbox --net=$d | ${out_rate[$d]} | ${in_rate[$d]} | $(ratio "${out_rate[$d]}" "$host_rate") / $(ratio "${in_rate[$d]}" "$host_rate") |"
done
echo "| pasta by hand | $pasta_out | $pasta_in | $(ratio "$pasta_out" "$host_rate") / $(ratio "$pasta_in" "$host_rate") |"

echo
echo "## Start-up (hyperfine, $runs runs): what each driver adds to --net=none"
cmds=("$SB run --net=none -- true")
for d in "${drivers[@]}"; do cmds+=("$SB run --net=$d -- true"); done
if command -v rootlesskit >/dev/null && command -v slirp4netns >/dev/null; then
	cmds+=("rootlesskit --net=slirp4netns --disable-host-loopback true")
fi
hyperfine -N -w 3 -r "$runs" --export-json "$PWD/net-startup.json" "${cmds[@]}" >/dev/null 2>&1 ||
	hyperfine -w 3 -r "$runs" --export-json "$PWD/net-startup.json" "${cmds[@]}" >/dev/null
python3 - "$PWD/net-startup.json" <<'EOF'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = rs[0]["median"]
print("\n| command | median ms | added to --net=none, ms |\n|---|---:|---:|")
for r in rs:
    print("| `%s` | %.1f | %+.1f |" % (r["command"].replace(sys.argv[1].rsplit("/", 1)[0] + "/", ""), r["median"] * 1000, (r["median"] - base) * 1000))
EOF
