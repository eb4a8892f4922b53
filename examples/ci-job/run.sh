#!/usr/bin/env bash
# A CI job in two sandboxes (examples/ci-job/README.md):
#   1. fetch:          network on; downloads the dependencies into the project
#   2. build and test: --net=none, --memory/--pids/--cpus; writes only the project
#
#   examples/ci-job/run.sh        # sandbox on PATH, or SANDBOX=/path/to/sandbox
#
# Environment:
#   SANDBOX         the sandbox binary (default: `sandbox` on PATH)
#   WORKDIR         where the job's copy of the project goes (default: a new
#                   directory under ${TMPDIR:-/tmp}); it is kept for you to look at
#   REGISTRY_URL    base URL of the dependency registry (a real job sets this);
#                   unset: a stand-in registry on the host's 127.0.0.1, reached
#                   from the fetch step as host.sandbox.internal
#   SANDBOX_LIMITS  best-effort (default): run without a limit the host cannot
#                   apply, with one warning each; strict: fail instead (exit 125)
# The sh -c scripts in single quotes expand inside the sandbox.
# shellcheck disable=SC2016
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/lib.sh
. "$here/../lib.sh"
limits_mode="${SANDBOX_LIMITS:-best-effort}"
need tar curl cc make

work="$(workdir "${TMPDIR:-/tmp}" ci-job)"
rm -rf "$work/project"
cp -R "$here/project" "$work/project"
echo "work directory: $work"

fetch_flags=()
if [[ -z "${REGISTRY_URL:-}" ]]; then
	# Stand-in registry: the dependency's tarball served by python's
	# http.server on the host's 127.0.0.1 (port chosen by the kernel).
	need python3
	say "stand-in registry on 127.0.0.1"
	mkdir -p "$work/registry"
	tar -czf "$work/registry/greet-1.0.tar.gz" -C "$here" greet-1.0
	python3 -u -m http.server --bind 127.0.0.1 --directory "$work/registry" 0 >"$work/registry.log" 2>&1 &
	server=$!
	trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
	wait_until "$server" grep -q '^Serving HTTP on 127\.0\.0\.1 port ' "$work/registry.log" ||
		die "the stand-in registry did not start: $(cat "$work/registry.log")"
	port="$(sed -n 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$work/registry.log")"
	echo "serving $work/registry on 127.0.0.1:$port"
	# Inside, the host's 127.0.0.1 is host.sandbox.internal, and only with
	# --allow-host-loopback. A real registry needs neither.
	export REGISTRY_URL="http://host.sandbox.internal:$port"
	fetch_flags+=(--allow-host-loopback)
fi

cd "$work/project"

say "1. fetch (network on, REGISTRY_URL=$REGISTRY_URL)"
"$sandbox" run "${fetch_flags[@]}" --cwd=rw --env REGISTRY_URL -- ./fetch-deps.sh

say "2. build and test (--net=none --memory 512M --pids 64 --cpus 1 --limits=$limits_mode)"
# The limits probe at the end only shows that --pids holds; a real job
# stops after `make test`.
"$sandbox" run --net=none --cwd=rw --memory 512M --pids 64 --cpus 1 --limits="$limits_mode" \
	--env REGISTRY_URL -- sh -c '
set -e
make
make test
echo "--- network in this step"
echo "interfaces:" $(ls /sys/class/net)
if out="$(curl -sS --max-time 5 -o /dev/null "$REGISTRY_URL/" 2>&1)"; then
	echo "network: the registry is REACHABLE"
	exit 1
fi
echo "network: unreachable ($out)"
echo "--- limits probe: start 100 sleeping processes"
(
	i=0
	while [ "$i" -lt 100 ]; do
		sleep 60 &
		i=$((i + 1))
	done
) 2>/dev/null || true
n=0
pids=""
for p in /proc/[0-9]*; do
	p="${p#/proc/}"
	if [ "$p" != 1 ] && [ "$p" != "$$" ]; then
		n=$((n + 1))
		pids="$pids $p"
	fi
done
kill -9 $pids 2>/dev/null || true
if [ "$n" -lt 100 ]; then
	echo "limits probe: $n of 100 started: the pids limit holds"
else
	echo "limits probe: $n of 100 started: no pids limit in force"
fi
'

say "3. results on the host"
ls -l hello test-report.txt
./hello CI
