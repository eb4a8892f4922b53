#!/usr/bin/env bash
# The project's test command.
#
#   sudo ./scripts/test.sh [go test args...]   # full run, as CI does it
#   ./scripts/test.sh [go test args...]        # as yourself: what your user can do
#
# As root: prepares the host (scripts/setup-host.sh), checks gofmt and go vet,
# copies the checkout to ~sbxtest/sandbox-src and runs the build and the tests
# there as the unprivileged user sbxtest (the sandbox is meant for such users).
# As another user: builds and tests as that user, no host setup.
# As root the tests run in a private mount namespace holding a hostile host
# shape (hostile_shape below: a directory only root can read with a mount
# below it, as root's Docker makes), never a mount of the shared host.
# As root it also brings up the test world (scripts/testworld.sh up: network
# namespace sbxworld, 198.18.0.0/15 addresses routed into it, DNS/TCP/UDP/TLS
# servers of the egress tests' own) and holds a shared flock on
# /run/sandbox-testworld.lock while the tests run; afterwards
# `testworld.sh down` removes it unless another run still holds the lock.
#
# Extra arguments go to `go test` (default package pattern: ./...), e.g.
#   ./scripts/test.sh -run TestRun ./e2e
# SANDBOX_TEST_DEST=DIR (below ~sbxtest) copies there instead of ~sbxtest/sandbox-src.
# The tests get SANDBOX_BIN=<absolute path of the freshly built bin/sandbox>.
# As root, after the unprivileged phase, a root phase runs the tests of the
# OCI runtime that need root (`go test -tags ociroot ./e2e/ociroot`:
# containerd, the runtime-tools validation suite) over the same build, in a
# private mount namespace; it runs when the packages asked for include
# ./e2e/ociroot (./... does). SANDBOX_OCI_RUNTIME=PATH (passed to both
# phases) points the OCI tests at another runtime, e.g. /usr/sbin/runc.
# The last line printed is `N passed, N failed[, N skipped]` (with a root
# phase: the sum of both phases); the exit status is non-zero when anything
# failed, and with CI=true also when any test was skipped (CI runs
# everything; the skipped tests are listed).
set -euo pipefail

readonly TEST_USER=sbxtest
readonly USER_PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

say() { printf 'test.sh: %s\n' "$*"; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"

# --------------------------------------------------------- go test arguments
# Add the default package pattern ./... unless one is given.
have_pkg=0
for a in "$@"; do
	case "$a" in
	-args) break ;;
	. | ./* | .. | ../* | sandbox | sandbox/*) have_pkg=1 ;;
	esac
done
test_args=()
added=0
for a in "$@"; do
	if [[ "$a" == -args && "$have_pkg" -eq 0 && "$added" -eq 0 ]]; then
		test_args+=(./...)
		added=1
	fi
	test_args+=("$a")
done
if [[ "$have_pkg" -eq 0 && "$added" -eq 0 ]]; then
	test_args+=(./...)
fi

# ------------------------------------------------------------------ helpers
lint() {
	local unformatted
	say "gofmt -l"
	unformatted="$(gofmt -l .)" || die "gofmt failed"
	if [[ -n "$unformatted" ]]; then
		printf '%s\n' "$unformatted" >&2
		die "these files need gofmt (run: gofmt -w <file>)"
	fi
	say "go vet ./... (and -tags vmguest ./vm/...)"
	go vet ./... || die "go vet failed"
	# The VM's guest tests build only with their tags (vm/guest/doc.go).
	go vet -tags vmguest ./vm/... || die "go vet failed"
	go vet -tags vmguest,vmsystemd ./vm/... || die "go vet failed" # the systemd guest's (vm/README.md)
	go vet -tags ociroot ./e2e/ociroot || die "go vet failed" # the root phase's (e2e/ociroot)
}

skipped_tests=() # names of the skipped tests, set by summarise

# summarise LOG: print `N passed, N failed[, N skipped]` from `go test -v` output.
# A package that failed without a failing test (build failure, panic in
# TestMain, timeout) counts as one failure.
summarise() {
	local log="$1" rc="$2" line passed=0 failed=0 skipped=0 pkg_fails=0
	while IFS= read -r line; do
		case "$line" in
		*"--- PASS: "*) passed=$((passed + 1)) ;;
		*"--- FAIL: "*)
			failed=$((failed + 1))
			pkg_fails=$((pkg_fails + 1))
			;;
		*"--- SKIP: "*)
			skipped=$((skipped + 1))
			line="${line#*--- SKIP: }"
			skipped_tests+=("${line%% (*}")
			;;
		FAIL$'\t'*)
			if [[ "$pkg_fails" -eq 0 ]]; then
				failed=$((failed + 1))
			fi
			pkg_fails=0
			;;
		"ok  "$'\t'* | "?   "$'\t'*) pkg_fails=0 ;;
		esac
	done < <(grep -E -e '^[[:space:]]*--- (PASS|FAIL|SKIP): ' -e $'^(FAIL|ok  |\\?   )\t' "$log" || true)
	if [[ "$rc" -ne 0 && "$failed" -eq 0 ]]; then
		failed=1 # go test itself failed (bad flag, package not found, ...)
	fi
	if [[ "${CI:-}" == true && "$skipped" -gt 0 ]]; then
		printf 'test.sh: ERROR: CI=true and these tests were skipped (CI must run everything):\n' >&2
		printf '  %s\n' "${skipped_tests[@]}" >&2
	fi
	if [[ "$skipped" -gt 0 ]]; then
		printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
	else
		printf '%d passed, %d failed\n' "$passed" "$failed"
	fi
}

# run_tests CMD...: runs CMD (a go test -v), shows and summarises its
# output (summarise); with CI=true a run with skipped tests fails.
run_tests() {
	local log rc
	log="$(mktemp "${TMPDIR:-/tmp}/sandbox-test.XXXXXX.log")"
	set +e
	"$@" 2>&1 | tee "$log"
	rc="${PIPESTATUS[0]}"
	set -e
	summarise "$log" "$rc"
	rm -f "$log"
	if [[ "${CI:-}" == true && "${#skipped_tests[@]}" -gt 0 && "$rc" -eq 0 ]]; then
		rc=1
	fi
	return "$rc"
}

build_and_test() {
	if compgen -G 'cmd/sandbox/*.go' >/dev/null; then
		bash scripts/build.sh || die "build failed"
		export SANDBOX_BIN="$root/bin/sandbox"
		say "SANDBOX_BIN=$SANDBOX_BIN"
	else
		say "WARNING: no ./cmd/sandbox yet: nothing to build, SANDBOX_BIN not set"
		unset SANDBOX_BIN
	fi

	# go test's default 10 min per package is too short for e2e and the VM
	# guests on a loaded 2-core machine; CI's own limit is 90 min.
	local timeout=(-timeout 50m)
	case " ${test_args[*]} " in *" -timeout"*) timeout=() ;; esac
	say "go test -count=1 -v ${timeout[*]} ${test_args[*]}"
	run_tests go test -count=1 -v "${timeout[@]}" "${test_args[@]}"
}

# Values of the go environment passed to the test user (root may have set
# them with `go env -w`, which the test user does not see).
go_env_args() {
	local v val
	for v in GOPROXY GOSUMDB GONOSUMDB GONOPROXY GOPRIVATE GOINSECURE GOTOOLCHAIN; do
		val="${!v:-$(go env "$v" 2>/dev/null || true)}"
		if [[ -n "$val" ]]; then
			printf '%s=%s\0' "$v" "$val"
		fi
	done
}

# copy_tree DEST: the checkout (tracked + untracked non-ignored files, no .git,
# no bin/) into DEST.
copy_tree() {
	local dest="$1" f
	if git -c safe.directory="$root" -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -c safe.directory="$root" -C "$root" ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do
				case "$f" in bin/*) continue ;; esac
				if [[ -e "$f" || -L "$f" ]]; then
					printf '%s\0' "$f"
				fi
			done |
			tar --null --no-recursion -T - -cf - | tar -xf - -C "$dest"
	else
		tar --exclude=./.git --exclude=./bin -cf - . | tar -xf - -C "$dest"
	fi
}

# hostile_shape: run in the tests' private mount namespace, as root. A tmpfs
# over /srv (this namespace only) holds $HOSTILE_DIR: root's, 0700, with a
# tmpfs mounted two levels below, the layout of /var/lib/docker (0710 with
# overlay mounts below) on a host where root runs containers. Every sandbox
# the tests start sees it; e2e TestHostileHostShape checks it is there.
readonly HOSTILE_DIR=/srv/sandbox-test-unreadable
hostile_shape() {
	mount -t tmpfs -o mode=0755,size=1m sandbox-test-srv /srv &&
		mkdir -p "$HOSTILE_DIR/s/m" &&
		chmod 0700 "$HOSTILE_DIR" &&
		mount -t tmpfs -o mode=0777,size=1m sandbox-test-hostile "$HOSTILE_DIR/s/m" &&
		echo "root's secret" >"$HOSTILE_DIR/secret"
}

# wants_ociroot: status 0 when the go test packages asked for include
# ./e2e/ociroot (the root phase's package).
wants_ociroot() {
	local a
	for a in "${test_args[@]}"; do
		case "$a" in
		-args) return 1 ;;
		./... | ./e2e/... | ./e2e/ociroot | ./e2e/ociroot/ | ./e2e/ociroot/... | sandbox/... | sandbox/e2e/... | sandbox/e2e/ociroot) return 0 ;;
		esac
	done
	return 1
}

# root_phase DEST: as root, the ociroot tests over DEST's build (the test
# user's phase built DEST/bin), with the go test flags given to this
# script; prints `N passed, N failed[, N skipped]` last.
root_phase() {
	local dest="$1" a flags=()
	for a in "${test_args[@]}"; do
		case "$a" in
		-args) break ;;
		. | ./* | .. | ../* | sandbox | sandbox/*) ;;
		*) flags+=("$a") ;;
		esac
	done
	local timeout=(-timeout 40m)
	case " ${flags[*]} " in *" -timeout"*) timeout=() ;; esac
	say "root phase: go test -tags ociroot -count=1 -v ${timeout[*]} ${flags[*]} ./e2e/ociroot (as root, SANDBOX_BIN=$dest/bin/sandbox)"
	# A private mount namespace: what containerd and the runtimes mount
	# under their temporary directories never reaches the host's table.
	(cd "$dest" && run_tests env SANDBOX_BIN="$dest/bin/sandbox" GOFLAGS=-mod=mod CI="${CI:-}" \
		unshare -m --propagation private -- go test -tags ociroot -count=1 -v "${timeout[@]}" "${flags[@]}" ./e2e/ociroot) </dev/null
}

# counts LINE: "P F S" from a `N passed, N failed[, N skipped]` line.
counts() {
	local re='^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?$'
	if [[ "$1" =~ $re ]]; then
		printf '%s %s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[4]:-0}"
	else
		printf '0 1 0\n' # no summary: the phase itself failed
	fi
}

# ------------------------------------------------------------------- main
if [[ "$(id -u)" -eq 0 ]]; then
	say "running as root: host setup, lint, then build and tests as $TEST_USER"
	bash "$root/scripts/setup-host.sh"

	# Computed here: the copy below has no .git.
	version="${SANDBOX_VERSION:-$(git -c safe.directory="$root" describe --always --dirty 2>/dev/null || echo dev)}"

	export GOFLAGS="${GOFLAGS:--mod=mod}"
	lint

	home="$(getent passwd "$TEST_USER" | cut -d: -f6)"
	[[ -n "$home" && -d "$home" ]] || die "no home directory for $TEST_USER"
	# SANDBOX_TEST_DEST lets several checkouts be tested at once on one machine.
	dest="${SANDBOX_TEST_DEST:-$home/sandbox-src}"
	case "$dest" in "$home"/?*) ;; *) die "SANDBOX_TEST_DEST must be below $home" ;; esac
	rm -rf --one-file-system "$dest"
	install -d -o "$TEST_USER" -g "$(id -g "$TEST_USER")" -m 0755 "$dest"
	copy_tree "$dest"
	chown -R "$TEST_USER:$(id -g "$TEST_USER")" "$dest"
	say "copied the checkout to $dest"

	env_args=(HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" PATH="$USER_PATH"
		CI="${CI:-}" GOFLAGS=-mod=mod SANDBOX_VERSION="$version" SANDBOX_TEST_NESTED=1
		SANDBOX_TEST_HOSTILE="$HOSTILE_DIR")
	if [[ -n "${SANDBOX_OCI_RUNTIME:-}" ]]; then
		env_args+=(SANDBOX_OCI_RUNTIME="$SANDBOX_OCI_RUNTIME")
	fi
	while IFS= read -r -d '' kv; do
		env_args+=("$kv")
	done < <(go_env_args)

	# The tests start in the test user's delegated cgroup (setup-host.sh
	# made it): the user could not move itself there, that needs write
	# access to the common ancestor's cgroup.procs.
	cg_dir="$(bash "$root/scripts/test-cgroup.sh" "$TEST_USER" || true)"

	# The egress tests' world, shared by overlapping runs: each holds the
	# lock (shared) until its tests end; nothing the tests start inherits it.
	exec {world_fd}>>/run/sandbox-testworld.lock
	if ! flock -s -w 300 "$world_fd"; then
		say "WARNING: could not take /run/sandbox-testworld.lock: the egress tests will fail under CI=true"
	elif ! bash "$root/scripts/testworld.sh" up {world_fd}>&-; then
		say "WARNING: scripts/testworld.sh up failed: the egress tests will fail under CI=true"
	fi
	say "running the build and the tests as $TEST_USER in $dest${cg_dir:+ (cgroup $cg_dir)}"
	user_log="$(mktemp /tmp/sandbox-test-user.XXXXXX.log)"
	set +e
	(
		if [[ -n "$cg_dir" ]] && ! echo "$BASHPID" >"$cg_dir/cgroup.procs"; then
			say "WARNING: could not enter $cg_dir: the cgroup tests will fail under CI=true"
		fi
		# A mount namespace of the tests' own (nothing propagates back to
		# the host) with the hostile shape in it.
		export -f hostile_shape
		export HOSTILE_DIR
		exec unshare -m --propagation private -- bash -c 'hostile_shape || exit 125; exec runuser "$@"' \
			_ -u "$TEST_USER" -- env -i "${env_args[@]}" bash "$dest/scripts/test.sh" "$@" </dev/null
	) {world_fd}>&- 2>&1 | tee "$user_log"
	rc="${PIPESTATUS[0]}"
	set -e
	exec {world_fd}>&-
	bash "$root/scripts/testworld.sh" down || true
	if wants_ociroot; then
		read -r up uf us < <(counts "$(tail -n 1 "$user_log")")
		root_log="$(mktemp /tmp/sandbox-test-rootsum.XXXXXX.log)"
		set +e
		root_phase "$dest" | tee "$root_log"
		root_rc="${PIPESTATUS[0]}"
		set -e
		read -r rp rf rs < <(counts "$(tail -n 1 "$root_log")")
		rm -f "$root_log"
		if [[ "$root_rc" -ne 0 && "$rc" -eq 0 ]]; then
			rc="$root_rc"
		fi
		say "both phases ($TEST_USER, then root):"
		if [[ $((us + rs)) -gt 0 ]]; then
			printf '%d passed, %d failed, %d skipped\n' $((up + rp)) $((uf + rf)) $((us + rs))
		else
			printf '%d passed, %d failed\n' $((up + rp)) $((uf + rf))
		fi
	fi
	rm -f "$user_log"
	exit "$rc"
fi

if [[ "${SANDBOX_TEST_NESTED:-}" != 1 ]]; then
	say "running as $(id -un) (not root): no host setup; this tests what this user can do"
	export GOFLAGS="${GOFLAGS:--mod=mod}"
	lint
fi
build_and_test # under set -e a failure exits with go test's status
