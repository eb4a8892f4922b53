#!/usr/bin/env bash
# Runs the opencontainers runtime-tools validation suite against one or more
# OCI runtimes and prints a Markdown table: one row per validation program,
# one column per runtime (docs/oci-validation.md shows how to read it).
#
#   sudo scripts/oci-validation.sh [--runtime PATH]... [--out FILE] [--tsv FILE]
#        [--timeout SECS] [--total-timeout SECS] [--only REGEX] [--rerun REGEX]
#        [--tap-dir DIR]
#
# Default runtimes: $SANDBOX_OCI_RUNTIME (else bin/sandbox-oci beside
# $SANDBOX_BIN, else this checkout's bin/sandbox-oci) and /usr/sbin/runc.
# It fetches the runtime-tools module through the Go module proxy
# (go mod download), builds every validation/<name> program and
# cmd/runtimetest into a temporary directory, and runs each program as root
# with RUNTIME set to a wrapper that gives the runtime a --root of its own
# (so what a program leaves behind can be force-deleted after it).
#   --timeout        per program (default 120 s); a program over it is "timeout"
#   --total-timeout  for all runs (default 1500 s); programs not started by then
#                    are "not run"
#   --only           run only the programs whose name matches REGEX (grep -E)
#   --rerun          a program whose name matches REGEX and does not pass is
#                    run again, at most twice more: for programs whose own
#                    check races the container (docs/oci-validation.md); the
#                    cell then says which run passed, `pass (run 2 of 3)`
#   --tsv            also write `program<TAB>runtime<TAB>result<TAB>failed<TAB>total`
#   --tap-dir        keep each program's TAP output as DIR/<runtime>/<program>.tap
# A cell is `pass` (every TAP test ok, skips allowed; `pass (all skipped)`
# when the program skipped everything; the *_fail programs pass by exiting
# 0 without TAP), `fail N of M` (N `not ok` of M), `timeout`, `error (no
# test ran)` (plan 1..0), `error (exit S)` (no complete TAP plan) or `not run`.
# Exit status: 0 when the table was made (whatever the results), 1 on a
# setup error (not root, build failure, bad argument).
set -euo pipefail

readonly RT_MODULE=github.com/opencontainers/runtime-tools
readonly RT_VERSION=v0.9.1-0.20251114084447-edf4cb3d2116
readonly BUILD_TIMEOUT=600 # seconds, download and build

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

say() { printf 'oci-validation: %s\n' "$*" >&2; }
die() { printf 'oci-validation: ERROR: %s\n' "$*" >&2; exit 1; }

orig_args=("$@")
runtimes=()
out=""
tsv=""
per_timeout=120
total_timeout=1500
only=""
rerun=""
tap_dir=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--runtime) [[ $# -ge 2 ]] || die "--runtime needs a path"; runtimes+=("$2"); shift 2 ;;
	--out) [[ $# -ge 2 ]] || die "--out needs a file"; out="$2"; shift 2 ;;
	--tsv) [[ $# -ge 2 ]] || die "--tsv needs a file"; tsv="$2"; shift 2 ;;
	--timeout) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--timeout needs seconds"; per_timeout="$2"; shift 2 ;;
	--total-timeout) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--total-timeout needs seconds"; total_timeout="$2"; shift 2 ;;
	--only) [[ $# -ge 2 ]] || die "--only needs a regular expression"; only="$2"; shift 2 ;;
	--rerun) [[ $# -ge 2 ]] || die "--rerun needs a regular expression"; rerun="$2"; shift 2 ;;
	--tap-dir) [[ $# -ge 2 ]] || die "--tap-dir needs a directory"; tap_dir="$2"; shift 2 ;;
	-h | --help) sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

[[ "$(id -u)" -eq 0 ]] || die "must run as root (the suite creates root containers)"
command -v go >/dev/null || die "go not found"

# A mount namespace of the run's own: linux_ns_itype asks for a container
# without a mount namespace, and a runtime that accepts it (runc) mounts the
# bundle's /proc, /dev, /sys in the caller's namespace; they must not reach
# the host's table, and they go when this namespace ends.
if [[ "${OCI_VALIDATION_PRIVATE_NS:-}" != 1 ]]; then
	OCI_VALIDATION_PRIVATE_NS=1 exec unshare -m --propagation private -- bash "${BASH_SOURCE[0]}" "${orig_args[@]}"
fi

if [[ "${#runtimes[@]}" -eq 0 ]]; then
	default_oci="${SANDBOX_OCI_RUNTIME:-}"
	if [[ -z "$default_oci" && -n "${SANDBOX_BIN:-}" ]]; then
		default_oci="$(dirname "$SANDBOX_BIN")/sandbox-oci"
	fi
	runtimes=("${default_oci:-$root/bin/sandbox-oci}" /usr/sbin/runc)
fi
labels=()
label=""
for i in "${!runtimes[@]}"; do
	r="${runtimes[$i]}"
	[[ -x "$r" ]] || die "runtime $r: not an executable file"
	runtimes[i]="$(realpath "$r")"
	label="$(basename "$r")"
	if [[ " ${labels[*]} " == *" $label "* ]]; then
		label="$label-$((i + 1))" # the same name twice: tell the columns apart
	fi
	labels+=("$label")
done

tmp="$(mktemp -d /tmp/oci-validation.XXXXXX)"
# Searchable by all: bundles below it are entered by container processes
# whose root is mapped to another uid (linux_uid_mappings, user namespaces).
chmod 0755 "$tmp"
cleanup() {
	# What a runtime left mounted below the bundles (this namespace only):
	# unmounted deepest first, then never crossed into by rm.
	local m
	awk -v t="$tmp/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf --one-file-system "$tmp" 2>/dev/null || true
}
trap cleanup EXIT

# ---------------------------------------------------------------- build
say "fetching $RT_MODULE@$RT_VERSION"
# -mod=mod: the module's vendor/ is not part of its zip (Go leaves vendor
# directories out), so its go.sum pins what the proxy serves.
export GOFLAGS=-mod=mod
moddir="$(cd "$tmp" && timeout "$BUILD_TIMEOUT" go mod download -json "$RT_MODULE@$RT_VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" || die "go mod download $RT_MODULE@$RT_VERSION failed"
[[ -n "$moddir" && -d "$moddir/validation" ]] || die "go mod download gave no module directory"
cp -r "$moddir" "$tmp/src"
chmod -R u+w "$tmp/src"
rm -rf "$tmp/src/vendor"
say "building the validation programs and runtimetest"
(
	cd "$tmp/src"
	timeout "$BUILD_TIMEOUT" go build -o "$tmp/bin/" ./validation/... &&
		CGO_ENABLED=0 timeout "$BUILD_TIMEOUT" go build -tags netgo,osusergo -o "$tmp/work/runtimetest" ./cmd/runtimetest
) >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; die "building runtime-tools failed"; }
cp "$tmp/src/rootfs-$(go env GOARCH).tar.gz" "$tmp/work/" || die "no rootfs tarball for $(go env GOARCH)"

programs=()
for p in "$tmp"/bin/*; do
	name="$(basename "$p")"
	if [[ -n "$only" ]] && ! grep -Eq -- "$only" <<<"$name"; then
		continue
	fi
	programs+=("$name")
done
[[ "${#programs[@]}" -gt 0 ]] || die "no validation program selected"

# A wrapper per runtime: its own state root, so leftovers can be found.
for i in "${!runtimes[@]}"; do
	mkdir -p "$tmp/state/$i"
	printf '#!/bin/sh\nexec %q --root %q "$@"\n' "${runtimes[$i]}" "$tmp/state/$i" >"$tmp/rt-$i"
	chmod 0755 "$tmp/rt-$i"
done

# --------------------------------------------------------------- run
# cell TAPFILE STATUS: the table cell for one run.
cell() {
	local tap="$1" status="$2" plan ok notok skip
	if [[ "$status" -eq 124 || "$status" -eq 137 ]]; then
		echo timeout
		return
	fi
	# Some programs print more than one TAP document: add their plans up.
	plan="$(grep -Eo '^1\.\.[0-9]+' "$tap" | cut -d. -f3 | awk '{ n += $1; seen = 1 } END { if (seen) print n }')"
	notok="$(grep -Ec '^not ok( |$)' "$tap" || true)"
	ok="$(grep -Ec '^ok( |$)' "$tap" || true)"
	skip="$(grep -Ec '^ok( [0-9]+)?( .*)?# [Ss][Kk][Ii][Pp]' "$tap" || true)"
	if [[ -z "$plan" && $((ok + notok)) -eq 0 && "$status" -eq 0 ]]; then
		# The *_fail programs print nothing and exit 0 when the runtime
		# refused the bad config, as it must (util.Fatal otherwise).
		echo pass
	elif [[ "$plan" == 0 ]]; then
		# 1..0: the program gave up before its first test (a YAML
		# diagnostic says why), which is not a pass.
		echo "error (no test ran)"
	elif [[ -z "$plan" || $((ok + notok)) -ne "$plan" ]]; then
		if [[ "$notok" -gt 0 && -n "$plan" ]]; then
			echo "fail $notok of $plan"
		else
			echo "error (exit $status)"
		fi
	elif [[ "$notok" -gt 0 ]]; then
		echo "fail $notok of $plan"
	elif [[ "$status" -ne 0 ]]; then
		echo "error (exit $status)"
	elif [[ "$skip" -eq "$plan" ]]; then
		echo "pass (all skipped)"
	else
		echo pass
	fi
}

# reap I: force-delete whatever runtime I left in its state root.
reap() {
	local i="$1" d
	for d in "$tmp/state/$i"/*; do
		[[ -d "$d" ]] || continue
		timeout 30 "${runtimes[$i]}" --root "$tmp/state/$i" delete --force "$(basename "$d")" >/dev/null 2>&1 || true
	done
	rm -rf --one-file-system "${tmp:?}/state/$i" 2>/dev/null || true
	mkdir -p "$tmp/state/$i"
}

declare -A result
deadline=$((SECONDS + total_timeout))
started=$SECONDS
for prog in "${programs[@]}"; do
	for i in "${!runtimes[@]}"; do
		if [[ "$SECONDS" -ge "$deadline" ]]; then
			result["$prog,$i"]="not run"
			continue
		fi
		tap="$tmp/tap/$i/$prog.tap"
		mkdir -p -m 0755 "$tmp/tap/$i" "$tmp/t"
		runs=1
		if [[ -n "$rerun" ]] && grep -Eq -- "$rerun" <<<"$prog"; then
			runs=3
		fi
		for ((run = 1; run <= runs; run++)); do
			set +e
			(cd "$tmp/work" && RUNTIME="$tmp/rt-$i" TMPDIR="$tmp/t" \
				timeout -k 10 "$per_timeout" "$tmp/bin/$prog" </dev/null >"$tap" 2>"$tap.err")
			status=$?
			set -e
			reap "$i"
			result["$prog,$i"]="$(cell "$tap" "$status")"
			if [[ "${result["$prog,$i"]}" == pass* || "$run" -eq "$runs" || "$SECONDS" -ge "$deadline" ]]; then
				break
			fi
			# What the failed run said stays in the log: a rerun that
			# passes must not hide how the first one failed.
			say "$prog [${labels[$i]}]: ${result["$prog,$i"]} on run $run of $runs (--rerun); its TAP:"
			grep -E '^(not ok|  )' "$tap" | head -n 20 | sed 's/^/    /' >&2 || true
		done
		if [[ "$run" -gt 1 && "${result["$prog,$i"]}" == pass* ]]; then
			result["$prog,$i"]="pass (run $run of $runs)"
		fi
		say "$prog [${labels[$i]}]: ${result["$prog,$i"]}"
		if [[ -n "$tap_dir" ]]; then
			mkdir -p "$tap_dir/${labels[$i]}"
			cp "$tap" "$tap_dir/${labels[$i]}/$prog.tap"
			cp "$tap.err" "$tap_dir/${labels[$i]}/$prog.stderr"
		fi
	done
done
elapsed=$((SECONDS - started))

# ------------------------------------------------------------- report
{
	printf '| program |'
	printf ' %s |' "${labels[@]}"
	printf '\n|---|'
	for _ in "${labels[@]}"; do printf -- '---|'; done
	printf '\n'
	for prog in "${programs[@]}"; do
		printf '| %s |' "$prog"
		for i in "${!runtimes[@]}"; do printf ' %s |' "${result["$prog,$i"]}"; done
		printf '\n'
	done
	printf '| **programs passed** |'
	for i in "${!runtimes[@]}"; do
		n=0
		for prog in "${programs[@]}"; do
			case "${result["$prog,$i"]}" in pass*) n=$((n + 1)) ;; esac
		done
		printf ' %d of %d |' "$n" "${#programs[@]}"
	done
	printf '\n\nruntime-tools %s; %s; %d s for all runs.\n' "$RT_VERSION" "$(
		for i in "${!runtimes[@]}"; do
			printf '%s = %s (%s) ' "${labels[$i]}" "${runtimes[$i]}" \
				"$("${runtimes[$i]}" --version 2>/dev/null | head -n 1 || echo 'no --version')"
		done
	)" "$elapsed"
} >"$tmp/table.md"
cat "$tmp/table.md"
if [[ -n "$out" ]]; then
	cp "$tmp/table.md" "$out"
fi
if [[ -n "$tsv" ]]; then
	for prog in "${programs[@]}"; do
		for i in "${!runtimes[@]}"; do
			r="${result["$prog,$i"]}"
			f=0 m=0
			if [[ "$r" =~ ^fail\ ([0-9]+)\ of\ ([0-9]+)$ ]]; then
				f="${BASH_REMATCH[1]}" m="${BASH_REMATCH[2]}"
			fi
			printf '%s\t%s\t%s\t%s\t%s\n' "$prog" "${labels[$i]}" "$r" "$f" "$m"
		done
	done >"$tsv"
fi
