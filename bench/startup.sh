#!/usr/bin/env bash
# Start-up benchmark: `sandbox run -- true` against bwrap, unshare, podman,
# crun and runc (and sandbox-oci, the OCI runtime, beside them), side by side
# in one run of hyperfine rounds, as an unprivileged user; with a base
# binary (--base REV or SANDBOX_BASE_BIN), every sandbox line twice, base and
# new, in the same run. Then the resident memory of the sandbox's own processes.
#
#   bench/startup.sh [--out DIR] [--runs N] [--warmup N] [--rounds N] [--base REV]
#
# As root it re-runs itself as the test user sbxtest (see scripts/setup-host.sh).
# SANDBOX_BIN defaults to the repository's bin/sandbox (scripts/build.sh).
# Results (hyperfine JSON and Markdown, the ratio table, the memory table, the
# environment) go to DIR, or to a new temporary directory.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

readonly PODMAN_IMAGE=localhost/sandbox-bench-busybox:latest
# GNU time (Debian package time), for each line's page faults.
readonly GNU_TIME=/usr/bin/time

usage() {
	cat <<'EOF'
usage: bench/startup.sh [--out DIR] [--runs N] [--warmup N] [--rounds N] [--base REV]

Measures the start-up time of `sandbox run -- true` (and variants, and a
user's first run, with no holder),
`sandbox version`, `sandbox exec NAME -- true` and `sandbox ps` next to bwrap,
unshare, an empty static Go program, podman, crun, runc and sandbox-oci with hyperfine, then
prints median, mean ± σ and each median's ratio to bwrap's median; then the
RSS of the sandbox's supervisor and init while the payload sleeps (and its
anonymous part, what each further sandbox adds).

  --out DIR    write startup.json, startup-rN.json, startup-first-rN.json,
               summary.md, memory.md,
               memory.json, env.txt to DIR (default: a new temporary directory)
  --runs N     runs per command (default 30), split over the rounds
  --warmup N   warm-up runs per command and round (default 5)
  --rounds N   hyperfine runs of every command, one after another, each in
               the other order than the one before (default 3): a machine
               whose speed drifts moves every line alike
  --base REV   also measure the binary built (scripts/build.sh) from git
               revision REV of this repository, side by side in the same run

Environment: SANDBOX_BIN (default: <repo>/bin/sandbox); SANDBOX_BASE_BIN (a
base binary instead of --base).
EOF
}

out=""
runs=30
warmup=5
rounds=3
base_rev=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--out) [[ $# -ge 2 ]] || die "--out needs a directory"; out="$2"; shift 2 ;;
	--out=*) out="${1#--out=}"; shift ;;
	--runs) [[ $# -ge 2 ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
	--runs=*) runs="${1#--runs=}"; shift ;;
	--warmup) [[ $# -ge 2 ]] || die "--warmup needs a number"; warmup="$2"; shift 2 ;;
	--warmup=*) warmup="${1#--warmup=}"; shift ;;
	--rounds) [[ $# -ge 2 ]] || die "--rounds needs a number"; rounds="$2"; shift 2 ;;
	--rounds=*) rounds="${1#--rounds=}"; shift ;;
	--base) [[ $# -ge 2 ]] || die "--base needs a git revision"; base_rev="$2"; shift 2 ;;
	--base=*) base_rev="${1#--base=}"; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 2 ]] || die "--runs must be a number >= 2"
[[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup must be a number"
[[ "$rounds" =~ ^[0-9]+$ && "$rounds" -ge 1 && "$rounds" -le 20 && "$rounds" -le "$runs" ]] ||
	die "--rounds must be a number from 1 to 20, and at most --runs"
[[ -z "$base_rev" || -z "${SANDBOX_BASE_BIN:-}" ]] || die "give --base or SANDBOX_BASE_BIN, not both"
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
SANDBOX_BASE_BIN="${SANDBOX_BASE_BIN:-}"
if [[ -n "$SANDBOX_BASE_BIN" ]]; then
	[[ "$skip_sandbox" != 1 ]] || die "SANDBOX_BASE_BIN with BENCH_SKIP_SANDBOX=1 makes no sense"
	[[ -f "$SANDBOX_BASE_BIN" && -x "$SANDBOX_BASE_BIN" ]] ||
		die "SANDBOX_BASE_BIN=$SANDBOX_BASE_BIN is missing or not executable"
	SANDBOX_BASE_BIN="$(cd "$(dirname "$SANDBOX_BASE_BIN")" && pwd)/$(basename "$SANDBOX_BASE_BIN")"
fi

if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

# build_tools DIR: the table printer and the memory sampler (std lib only)
# into DIR/ratios and DIR/memrss.
build_tools() {
	(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$1/ratios" ./bench/cmd/ratios) ||
		die "could not build bench/cmd/ratios"
	(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$1/memrss" ./bench/cmd/memrss) ||
		die "could not build bench/cmd/memrss"
}

# build_floor DEST: an empty static Go program (CGO_ENABLED=0, stripped as
# bin/sandbox is), the floor of any Go binary's start.
build_floor() {
	local src
	src="$(mktemp -d /tmp/sandbox-bench-floor.XXXXXX)"
	printf 'module floor\n\ngo 1.21\n' >"$src/go.mod"
	printf 'package main\n\nfunc main() {}\n' >"$src/main.go"
	if ! (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 \
		go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$1" .); then
		rm -rf "$src"
		die "could not build the empty Go program"
	fi
	rm -rf "$src"
}

# build_base REV DEST: bin/sandbox of git revision REV (scripts/build.sh in a
# temporary worktree, removed after).
build_base() {
	local rev="$1" dest="$2" tmp short rc=0
	short="$(git -C "$repo" rev-parse --short "$rev^{commit}" 2>/dev/null)" ||
		die "--base $rev: not a revision of $repo"
	tmp="$(mktemp -d /tmp/sandbox-bench-base.XXXXXX)"
	base_worktree="$tmp/src"
	say "building the base binary of $rev ($short) in $base_worktree"
	git -C "$repo" worktree add --quiet --detach "$base_worktree" "$short" || die "git worktree add $short failed"
	(cd "$base_worktree" && SANDBOX_VERSION="base-$short" bash scripts/build.sh) && cp "$base_worktree/bin/sandbox" "$dest" || rc=$?
	remove_base_worktree
	[[ "$rc" -eq 0 ]] || die "building $rev ($short) failed"
	base_label="$rev ($short)"
}
base_worktree=""
base_label=""
remove_base_worktree() {
	if [[ -n "$base_worktree" ]]; then
		git -C "$repo" worktree remove --force "$base_worktree" 2>/dev/null || true
		rm -rf "$(dirname "$base_worktree")" # the mktemp directory around it
		git -C "$repo" worktree prune 2>/dev/null || true
		base_worktree=""
	fi
}

# ------------------------------------------------------ as root: re-run as sbxtest
if [[ "$(id -u)" -eq 0 ]]; then
	bench_test_user
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	bench_out_dir sandbox-bench-results

	# Everything the test user needs goes into a stage it can read, so the
	# checkout's own permissions do not matter.
	stage="$(mktemp -d /tmp/sandbox-bench-stage.XXXXXX)"
	trap 'remove_base_worktree; rm -rf "$stage"' EXIT
	trap 'exit 130' INT TERM
	chmod 0755 "$stage"
	build_tools "$stage"
	build_floor "$stage/floor"
	bench_stage_script "$stage" startup.sh
	stage_bin=""
	if [[ "$skip_sandbox" != 1 ]]; then
		cp "$SANDBOX_BIN" "$stage/sandbox"
		stage_bin="$stage/sandbox"
		# sandbox-oci, the OCI runtime, when it was built beside it.
		if [[ -x "$(dirname "$SANDBOX_BIN")/sandbox-oci" ]]; then
			cp "$(dirname "$SANDBOX_BIN")/sandbox-oci" "$stage/sandbox-oci"
		fi
	fi
	stage_base=""
	if [[ -n "$base_rev" ]]; then
		build_base "$base_rev" "$stage/sandbox-base"
		stage_base="$stage/sandbox-base"
	elif [[ -n "$SANDBOX_BASE_BIN" ]]; then
		cp "$SANDBOX_BASE_BIN" "$stage/sandbox-base"
		stage_base="$stage/sandbox-base"
		base_label="$SANDBOX_BASE_BIN"
	fi
	chmod -R a+rX "$stage"
	bench_stage_out "$stage"

	if bench_as_user SANDBOX_BIN="$stage_bin" BENCH_SKIP_SANDBOX="$skip_sandbox" \
		SANDBOX_BASE_BIN="$stage_base" BENCH_BASE_LABEL="$base_label" \
		BENCH_TOOLS_DIR="$stage" BENCH_FLOOR_BIN="$stage/floor" BENCH_SANDBOX_LABEL="$SANDBOX_BIN" \
		bash "$stage/startup.sh" --out "$stage/out" --runs "$runs" --warmup "$warmup" --rounds "$rounds" </dev/null; then
		rc=0
	else
		rc=$?
	fi
	bench_collect "$stage"
	exit "$rc"
fi

# ------------------------------------------------------ as the unprivileged user
command -v hyperfine >/dev/null || die "hyperfine not found (run scripts/setup-host.sh as root)"
command -v bwrap >/dev/null || die "bwrap not found (run scripts/setup-host.sh as root)"
[[ -x "$GNU_TIME" ]] || die "$GNU_TIME not found (Debian package time; run scripts/setup-host.sh as root)"

bench_out_dir sandbox-bench-results
work="$(mktemp -d /tmp/sandbox-bench-work.XXXXXX)"

# Detached sandboxes this run started ("BIN NAME" each) and background
# processes: stopped, removed and killed on any exit.
detached=()
bg_pids=()
cleanup() {
	local d bin name pid
	for d in "${detached[@]}"; do
		bin="${d%% *}"
		name="${d#* }"
		pid="$(timeout 10 "$bin" ps --json 2>/dev/null | timeout 5 "$memrss" pid -name "$name" 2>/dev/null || true)"
		timeout 20 "$bin" stop --time 2s "$name" >/dev/null 2>&1 || true
		# A supervisor that outlived stop (its sandbox wedged) is killed; its
		# command line names the sandbox, so a reused pid is not hit.
		if [[ -n "$pid" ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$name"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		timeout 10 "$bin" rm "$name" >/dev/null 2>&1 || true
	done
	detached=()
	for pid in "${bg_pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	bg_pids=()
	remove_base_worktree
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tools="${BENCH_TOOLS_DIR:-}"
if [[ -z "$tools" ]]; then
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	tools="$work"
	build_tools "$tools"
fi
ratios="$tools/ratios"
memrss="$tools/memrss"
floor="${BENCH_FLOOR_BIN:-}"
if [[ -z "$floor" ]]; then
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	floor="$work/floor"
	build_floor "$floor"
fi
base_label="${BENCH_BASE_LABEL:-}"
if [[ -n "$base_rev" ]]; then
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	build_base "$base_rev" "$work/sandbox-base"
	SANDBOX_BASE_BIN="$work/sandbox-base"
elif [[ -n "$SANDBOX_BASE_BIN" && -z "$base_label" ]]; then
	base_label="$SANDBOX_BASE_BIN"
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

# start_detached BIN NAME: a detached sandbox whose payload sleeps (at most
# 1800 s, well beyond any hyperfine run here), for exec and ps; cleanup stops
# and removes it.
start_detached() {
	detached+=("$1 $2")
	timeout 60 "$1" run -d --name "$2" --net=none -- sleep 1800 </dev/null >/dev/null 2>"$work/try.err"
}

# add_sandbox ARGS: the line `sandbox ARGS` with the new binary (required)
# and, when there is one, `sandbox@base ARGS` with the base binary right after
# it (skipped with the reason when its trial fails: an older binary may lack a
# flag). NAME in ARGS is the detached sandbox of each binary.
add_sandbox() {
	local args="$1"
	add "sandbox $args" "$qn ${args//NAME/$exec_name}" 1
	if [[ -n "$SANDBOX_BASE_BIN" ]]; then
		if [[ "$args" == *NAME* && -z "$base_exec_name" ]]; then
			skip "sandbox@base $args" "the base binary's detached sandbox did not start"
			return
		fi
		add "sandbox@base $args" "$qb ${args//NAME/$base_exec_name}" 0
	fi
}

exec_name=""
base_exec_name=""
if [[ "$skip_sandbox" != 1 ]]; then
	qn="$(printf '%q' "$SANDBOX_BIN")"
	qb="$(printf '%q' "$SANDBOX_BASE_BIN")"
	exec_name="bench-exec-$$"
	start_detached "$SANDBOX_BIN" "$exec_name" ||
		die "sandbox run -d --name $exec_name --net=none -- sleep 1800 failed: $(first_err)"
	if [[ -n "$SANDBOX_BASE_BIN" ]]; then
		if start_detached "$SANDBOX_BASE_BIN" "bench-exec-base-$$"; then
			base_exec_name="bench-exec-base-$$"
		else
			say "note: the base binary's run -d failed: $(first_err)"
		fi
	fi
	# The issue's goal line: no network helper.
	add_sandbox "run --net=none -- true"
	# The default network (--net=auto: the first usable helper).
	add_sandbox "run -- true"
	add_sandbox "run --read-only -- true"
	add_sandbox "run --map=single -- true"
	# The default confinement (seccomp filter, bounded capabilities,
	# no_new_privs, keyring) against none of it: its start-up cost.
	add_sandbox "run --seccomp=unconfined --cap-add ALL -- true"
	add_sandbox "run --landlock -- true"
	# The CLI's own start, and the commands that talk to a running sandbox.
	add_sandbox "version"
	add_sandbox "exec NAME -- true"
	add_sandbox "ps"
else
	skip "sandbox" "BENCH_SKIP_SANDBOX=1"
fi
add "bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true" \
	"bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true" 1
add "unshare -Urmpf true" "unshare -Urmpf true" 0
add "empty static Go program" "$(printf '%q' "$floor")" 1

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

# OCI runtimes: a rootless bundle of busybox each, made by the runtime's own
# `spec --rootless`; kept only if two runs in a row work (the container must
# be gone after each run for hyperfine to repeat it). runc and crun are the
# anchors of sandbox-oci, sandbox's OCI runtime (docs/oci.md).
# oci_runtime NAME BIN: add "NAME run (busybox bundle)" when it works.
oci_runtime() {
	local name="$1" bin="$2" bundle="$work/$1-bundle" cmd
	if [[ -z "$bin" ]] || ! command -v "$bin" >/dev/null; then
		skip "$name" "not installed"
		return
	fi
	if [[ -z "$busybox" ]]; then
		skip "$name" "no busybox (busybox-static) for a root file system"
		return
	fi
	mkdir -p "$bundle"
	make_busybox_root "$bundle/rootfs"
	if ! (cd "$bundle" && "$bin" spec --rootless) 2>"$work/try.err"; then
		skip "$name" "$name spec failed: $(first_err)"
		return
	fi
	sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"true"/; s/"sh",$/"true",/' "$bundle/config.json"
	cmd="$bin --root $work/$name-state run --bundle $bundle sandbox-bench-$name-$$"
	if try "$cmd" && try "$cmd"; then
		names+=("$name run (busybox bundle)")
		cmds+=("$cmd")
	else
		skip "$name" "trial run failed: $(first_err)"
	fi
}
oci_runtime crun crun
oci_runtime runc runc
oci_bin=""
if [[ "$skip_sandbox" != 1 && -x "$(dirname "$SANDBOX_BIN")/sandbox-oci" ]]; then
	oci_bin="$(dirname "$SANDBOX_BIN")/sandbox-oci"
fi
oci_runtime sandbox-oci "$oci_bin"

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
	if [[ -n "$SANDBOX_BASE_BIN" ]]; then
		echo "sandbox@base: $base_label ($("$SANDBOX_BASE_BIN" version 2>/dev/null | head -n 1 || echo '?'))"
	fi
	echo "floor: empty static Go program ($(go version 2>/dev/null || echo 'go ?'))"
	echo "hyperfine: $(hyperfine --version 2>/dev/null)"
	echo "bwrap: $(bwrap --version 2>/dev/null)"
	echo "unshare: $(unshare --version 2>/dev/null)"
	if command -v podman >/dev/null; then echo "podman: $(podman --version 2>/dev/null)"; fi
	if command -v crun >/dev/null; then echo "crun: $(crun --version 2>/dev/null | head -n 1)"; fi
	if command -v runc >/dev/null; then echo "runc: $(runc --version 2>/dev/null | head -n 1)"; fi
	echo "runs: $runs in $rounds rounds ($(((runs + rounds - 1) / rounds)) each), warmup: $warmup a round"
	for s in "${skipped[@]}"; do echo "skipped: $s"; done
} >"$out/env.txt"
cat "$out/env.txt"

# A user's first run, which finds no holder (package holder): every run of
# one who runs a command now and then, more than its idle minute apart.
# Measured apart (hyperfine's --prepare ends the holder before each run, as
# its idle minute would: gone, and its socket with it), in a state
# directory of its own, in the same rounds, with the same names' prefix.
first_names=()
first_cmds=()
first_xdg="$work/xdg-first"
if [[ "$skip_sandbox" != 1 ]]; then
	mkdir -m 0700 "$first_xdg"
	cat >"$work/no-holder.sh" <<'EOS'
#!/usr/bin/env bash
# no-holder.sh XDG: no holder of this user's runs, and none is starting.
uid="$(id -u)"
pkill -KILL -x -U "$uid" sandbox-holder || true
for ((i = 0; i < 100; i++)); do
	pgrep -x -U "$uid" sandbox-holder >/dev/null || break
	sleep 0.02
done
rm -rf "$1/sandbox/.holder"
EOS
	first_names+=("sandbox run --net=none -- true, first run (no holder)")
	first_cmds+=("$qn run --net=none -- true")
	if [[ -n "$SANDBOX_BASE_BIN" ]]; then
		first_names+=("sandbox@base run --net=none -- true, first run (no holder)")
		first_cmds+=("$qb run --net=none -- true")
	fi
fi

# ------------------------------------------------------ measure
# In rounds: each runs every command its share of the runs, in the order
# the round before did not (hyperfine runs one command's runs in a row, and
# this machine's speed drifts by ±20 % over an hour: a line measured in one
# slow stretch moved by ±10 % against the others); ratios merges them.
round_runs=$(((runs + rounds - 1) / rounds))
# round_args R NAMES CMDS: hyperfine's arguments (hf_args) for round R:
# every command of the arrays named NAMES and CMDS, reversed in even rounds.
round_args() {
	local -n rn="$2" rc="$3"
	local i j
	hf_args=()
	for i in "${!rc[@]}"; do
		j=$i
		(($1 % 2 == 1)) || j=$((${#rc[@]} - 1 - i))
		hf_args+=(--command-name "${rn[$j]}" "${rc[$j]}")
	done
}
json_args=()
for ((r = 1; r <= rounds; r++)); do
	round_args "$r" names cmds
	say "hyperfine, round $r of $rounds: ${#cmds[@]} commands, $warmup warm-up + $round_runs runs each"
	hyperfine -N --warmup "$warmup" --runs "$round_runs" \
		--export-json "$out/startup-r$r.json" "${hf_args[@]}" </dev/null
	json_args+=(-json "$out/startup-r$r.json")
	if ((${#first_cmds[@]} > 0)); then
		round_args "$r" first_names first_cmds
		say "hyperfine, round $r of $rounds: ${#first_cmds[@]} first runs (no holder), 1 warm-up + $round_runs runs each"
		XDG_RUNTIME_DIR="$first_xdg" hyperfine -N --warmup 1 --runs "$round_runs" \
			--prepare "bash $(printf '%q' "$work/no-holder.sh") $(printf '%q' "$first_xdg")" \
			--export-json "$out/startup-first-r$r.json" "${hf_args[@]}" </dev/null
		json_args+=(-json "$out/startup-first-r$r.json")
	fi
done

echo
# The goals of issue 14: the new binary's line decides.
"$ratios" "${json_args[@]}" -merged "$out/startup.json" -baseline bwrap -md "$out/summary.md" \
	-goal "sandbox run --net=none -- true<=1.5x" -goal "sandbox run --net=none -- true<=1.0x" \
	-goal "sandbox run -- true<=2.0x" \
	-goal "sandbox exec NAME -- true<=10ms" -goal "sandbox ps<=10ms" | tee "$out/summary.txt"

# ------------------------------------------------------ page faults
# Minor page faults of each line, its own processes and those it waits for
# (GNU time's %R: the command's rusage with its reaped descendants; for
# `sandbox run`, the CLI, the stage, init and the payload; never the
# holder, nor a detached sandbox's init for exec), median of FAULT_RUNS,
# after the timing so they do not disturb it. On a machine where a page
# fault is dear (a guest with shadow paging: ~11.5 µs each on the CI
# machine) they are much of a run's CPU; see docs/architecture.md.
readonly FAULT_RUNS=11
faults_of() { # CMD: the median of FAULT_RUNS runs' minor faults, or "—"
	local i f vals=()
	for ((i = 0; i < FAULT_RUNS; i++)); do
		# eval: the line is a command line (quoted with printf %q), which
		# time runs itself, so that no shell's faults are counted.
		f="$(eval "timeout 60 $GNU_TIME -f %R -o $(printf '%q' "$work/faults") $1" </dev/null >/dev/null 2>&1 && tail -n 1 "$work/faults")" || true
		[[ "$f" =~ ^[0-9]+$ ]] && vals+=("$f")
	done
	if ((${#vals[@]} == 0)); then
		echo "—"
		return
	fi
	printf '%s\n' "${vals[@]}" | sort -n | sed -n "$(((${#vals[@]} + 1) / 2))p"
}
echo
say "page faults: $FAULT_RUNS runs of each command"
fault_names=()
fault_vals=()
bwrap_faults=""
for i in "${!cmds[@]}"; do
	fault_names+=("${names[$i]}")
	fault_vals+=("$(faults_of "${cmds[$i]}")")
	if [[ "${names[$i]}" == bwrap* ]]; then
		bwrap_faults="${fault_vals[-1]}"
	fi
done
{
	echo "| command | minor page faults (median of $FAULT_RUNS) | × bwrap |"
	echo "|:---|---:|---:|"
	for i in "${!fault_names[@]}"; do
		ratio="—"
		if [[ "${fault_vals[$i]}" =~ ^[0-9]+$ && "$bwrap_faults" =~ ^[0-9]+$ && "$bwrap_faults" -gt 0 ]]; then
			ratio="$(awk -v a="${fault_vals[$i]}" -v b="$bwrap_faults" 'BEGIN { printf "%.2f", a / b }')"
		fi
		echo "| \`${fault_names[$i]}\` | ${fault_vals[$i]} | $ratio |"
	done
} >"$out/faults.md"
cat "$out/faults.md"

# ------------------------------------------------------ memory
# RSS of the sandbox's own processes (supervisor, init; network helpers
# apart) while the payload sleeps, 3 samples each, after the timing so it
# does not disturb it.
readonly MEM_SAMPLES=3
# The detached sandboxes are sampled once more this long after their
# start: what a supervisor's idle loop makes grows its heap only over time.
readonly MEM_LATER_S=60
readonly SET_FG="foreground run --net=none -- sleep"
readonly SET_DET="detached run -d --net=none -- sleep"
readonly SET_EXEC="detached, after 25 × exec -- true"
readonly SET_LATER="detached, ${MEM_LATER_S} s after its start"
mem_err() { say "memory: $1: $(head -n 3 "$work/mem.err" | tr '\n' ' ')"; }

# wait_gone PID: wait (at most 10 s) for a background process to end, then
# kill it.
wait_gone() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# mem_fg TOOL CMD...: start CMD (its payload `sleep 30`) in the background,
# sample its tree once the payload runs, end the payload.
mem_fg() {
	local tool="$1" pid
	shift
	"$@" </dev/null >/dev/null 2>"$work/mem.err" &
	pid=$!
	bg_pids+=("$pid")
	"$memrss" sample -pid "$pid" -tool "$tool" -set "$SET_FG" -kill-payload >>"$out/memory.jsonl" 2>>"$work/mem.err" ||
		mem_err "$tool foreground sample failed"
	wait_gone "$pid"
}

# mem_detached TOOL BIN I: a detached sandbox, sampled, 25 execs, sampled
# again; left running for mem_later (in later, as "TOOL BIN NAME PID").
later=()
mem_detached() {
	local tool="$1" bin="$2" name="bench-mem-$$-$1-$3" pid j
	if ! start_detached "$bin" "$name" 2>"$work/mem.err"; then
		cp "$work/try.err" "$work/mem.err"
		mem_err "$tool run -d failed"
		return 0
	fi
	if ! pid="$(timeout 10 "$bin" ps --json 2>"$work/mem.err" | "$memrss" pid -name "$name" 2>>"$work/mem.err")"; then
		mem_err "$tool: no supervisor pid for $name"
		return 0
	fi
	"$memrss" sample -pid "$pid" -tool "$tool" -set "$SET_DET" >>"$out/memory.jsonl" 2>"$work/mem.err" ||
		mem_err "$tool detached sample failed"
	for ((j = 0; j < 25; j++)); do
		timeout 10 "$bin" exec "$name" -- true </dev/null >/dev/null 2>"$work/mem.err" || {
			mem_err "$tool exec $j failed"
			break
		}
	done
	"$memrss" sample -pid "$pid" -tool "$tool" -set "$SET_EXEC" >>"$out/memory.jsonl" 2>"$work/mem.err" ||
		mem_err "$tool sample after exec failed"
	later+=("$tool $bin $name $pid")
}

# mem_later: once the first detached sandbox is MEM_LATER_S old, sample each
# again, then stop and remove them.
mem_later() {
	local l tool bin name pid
	local wait_s=$((mem_later_from + MEM_LATER_S - SECONDS))
	if ((wait_s > 0)); then
		sleep "$wait_s"
	fi
	for l in "${later[@]}"; do
		read -r tool bin name pid <<<"$l"
		"$memrss" sample -pid "$pid" -tool "$tool" -set "$SET_LATER" >>"$out/memory.jsonl" 2>"$work/mem.err" ||
			mem_err "$tool sample ${MEM_LATER_S} s on failed"
	done
	for l in "${later[@]}"; do
		read -r tool bin name pid <<<"$l"
		timeout 20 "$bin" stop --time 2s "$name" >/dev/null 2>&1 || true
		timeout 10 "$bin" rm "$name" >/dev/null 2>&1 || true
	done
}

: >"$out/memory.jsonl"
if [[ "$skip_sandbox" != 1 ]]; then
	echo
	say "memory: $MEM_SAMPLES samples of each process set"
	mem_later_from=$SECONDS
	for ((i = 1; i <= MEM_SAMPLES; i++)); do
		mem_fg new "$SANDBOX_BIN" run --net=none -- sleep 30
		if [[ -n "$SANDBOX_BASE_BIN" ]]; then
			mem_fg base "$SANDBOX_BASE_BIN" run --net=none -- sleep 30
		fi
		mem_fg bwrap bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc sleep 30
		mem_detached new "$SANDBOX_BIN" "$i"
		if [[ -n "$SANDBOX_BASE_BIN" ]]; then
			mem_detached base "$SANDBOX_BASE_BIN" "$i"
		fi
	done
	mem_later
	echo
	"$memrss" report -in "$out/memory.jsonl" -md "$out/memory.md" -json "$out/memory.json" -goal-mb 8 |
		tee "$out/memory.txt"
fi
if [[ -z "${BENCH_TOOLS_DIR:-}" ]]; then # not when root re-ran us: it says where
	echo
	say "results in $out"
fi
