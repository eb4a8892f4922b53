#!/usr/bin/env bash
# The e2e tests' stand-in for "the internet" (issue 13), run as root.
#
#   sudo scripts/testworld.sh up     # make it (idempotent), start its server
#   sudo scripts/testworld.sh down   # remove it, unless a test run still holds it
#
# Network namespace sbxworld, veth pair sbxw0 (host, 198.18.0.1/24) and
# sbxw1 (world, 198.18.0.2/24); the world also holds 198.18.1.10-12 and
# 169.254.169.254 on its lo; the host routes 198.18.1.0/24 and
# 169.254.169.254/32 into the veth, so that every address a test tries (also
# one a broken block would let through) ends on this machine. Inside runs
# e2e/testworld (built here with the project's Go): DNS, HTTP, TLS, an SSH
# banner and UDP echo on every world address, control on 198.18.0.2:8080.
# Nothing else of the host changes (no sysctl, cgroup or other route).
#
# Overlapping test runs: each run holds a shared flock on $LOCK for its
# whole duration (scripts/test.sh); `down` removes the world only when it
# gets that lock exclusively without waiting. `up` and `down` themselves
# are serialised by $SETUP_LOCK.
set -euo pipefail

readonly NS=sbxworld HOST_IF=sbxw0 WORLD_IF=sbxw1
readonly HOST_IP=198.18.0.1 WORLD_IP=198.18.0.2
readonly EXTRA_IPS=(198.18.1.10 198.18.1.11 198.18.1.12 169.254.169.254)
readonly ROUTES=(198.18.1.0/24 169.254.169.254/32)
readonly RUN_DIR=/run/sandbox-testworld
readonly LOCK=/run/sandbox-testworld.lock
readonly SETUP_LOCK=/run/sandbox-testworld.setup.lock
readonly CONTROL="http://$WORLD_IP:8080"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf 'testworld.sh: %s\n' "$*"; }
die() { printf 'testworld.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || die "run as root"
if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

# answers: the world's control server answers (2 s bound).
answers() {
	ip netns exec "$NS" true 2>/dev/null || return 1
	[[ "$(curl -fsS --max-time 2 "$CONTROL/ping" 2>/dev/null)" == world ]]
}

# source_sum: what a server is built from ($RUN_DIR/source holds the
# running one's).
source_sum() { cat "$root"/e2e/testworld/*.go | sha256sum | cut -d' ' -f1; }

# server_pid: the world server (the process $RUN_DIR/pid names, or one in
# the namespace running $RUN_DIR/testworld), if it runs; other processes
# in the namespace (a benchmark's servers) are not ours to stop.
server_pid() {
	local pid
	for pid in $(cat "$RUN_DIR/pid" 2>/dev/null) $(ip netns pids "$NS" 2>/dev/null); do
		if [[ "$pid" =~ ^[0-9]+$ && "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$RUN_DIR/testworld"* ]]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

stop_server() {
	local pid i
	pid="$(server_pid)" || return 0
	kill "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$RUN_DIR/pid"
}

up() {
	command -v ip >/dev/null || die "ip (package iproute2) not found"
	command -v curl >/dev/null || die "curl not found"
	local sum
	sum="$(source_sum)"
	if answers; then
		# Not restarted under overlapping runs: `down` after the last one
		# removes it, and the next `up` builds the new one.
		if [[ "$(cat "$RUN_DIR/source" 2>/dev/null)" != "$sum" ]]; then
			say "WARNING: the running world was built from another e2e/testworld; it is kept while test runs hold it (then: $0 down; $0 up)"
		fi
		say "the world is up ($CONTROL)"
		return 0
	fi
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	install -d -m 0755 "$RUN_DIR"
	say "building e2e/testworld"
	(cd "$root" && GOFLAGS=-mod=mod go build -o "$RUN_DIR/testworld.new" ./e2e/testworld) || die "building e2e/testworld failed"
	mv -f "$RUN_DIR/testworld.new" "$RUN_DIR/testworld"

	ip netns list | grep -qw "^$NS" || ip netns add "$NS"
	if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
		ip link add "$HOST_IF" type veth peer name "$WORLD_IF" netns "$NS"
	fi
	ip addr replace "$HOST_IP/24" dev "$HOST_IF"
	ip link set "$HOST_IF" up
	ip -n "$NS" link set lo up
	ip -n "$NS" addr replace "$WORLD_IP/24" dev "$WORLD_IF"
	ip -n "$NS" link set "$WORLD_IF" up
	local a r
	for a in "${EXTRA_IPS[@]}"; do
		ip -n "$NS" addr replace "$a/32" dev lo
	done
	for r in "${ROUTES[@]}"; do
		ip route replace "$r" via "$WORLD_IP" dev "$HOST_IF"
	done

	stop_server # one that does not answer
	local IFS=,
	local addrs="$WORLD_IP,${EXTRA_IPS[*]}"
	unset IFS
	# The server keeps no descriptor of ours: an inherited lock would hold
	# $SETUP_LOCK or a test run's shared $LOCK for as long as it runs.
	(
		for f in /proc/self/fd/*; do
			f="${f##*/}"
			if [[ "$f" -gt 2 ]]; then eval "exec $f>&-" 2>/dev/null || true; fi
		done
		exec ip netns exec "$NS" setsid "$RUN_DIR/testworld" -addrs "$addrs" -control "$WORLD_IP:8080" \
			</dev/null >"$RUN_DIR/testworld.log" 2>&1
	) &
	local spid="$!" i
	echo "$spid" >"$RUN_DIR/pid" # ip netns exec and setsid exec: the same process
	echo "$sum" >"$RUN_DIR/source"
	for i in $(seq 100); do
		if ! kill -0 "$spid" 2>/dev/null; then
			tail -n 20 "$RUN_DIR/testworld.log" >&2 || true
			die "the world's server exited"
		fi
		if answers; then
			say "the world is up ($CONTROL, log $RUN_DIR/testworld.log)"
			return 0
		fi
		sleep 0.1
	done
	tail -n 20 "$RUN_DIR/testworld.log" >&2 || true
	die "the world's server did not answer on $CONTROL within 10 s"
}

down() {
	local r
	stop_server
	for r in "${ROUTES[@]}"; do
		ip route del "$r" via "$WORLD_IP" dev "$HOST_IF" 2>/dev/null || true
	done
	ip link del "$HOST_IF" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	say "the world is down"
}

cmd="${1:-}"
case "$cmd" in up | down) ;; *) die "usage: $0 up|down" ;; esac

exec {setup_fd}>>"$SETUP_LOCK"
flock -w 120 "$setup_fd" || die "could not take $SETUP_LOCK within 120 s"
case "$cmd" in
up) up ;;
down)
	exec {lock_fd}>>"$LOCK"
	if flock -n -x "$lock_fd"; then
		down
	else
		say "still in use by another test run: left up"
	fi
	;;
esac
