#!/usr/bin/env bash
# Start-up benchmark: `sandbox run -- true` against bwrap, unshare, podman and
# crun, side by side in one hyperfine run, as an unprivileged user.
#
#   bench/startup.sh [--out DIR] [--runs N] [--warmup N]
#
# As root it re-runs itself as the test user sbxtest (see scripts/setup-host.sh).
# SANDBOX_BIN defaults to the repository's bin/sandbox (scripts/build.sh).
# Results (hyperfine JSON and Markdown, the ratio table, the environment) go to
# DIR, or to a new temporary directory.
set -euo pipefail

readonly TEST_USER=sbxtest
readonly USER_PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
readonly PODMAN_IMAGE=localhost/sandbox-bench-busybox:latest

say() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
	cat <<'EOF'
usage: bench/startup.sh [--out DIR] [--runs N] [--warmup N]

Measures the start-up time of `sandbox run -- true` (and variants) next to
bwrap, unshare, podman and crun with hyperfine, then prints median, mean ± σ
and each median's ratio to bwrap's median.

  --out DIR    write startup.json, startup.md, summary.md, env.txt to DIR
               (default: a new temporary directory)
  --runs N     runs per command (default 30)
  --warmup N   warm-up runs per command (default 5)

Environment: SANDBOX_BIN (default: <repo>/bin/sandbox).
EOF
}

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"

out=""
runs=30
warmup=5
while [[ $# -gt 0 ]]; do
	case "$1" in
	--out) [[ $# -ge 2 ]] || die "--out needs a directory"; out="$2"; shift 2 ;;
	--out=*) out="${1#--out=}"; shift ;;
	--runs) [[ $# -ge 2 ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
	--runs=*) runs="${1#--runs=}"; shift ;;
	--warmup) [[ $# -ge 2 ]] || die "--warmup needs a number"; warmup="$2"; shift 2 ;;
	--warmup=*) warmup="${1#--warmup=}"; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 2 ]] || die "--runs must be a number >= 2"
[[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup must be a number"
if [[ "$runs" -lt 30 ]]; then
	say "note: --runs $runs is below the usual 30: fine for a smoke test, not for numbers"
fi

# BENCH_SKIP_SANDBOX=1 leaves the sandbox's own lines out (to try the anchors
# alone while there is no binary); by default they are measured.
skip_sandbox="${BENCH_SKIP_SANDBOX:-0}"
SANDBOX_BIN="${SANDBOX_BIN:-$repo/bin/sandbox}"
if [[ "$skip_sandbox" != 1 ]]; then
	[[ -f "$SANDBOX_BIN" && -x "$SANDBOX_BIN" ]] ||
		die "SANDBOX_BIN=$SANDBOX_BIN is missing or not executable (build it: scripts/build.sh)"
	SANDBOX_BIN="$(cd "$(dirname "$SANDBOX_BIN")" && pwd)/$(basename "$SANDBOX_BIN")"
fi

if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

# build_ratios DEST: the table printer (std lib only).
build_ratios() {
	(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$1" ./bench/cmd/ratios) ||
		die "could not build bench/cmd/ratios"
}

# ------------------------------------------------------ as root: re-run as sbxtest
if [[ "$(id -u)" -eq 0 ]]; then
	id -u "$TEST_USER" >/dev/null 2>&1 || die "no user $TEST_USER: run scripts/setup-host.sh first"
	home="$(getent passwd "$TEST_USER" | cut -d: -f6)"
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	out="${out:-$(mktemp -d /tmp/sandbox-bench-results.XXXXXX)}"
	mkdir -p "$out"
	out="$(cd "$out" && pwd)"

	# Everything the test user needs goes into a stage it can read, so the
	# checkout's own permissions do not matter.
	stage="$(mktemp -d /tmp/sandbox-bench-stage.XXXXXX)"
	trap 'rm -rf "$stage"' EXIT
	chmod 0755 "$stage"
	build_ratios "$stage/ratios"
	cp "$bench_dir/startup.sh" "$stage/startup.sh"
	stage_bin=""
	if [[ "$skip_sandbox" != 1 ]]; then
		cp "$SANDBOX_BIN" "$stage/sandbox"
		stage_bin="$stage/sandbox"
	fi
	install -d -o "$TEST_USER" -g "$(id -g "$TEST_USER")" -m 0755 "$stage/out"

	say "running as root: re-running as $TEST_USER"
	if runuser -u "$TEST_USER" -- env -i HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" \
		PATH="$USER_PATH" SANDBOX_BIN="$stage_bin" BENCH_SKIP_SANDBOX="$skip_sandbox" \
		BENCH_RATIOS_BIN="$stage/ratios" BENCH_SANDBOX_LABEL="$SANDBOX_BIN" \
		bash "$stage/startup.sh" --out "$stage/out" --runs "$runs" --warmup "$warmup" </dev/null; then
		rc=0
	else
		rc=$?
	fi
	cp -r "$stage/out/." "$out/"
	chown -R "$(id -u):$(id -g)" "$out"
	say "results in $out"
	exit "$rc"
fi

# ------------------------------------------------------ as the unprivileged user
command -v hyperfine >/dev/null || die "hyperfine not found (run scripts/setup-host.sh as root)"
command -v bwrap >/dev/null || die "bwrap not found (run scripts/setup-host.sh as root)"

out="${out:-$(mktemp -d /tmp/sandbox-bench-results.XXXXXX)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d /tmp/sandbox-bench-work.XXXXXX)"
trap 'rm -rf "$work"' EXIT

ratios="${BENCH_RATIOS_BIN:-}"
if [[ -z "$ratios" ]]; then
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	ratios="$work/ratios"
	build_ratios "$ratios"
fi

# Commands start in an ordinary directory, as a user's project would be.
mkdir -p "$work/project"
cd "$work/project"

names=()
cmds=()
skipped=()

# try CMD: run the command once; its stderr goes to $work/try.err.
try() {
	timeout 60 bash -c "$1" </dev/null >/dev/null 2>"$work/try.err"
}
first_err() { head -n 3 "$work/try.err" | tr '\n' ' ' | sed 's/ *$//'; }

# add NAME CMD REQUIRED: keep the command if one trial run succeeds.
add() {
	local name="$1" cmd="$2" required="$3"
	if try "$cmd"; then
		names+=("$name")
		cmds+=("$cmd")
		if [[ -s "$work/try.err" ]]; then
			say "note: '$name' wrote to stderr: $(first_err)"
		fi
	elif [[ "$required" == 1 ]]; then
		die "'$name' failed: $(first_err)"
	else
		skip "$name" "trial run failed: $(first_err)"
	fi
}
skip() {
	skipped+=("$1: $2")
	say "skipping $1: $2"
}

if [[ "$skip_sandbox" != 1 ]]; then
	q="$(printf '%q' "$SANDBOX_BIN")"
	add "sandbox run -- true" "$q run -- true" 1
	add "sandbox run --read-only -- true" "$q run --read-only -- true" 1
	add "sandbox run --map=single -- true" "$q run --map=single -- true" 1
	# The default confinement (seccomp filter, bounded capabilities,
	# no_new_privs, keyring) against none of it: its start-up cost.
	add "sandbox run --seccomp=unconfined --cap-add ALL -- true" "$q run --seccomp=unconfined --cap-add ALL -- true" 1
	add "sandbox run --landlock -- true" "$q run --landlock -- true" 1
else
	skip "sandbox" "BENCH_SKIP_SANDBOX=1"
fi
add "bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true" \
	"bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true" 1
add "unshare -Urmpf true" "unshare -Urmpf true" 0

# A static busybox root with /bin/true, for podman and crun (no network needed).
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
	if [[ -x "$b" ]]; then
		busybox="$b"
		break
	fi
done
make_busybox_root() { # DIR
	mkdir -p "$1/bin"
	cp "$busybox" "$1/bin/busybox"
	ln -s busybox "$1/bin/true"
	ln -s busybox "$1/bin/sh"
}

# podman: only with a local image, made here from busybox-static.
if ! command -v podman >/dev/null; then
	skip "podman" "not installed"
elif podman image exists "$PODMAN_IMAGE" 2>/dev/null; then
	add "podman run (local busybox image)" "podman run --rm --net=none $PODMAN_IMAGE true" 0
elif [[ -z "$busybox" ]]; then
	skip "podman" "no local image and no busybox (busybox-static) to make one"
else
	make_busybox_root "$work/podman-root"
	tar -C "$work/podman-root" -cf "$work/podman-root.tar" .
	if podman import "$work/podman-root.tar" "$PODMAN_IMAGE" >/dev/null 2>"$work/try.err"; then
		say "made local podman image $PODMAN_IMAGE from $busybox"
		add "podman run (local busybox image)" "podman run --rm --net=none $PODMAN_IMAGE true" 0
	else
		skip "podman" "podman import failed: $(first_err)"
	fi
fi

# crun: a rootless OCI bundle of busybox; kept only if two runs in a row work
# (the container must be gone after each run for hyperfine to repeat it).
if ! command -v crun >/dev/null; then
	skip "crun" "not installed"
elif [[ -z "$busybox" ]]; then
	skip "crun" "no busybox (busybox-static) for a root file system"
else
	bundle="$work/crun-bundle"
	mkdir -p "$bundle"
	make_busybox_root "$bundle/rootfs"
	if (cd "$bundle" && crun spec --rootless) 2>"$work/try.err"; then
		sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"true"/; s/"sh",$/"true",/' "$bundle/config.json"
		crun_cmd="crun --root $work/crun-state run --bundle $bundle sandbox-bench-$$"
		if try "$crun_cmd" && try "$crun_cmd"; then
			names+=("crun run (busybox bundle)")
			cmds+=("$crun_cmd")
		else
			skip "crun" "trial run failed: $(first_err)"
		fi
	else
		skip "crun" "crun spec failed: $(first_err)"
	fi
fi

# ------------------------------------------------------ environment
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel: $(uname -srm)"
	echo "cpus: $(nproc)"
	echo "user: $(id -un) ($(id -u))"
	echo "subuid: $(grep -E "^($(id -un)|$(id -u)):" /etc/subuid 2>/dev/null | tr '\n' ' ')"
	if [[ "$skip_sandbox" != 1 ]]; then
		echo "sandbox: ${BENCH_SANDBOX_LABEL:-$SANDBOX_BIN} ($("$SANDBOX_BIN" version 2>/dev/null | head -n 1 || echo '?'))"
	fi
	echo "hyperfine: $(hyperfine --version 2>/dev/null)"
	echo "bwrap: $(bwrap --version 2>/dev/null)"
	echo "unshare: $(unshare --version 2>/dev/null)"
	if command -v podman >/dev/null; then echo "podman: $(podman --version 2>/dev/null)"; fi
	if command -v crun >/dev/null; then echo "crun: $(crun --version 2>/dev/null | head -n 1)"; fi
	echo "runs: $runs, warmup: $warmup"
	for s in "${skipped[@]}"; do echo "skipped: $s"; done
} >"$out/env.txt"
cat "$out/env.txt"

# ------------------------------------------------------ measure
hf_args=()
for i in "${!cmds[@]}"; do
	hf_args+=(--command-name "${names[$i]}" "${cmds[$i]}")
done
say "hyperfine: ${#cmds[@]} commands, $warmup warm-up + $runs runs each"
hyperfine -N --warmup "$warmup" --runs "$runs" \
	--export-json "$out/startup.json" --export-markdown "$out/startup.md" \
	"${hf_args[@]}" </dev/null

echo
"$ratios" -json "$out/startup.json" -baseline bwrap -md "$out/summary.md" | tee "$out/summary.txt"
if [[ -z "${BENCH_RATIOS_BIN:-}" ]]; then # not when root re-ran us: it says where
	echo
	say "results in $out"
fi
