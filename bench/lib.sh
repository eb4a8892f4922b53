# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts share; sourced (never run) from
# the script's own directory, so a script that re-runs itself from a stage
# copies this file there too (bench_stage_script).
#
# bench_say_fd (set before sourcing; default 1) is where say writes.

readonly TEST_USER=sbxtest
readonly USER_PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'bench: %s\n' "$*" >&"${bench_say_fd:-1}"; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# bench_test_user: as root, check that the test user exists and set home
# to its home directory.
bench_test_user() {
	id -u "$TEST_USER" >/dev/null 2>&1 || die "no user $TEST_USER: run scripts/setup-host.sh first"
	home="$(getent passwd "$TEST_USER" | cut -d: -f6)"
}

# bench_out_dir PREFIX: out (--out DIR, or a new /tmp/PREFIX.XXXXXX) made
# and absolute.
bench_out_dir() {
	out="${out:-$(mktemp -d "/tmp/$1.XXXXXX")}"
	mkdir -p "$out"
	out="$(cd "$out" && pwd)"
}

# bench_stage_script STAGE NAME: copy the script NAME and this file into
# STAGE (the re-run sources lib.sh from there).
bench_stage_script() {
	local dir
	dir="$(dirname "${BASH_SOURCE[0]}")" # this file's, the scripts' own
	install -m 0755 "$dir/$2" "$1/$2"
	install -m 0644 "$dir/lib.sh" "$1/lib.sh"
}

# bench_stage_out STAGE: STAGE/out, the test user's to write the results.
bench_stage_out() {
	install -d -o "$TEST_USER" -g "$(id -g "$TEST_USER")" -m 0755 "$1/out"
}

# bench_as_user CMD...: run CMD as the test user with a clean environment
# (HOME, USER, LOGNAME, PATH=USER_PATH; further VAR=VALUE words may lead
# CMD, as env takes them).
bench_as_user() {
	say "running as root: re-running as $TEST_USER"
	runuser -u "$TEST_USER" -- env -i HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" \
		PATH="$USER_PATH" "$@"
}

# bench_collect STAGE: the results from STAGE/out into out, owned by the
# caller (root).
bench_collect() {
	cp -r "$1/out/." "$out/"
	chown -R "$(id -u):$(id -g)" "$out"
	say "results in $out"
}
