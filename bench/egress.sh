#!/usr/bin/env bash
# Egress-policy benchmark (issue 13): the same driver (--net=builtin) with and
# without a policy, in one run, as ratios (with ÷ without): the start-up a
# policy adds (hyperfine, `sandbox run -- true`), TCP throughput (iperf3,
# server outside the sandbox, client inside), an HTTP upload's throughput
# and new TCP connections per second (bench/cmd/connrate: connect, a small
# HTTP request, the answer, close, N times in a row).
#
#   bench/egress.sh [--out DIR] [--runs N] [--warmup N] [--rounds N] [--seconds N] [--conns N] [--upload-mb N]
#
# As root it uses the e2e tests' world (scripts/testworld.sh: network
# namespace sbxworld, 198.18.0.0/15; brought up when it is not, and taken
# down after unless a test run holds it), starts its own iperf3 and connrate
# servers in it on 198.18.1.10 (allowed.test in the world's DNS), and
# re-runs itself as the test user sbxtest. The policy is real: by name
# (--dns 198.18.0.2 --allow-host allowed.test:PORTS: the sandbox's resolver,
# the address table and the Host check on every connection) and by address
# (--allow-cidr 198.18.1.10/32:PORTS). Without root (or without the world)
# only the address path can be measured: against servers on the host's
# loopback, reached at 10.0.2.2 with --allow-host-loopback.
# SANDBOX_BIN defaults to the repository's bin/sandbox (scripts/build.sh).
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

readonly WORLD_NS=sbxworld WORLD_DNS=198.18.0.2 WORLD_IP=198.18.1.10 WORLD_NAME=allowed.test
readonly WORLD_CONTROL=http://198.18.0.2:8080 WORLD_LOCK=/run/sandbox-testworld.lock
readonly SERVER_LIFE=3600 # seconds: the servers' bound, far beyond any run here

usage() {
	cat <<'EOF'
usage: bench/egress.sh [--out DIR] [--runs N] [--warmup N] [--rounds N] [--seconds N] [--conns N] [--upload-mb N]

The builtin network driver with and without an egress policy, in one run:
start-up (hyperfine, `sandbox run --net=builtin [policy] -- true`), TCP
throughput (iperf3 client inside, server outside), the throughput of an
HTTP upload (one POST; a policy by name reads every request's Host) and new
TCP connections per second (both bench/cmd/connrate), each as with policy
÷ without, and the issue's goals (throughput ≥ 0.9, connection rate ≥ 0.8).

  --out DIR     write startup.json, throughput.tsv, connrate.tsv, summary.md,
                summary.txt, env.txt to DIR (default: a new temporary directory)
  --runs N      hyperfine runs per start-up command, split over the rounds
                (default 20)
  --warmup N    hyperfine warm-up runs per command and round (default 3)
  --rounds N    rounds; each measures every variant's start-up, throughput
                and connection rate, in turn; medians (default 5)
  --seconds N   iperf3 seconds per measurement (default 3)
  --conns N     connections per connection-rate measurement (default 1000)
  --upload-mb N MiB of each HTTP upload (default 1024)

As root: the e2e test world (by name and by address), then re-run as sbxtest.
As an unprivileged user: the host's loopback (by address only).
Environment: SANDBOX_BIN (default: <repo>/bin/sandbox).
EOF
}

out=""
runs=20
warmup=3
rounds=5
seconds=3
conns=1000
upload_mb=1024
num() { [[ "$2" =~ ^[0-9]+$ && "$2" -ge "$3" ]] || die "$1 must be a number >= $3"; }
while [[ $# -gt 0 ]]; do
	case "$1" in
	--out | --runs | --warmup | --rounds | --seconds | --conns | --upload-mb)
		[[ $# -ge 2 ]] || die "$1 needs a value"
		opt="${1#--}"
		declare "${opt//-/_}=$2"
		shift 2
		;;
	--out=* | --runs=* | --warmup=* | --rounds=* | --seconds=* | --conns=* | --upload-mb=*)
		opt="${1%%=*}"
		opt="${opt#--}"
		declare "${opt//-/_}=${1#*=}"
		shift
		;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
num --runs "$runs" 2
num --warmup "$warmup" 0
num --rounds "$rounds" 1
num --seconds "$seconds" 1
num --conns "$conns" 10
num --upload-mb "$upload_mb" 1
[[ "$seconds" -le 60 && "$conns" -le 100000 && "$rounds" -le 50 && "$upload_mb" -le 16384 ]] ||
	die "--seconds at most 60, --conns at most 100000, --rounds at most 50, --upload-mb at most 16384"

SANDBOX_BIN="${SANDBOX_BIN:-$repo/bin/sandbox}"
[[ -f "$SANDBOX_BIN" && -x "$SANDBOX_BIN" ]] ||
	die "SANDBOX_BIN=$SANDBOX_BIN is missing or not executable (build it: scripts/build.sh)"
SANDBOX_BIN="$(cd "$(dirname "$SANDBOX_BIN")" && pwd)/$(basename "$SANDBOX_BIN")"
if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

build_connrate() { # DEST
	(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$1" ./bench/cmd/connrate) ||
		die "could not build bench/cmd/connrate"
}

# port_free PORT: nothing listens on PORT (ss, in the current namespace).
port_free() { [[ -z "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]]; }
# pick_ports: two free ports from 20000-39999, in $iperf_port, $conn_port.
pick_ports() {
	local i
	for ((i = 0; i < 50; i++)); do
		iperf_port=$((20000 + RANDOM % 20000))
		conn_port=$((iperf_port + 1))
		if port_free "$iperf_port" && port_free "$conn_port"; then return 0; fi
	done
	die "no two free ports found in 50 tries"
}

# wait_listening NETNS-PREFIX PORT PID: up to 10 s for PORT to listen while
# PID lives. NETNS-PREFIX is "" or "ip netns exec NS".
wait_listening() {
	local prefix="$1" port="$2" pid="$3" i
	for ((i = 0; i < 100; i++)); do
		# shellcheck disable=SC2086
		[[ -n "$($prefix ss -Hltn "( sport = :$port )" 2>/dev/null)" ]] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# stop_pids PID...: TERM (timeout passes it on to its server), at most 5 s,
# then KILL.
stop_pids() {
	local pid i
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "$@"; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

# ------------------------------------------------------ as root: world, servers, then sbxtest
if [[ "$(id -u)" -eq 0 ]]; then
	bench_test_user
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	bench_out_dir sandbox-bench-results

	stage="$(mktemp -d /tmp/sandbox-egbench-stage.XXXXXX)"
	server_pids=()
	world_started=0
	world_fd=""
	root_cleanup() {
		stop_pids "${server_pids[@]}"
		if [[ -n "$world_fd" ]]; then
			exec {world_fd}>&-
			world_fd=""
		fi
		if [[ "$world_started" == 1 ]]; then
			timeout 150 bash "$repo/scripts/testworld.sh" down || true
		fi
		rm -rf "$stage"
	}
	trap root_cleanup EXIT
	trap 'exit 130' INT TERM
	chmod 0755 "$stage"
	build_connrate "$stage/connrate"
	cp "$SANDBOX_BIN" "$stage/sandbox"
	bench_stage_script "$stage" egress.sh
	chmod -R a+rX "$stage"
	bench_stage_out "$stage"

	# The world, held (shared lock, as each test run holds it) so that no
	# test run's `testworld.sh down` removes it under us.
	mode=loopback
	why_loopback=""
	world_answers() { [[ "$(curl -fsS --max-time 2 "$WORLD_CONTROL/ping" 2>/dev/null)" == world ]]; }
	exec {world_fd}>>"$WORLD_LOCK"
	if ! flock -s -w 120 "$world_fd"; then
		why_loopback="could not take $WORLD_LOCK within 120 s"
	elif world_answers; then
		mode=world
	elif [[ -f "$repo/scripts/testworld.sh" ]]; then
		say "the test world is down: bringing it up (scripts/testworld.sh up)"
		if timeout 300 bash "$repo/scripts/testworld.sh" up {world_fd}>&- && world_answers; then
			world_started=1
			mode=world
		else
			why_loopback="scripts/testworld.sh up failed"
		fi
	else
		why_loopback="no test world (scripts/testworld.sh) in $repo"
	fi

	iperf_port="" conn_port=""
	if [[ "$mode" == world ]]; then
		command -v iperf3 >/dev/null || die "iperf3 not found (run scripts/setup-host.sh)"
		pick_ports
		ns="ip netns exec $WORLD_NS"
		$ns timeout "$SERVER_LIFE" iperf3 -s -B "$WORLD_IP" -p "$iperf_port" \
			</dev/null >"$stage/iperf3-server.log" 2>&1 {world_fd}>&- &
		server_pids+=($!)
		wait_listening "$ns" "$iperf_port" "$!" ||
			die "the iperf3 server in $WORLD_NS did not listen on $WORLD_IP:$iperf_port: $(tail -n 3 "$stage/iperf3-server.log")"
		$ns timeout "$SERVER_LIFE" "$stage/connrate" serve -addr "$WORLD_IP:$conn_port" -for "${SERVER_LIFE}s" \
			</dev/null >"$stage/connrate-server.log" 2>&1 {world_fd}>&- &
		server_pids+=($!)
		wait_listening "$ns" "$conn_port" "$!" ||
			die "the connrate server in $WORLD_NS did not listen on $WORLD_IP:$conn_port: $(tail -n 3 "$stage/connrate-server.log")"
		say "servers in $WORLD_NS: iperf3 on $WORLD_IP:$iperf_port, connrate on $WORLD_IP:$conn_port"
	else
		say "no test world ($why_loopback): measuring the address path against the host's loopback only"
	fi

	if bench_as_user SANDBOX_BIN="$stage/sandbox" BENCH_TOOLS_DIR="$stage" \
		BENCH_SANDBOX_LABEL="$SANDBOX_BIN" EGB_MODE="$mode" EGB_WHY_LOOPBACK="$why_loopback" \
		EGB_IPERF_PORT="$iperf_port" EGB_CONN_PORT="$conn_port" \
		bash "$stage/egress.sh" --out "$stage/out" --runs "$runs" --warmup "$warmup" \
		--rounds "$rounds" --seconds "$seconds" --conns "$conns" --upload-mb "$upload_mb" </dev/null {world_fd}>&-; then
		rc=0
	else
		rc=$?
	fi
	cp "$stage/"*-server.log "$out/" 2>/dev/null || true
	bench_collect "$stage"
	exit "$rc"
fi

# ------------------------------------------------------ as the unprivileged user
for t in hyperfine iperf3 python3 ss; do
	command -v "$t" >/dev/null || die "$t not found (run scripts/setup-host.sh as root)"
done
bench_out_dir sandbox-bench-results
work="$(mktemp -d /tmp/sandbox-egbench-work.XXXXXX)"
bg_pids=()
cleanup() {
	stop_pids "${bg_pids[@]}"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tools="${BENCH_TOOLS_DIR:-}"
if [[ -z "$tools" ]]; then
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	tools="$work"
	build_connrate "$tools/connrate"
fi
connrate="$tools/connrate"
SB="$SANDBOX_BIN"
qsb="$(printf '%q' "$SB")"

mode="${EGB_MODE:-loopback}"
why_loopback="${EGB_WHY_LOOPBACK:-not run as root}"
if [[ "$mode" == world ]]; then
	iperf_port="${EGB_IPERF_PORT:?}"
	conn_port="${EGB_CONN_PORT:?}"
	ports="$iperf_port,$conn_port"
	# label|flags|the address the client inside connects to
	variants=(
		"no policy|--net=builtin|$WORLD_IP"
		"--allow-host (by name)|--net=builtin --dns $WORLD_DNS --allow-host $WORLD_NAME:$ports|$WORLD_NAME"
		"--allow-cidr (by address)|--net=builtin --allow-cidr $WORLD_IP/32:$ports|$WORLD_IP"
	)
	where="the test world's $WORLD_IP ($WORLD_NAME), network namespace $WORLD_NS, through the host's veth"
else
	pick_ports
	ports="$iperf_port,$conn_port"
	timeout "$SERVER_LIFE" iperf3 -s -B 127.0.0.1 -p "$iperf_port" </dev/null >"$out/iperf3-server.log" 2>&1 &
	bg_pids+=($!)
	wait_listening "" "$iperf_port" "$!" || die "iperf3 did not listen on 127.0.0.1:$iperf_port"
	timeout "$SERVER_LIFE" "$connrate" serve -addr "127.0.0.1:$conn_port" -for "${SERVER_LIFE}s" \
		</dev/null >"$out/connrate-server.log" 2>&1 &
	bg_pids+=($!)
	wait_listening "" "$conn_port" "$!" || die "connrate did not listen on 127.0.0.1:$conn_port"
	variants=(
		"no policy|--net=builtin --allow-host-loopback|10.0.2.2"
		"--allow-cidr (by address)|--net=builtin --allow-host-loopback --allow-cidr 10.0.2.2/32:$ports|10.0.2.2"
	)
	where="the host's loopback (127.0.0.1), reached at 10.0.2.2 with --allow-host-loopback; no name path ($why_loopback)"
	say "no test world ($why_loopback): the address path only, against the host's loopback"
fi

labels=() flags=() targets=()
for v in "${variants[@]}"; do
	IFS='|' read -r l f t <<<"$v"
	labels+=("$l")
	flags+=("$f")
	targets+=("$t")
done

# The commands run from the tools directory: the sandbox shares the
# working directory, so ./connrate is there inside.
cd "$tools"

# sbrun I CMD...: CMD in a sandbox with variant I's flags, bounded; its
# stderr in $work/sb.err.
sbrun() {
	local i="$1"
	shift
	# shellcheck disable=SC2086
	timeout $((seconds + 60)) "$SB" run ${flags[$i]} -- "$@" </dev/null 2>"$work/sb.err"
}
err_of() { head -n 5 "$work/sb.err" | tr '\n' ' '; }

# Every variant once, so that a broken one stops the run before measuring.
for i in "${!labels[@]}"; do
	sbrun "$i" ./connrate client -addr "${targets[$i]}:$conn_port" -n 10 -warmup 0 >/dev/null ||
		die "'${labels[$i]}': a trial connection failed: $(err_of)"
	if grep -q 'sandbox: blocked' "$work/sb.err"; then
		die "'${labels[$i]}': the policy blocked something it should allow: $(err_of)"
	fi
done

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel: $(uname -srm)"
	echo "cpus: $(nproc)"
	echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "user: $(id -un) ($(id -u))"
	echo "sandbox: ${BENCH_SANDBOX_LABEL:-$SB} ($("$SB" version 2>/dev/null | head -n 1 || echo '?'))"
	echo "hyperfine: $(hyperfine --version 2>/dev/null)"
	echo "iperf3: $(iperf3 --version 2>/dev/null | head -n 1)"
	echo "servers: $where; iperf3 port $iperf_port, connrate port $conn_port"
	for i in "${!labels[@]}"; do echo "variant: ${labels[$i]}: sandbox run ${flags[$i]} -- … ${targets[$i]}"; done
	echo "runs: $runs, warmup: $warmup, rounds: $rounds, iperf3 seconds: $seconds, connections: $conns, upload: $upload_mb MiB"
} >"$out/env.txt"
cat "$out/env.txt"

# ------------------------------------------------------ measure
# Start-up: hyperfine in every round, --runs split over the rounds (at
# least 2 a round), so that start-up is interleaved with the rest as the
# other measurements are; the table takes the median of all runs.
hf_args=()
for i in "${!labels[@]}"; do
	hf_args+=("--command-name=${labels[$i]}" "$qsb run ${flags[$i]} -- true")
done
hf_runs=$(((runs + rounds - 1) / rounds))
if [[ "$hf_runs" -lt 2 ]]; then hf_runs=2; fi
startup_once() { # ROUND
	hyperfine -N --warmup "$warmup" --runs "$hf_runs" --export-json "$out/startup-r$1.json" "${hf_args[@]}" \
		</dev/null >>"$out/hyperfine.log" 2>&1 || die "hyperfine failed: $(tail -n 5 "$out/hyperfine.log")"
}

# iperf_once I: Gbit/s received; iperf3's server serves one test at a time,
# so a refusal ("busy") is retried, at most 3 tries.
iperf_once() {
	local i="$1" try
	for ((try = 0; try < 3; try++)); do
		if sbrun "$i" iperf3 -J -c "${targets[$i]}" -p "$iperf_port" -t "$seconds" >"$work/iperf.json" &&
			python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9)' \
				"$work/iperf.json" 2>/dev/null; then
			return 0
		fi
		sleep 1
	done
	die "'${labels[$i]}': iperf3 failed 3 times: $(err_of) $(head -c 300 "$work/iperf.json")"
}
upload_once() {
	local i="$1"
	sbrun "$i" ./connrate upload -addr "${targets[$i]}:$conn_port" -mb "$upload_mb" >"$work/upload.json" ||
		die "'${labels[$i]}': the HTTP upload failed: $(err_of)"
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gbps"])' "$work/upload.json"
}
conn_once() {
	local i="$1"
	sbrun "$i" ./connrate client -addr "${targets[$i]}:$conn_port" -n "$conns" >"$work/conn.json" ||
		die "'${labels[$i]}': connrate failed: $(err_of)"
	if grep -q 'connections to .* failed' "$work/sb.err"; then
		say "note: '${labels[$i]}': $(grep -m1 'connections to .* failed' "$work/sb.err")" >&2
	fi
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%s\t%d" % (d["per_second"], d["failed"]))' "$work/conn.json"
}

printf 'variant\tround\tgbps\n' >"$out/throughput.tsv"
printf 'variant\tround\tgbps\n' >"$out/upload.tsv"
printf 'variant\tround\tper_second\tfailed\n' >"$out/connrate.tsv"
for ((r = 1; r <= rounds; r++)); do
	say "round $r of $rounds: start-up ($warmup warm-up + $hf_runs runs), iperf3 ${seconds}s, a $upload_mb MiB upload and $conns connections, each variant"
	startup_once "$r"
	for i in "${!labels[@]}"; do
		g="$(iperf_once "$i")"
		printf '%s\t%d\t%s\n' "${labels[$i]}" "$r" "$g" >>"$out/throughput.tsv"
		u="$(upload_once "$i")"
		printf '%s\t%d\t%s\n' "${labels[$i]}" "$r" "$u" >>"$out/upload.tsv"
		c="$(conn_once "$i")"
		printf '%s\t%d\t%s\n' "${labels[$i]}" "$r" "$c" >>"$out/connrate.tsv"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"

# ------------------------------------------------------ tables
echo
python3 - "$out" "$seconds" "$conns" "$rounds" "$upload_mb" <<'EOF' | tee "$out/summary.txt"
import csv, json, statistics, sys

out, seconds, conns, rounds, upload_mb = sys.argv[1:6]
# Every round's hyperfine runs, together: times per command, in order.
start, labels = {}, []
for n in range(1, int(rounds) + 1):
    for r in json.load(open("%s/startup-r%d.json" % (out, n)))["results"]:
        if r["command"] not in start:
            labels.append(r["command"])
        start.setdefault(r["command"], []).extend(r["times"])
json.dump({"results": [{"command": l, "times": start[l], "median": statistics.median(start[l])} for l in labels]},
          open(out + "/startup.json", "w"), indent=1)
base = labels[0]

def col(name, key):
    vals = {}
    with open(out + "/" + name) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            vals.setdefault(row["variant"], []).append(float(row[key]))
    return vals

tput = col("throughput.tsv", "gbps")
upl = col("upload.tsv", "gbps")
rate = col("connrate.tsv", "per_second")
failed = col("connrate.tsv", "failed")
med = statistics.median
md = []
md.append("| variant | start-up median ms (%d runs) | added ms | ÷ no policy | TCP Gbit/s (iperf3, median of %s × %ss) | ÷ no policy | HTTP upload Gbit/s (median of %s × %s MiB) | ÷ no policy | connections/s (median of %s × %s) | ÷ no policy |" % (len(start[base]), rounds, seconds, rounds, upload_mb, rounds, conns))
md.append("|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratios = {}
for l in labels:
    s, s0 = statistics.median(start[l]) * 1000, statistics.median(start[base]) * 1000
    t, t0 = med(tput[l]), med(tput[base])
    u, u0 = med(upl[l]), med(upl[base])
    c, c0 = med(rate[l]), med(rate[base])
    ratios[l] = (t / t0, u / u0, c / c0)
    same = l == base
    md.append("| %s | %.1f | %s | %s | %.2f | %s | %.2f | %s | %.0f | %s |" % (
        l, s, "—" if same else "%+.1f" % (s - s0), "—" if same else "%.2f" % (s / s0),
        t, "—" if same else "%.2f" % (t / t0), u, "—" if same else "%.2f" % (u / u0),
        c, "—" if same else "%.2f" % (c / c0)))
md.append("")
md.append("Spread (min–max over the rounds): " + "; ".join(
    "%s: %.2f–%.2f Gbit/s, upload %.2f–%.2f Gbit/s, %.0f–%.0f conn/s" % (
        l, min(tput[l]), max(tput[l]), min(upl[l]), max(upl[l]), min(rate[l]), max(rate[l])) for l in labels))
md.append("")
md.append("Connections that failed (counted, not in the rate; connrate's 5 s bound): " + "; ".join(
    "%s: %d of %d" % (l, sum(failed[l]), int(conns) * len(failed[l])) for l in labels))
md.append("")
# Each round's own ratio (with ÷ without, measured minutes apart at most):
# how far the ratio of medians can be trusted on a loaded machine.
def rounds_of(vals, l):
    return [a / b for a, b in zip(vals[l], vals[base])]

def spread(rs):
    return "%.2f / %.2f / %.2f" % (min(rs), med(rs), max(rs))

md.append("| goal (issue 13) | variant | ratio of medians | each round's ratio: min / median / max | |")
md.append("|:---|:---|---:|---:|:---|")
for l in labels[1:]:
    t, u, c = ratios[l]
    md.append("| TCP throughput with ÷ without ≥ 0.9 | %s | %.3f | %s | %s |" % (
        l, t, spread(rounds_of(tput, l)), "met" if t >= 0.9 else "**not met**"))
    md.append("| HTTP upload throughput with ÷ without ≥ 0.9 | %s | %.3f | %s | %s |" % (
        l, u, spread(rounds_of(upl, l)), "met" if u >= 0.9 else "**not met**"))
    md.append("| new connections/s with ÷ without ≥ 0.8 | %s | %.3f | %s | %s |" % (
        l, c, spread(rounds_of(rate, l)), "met" if c >= 0.8 else "**not met**"))
print("\n".join(md))
open(out + "/summary.md", "w").write("\n".join(md) + "\n")
EOF
if [[ -z "${BENCH_TOOLS_DIR:-}" ]]; then # not when root re-ran us: it says where
	echo
	say "results in $out"
fi
