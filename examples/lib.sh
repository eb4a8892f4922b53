# shellcheck shell=bash
# Sourced by examples/*/run.sh: what the examples share. Sets $sandbox,
# the binary to run ($SANDBOX, else `sandbox` on PATH).

say() { printf '\n== %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }

# need TOOL...: each is on PATH, or stop naming it.
need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || die "$tool not found (scripts/setup-host.sh lists the Debian packages)"
	done
}

# workdir PARENT NAME: print $WORKDIR, or a new PARENT/sandbox-NAME.XXXXXX,
# created and made absolute.
workdir() {
	local w="${WORKDIR:-$(mktemp -d "$1/sandbox-$2.XXXXXX")}"
	mkdir -p "$w" && (cd "$w" && pwd -P)
}

# wait_until PID CMD...: poll CMD for up to 10 s while process PID lives;
# status 1 if CMD never succeeded.
wait_until() {
	local pid="$1" i
	shift
	for ((i = 0; i < 100; i++)); do
		"$@" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	"$@"
}

sandbox="${SANDBOX:-sandbox}"
command -v "$sandbox" >/dev/null ||
	die "$sandbox not found: put sandbox on PATH or set SANDBOX=/path/to/sandbox"
