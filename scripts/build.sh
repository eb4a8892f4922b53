#!/usr/bin/env bash
# Build bin/sandbox (static; CGO_ENABLED=0, with its embedded helpers) from ./cmd/sandbox.
# Works as root or as any user, from any directory.
# The version stamped into main.version is $SANDBOX_VERSION when set, else
# `git describe --always --dirty`, else "dev".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -d /usr/local/go/bin ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || {
	echo "build: ERROR: go not found (expected /usr/local/go/bin/go)" >&2
	exit 1
}

version="${SANDBOX_VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}"

mkdir -p bin
# The builtin network driver's helper first: bin/sandbox embeds it (it is
# kept apart because its package initialisation costs ~30 ms a start).
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
	-o cmd/sandbox/sandbox-netstack.bin ./cmd/sandbox-netstack
# PID 1 of every sandbox, also embedded: a small program of its own, so
# that its start does not cost what the whole CLI's does. Pure Go, as
# everything in sandbox (the holder's stage, which must run before any Go
# runtime, is a program of its own, below).
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
	-o cmd/sandbox/sandbox-init.bin ./cmd/sandbox-init
# The holder stage (cmd/sandbox-stage/stage.c: init created inside the
# user's holder namespace), a static C program embedded likewise, when a C
# compiler for the target is there (the embedstage tag): gcc, or for a
# cross build (GOARCH=arm64 on amd64, or the reverse) the Debian cross
# compiler; without one, on other architectures, or with
# SANDBOX_BUILD_STAGE=0, runs write their maps with newuidmap/newgidmap.
tags="embednetstack,embedinit,embedpull,embedprofile"
goarch="$(go env GOARCH)"
cross=0
stage_cc=gcc
if [[ "$goarch" != "$(go env GOHOSTARCH)" ]]; then
	cross=1
	case "$goarch" in
	arm64) stage_cc=aarch64-linux-gnu-gcc ;;
	amd64) stage_cc=x86_64-linux-gnu-gcc ;;
	*) stage_cc="" ;;
	esac
fi
if [[ "${SANDBOX_BUILD_STAGE:-1}" != 0 && -n "$stage_cc" ]] &&
	[[ "$goarch" == amd64 || "$goarch" == arm64 ]] && command -v "$stage_cc" >/dev/null; then
	# No C library (its start would cost as much as the stage): the
	# system calls are the program's own (amd64, arm64).
	"$stage_cc" -static -nostdlib -ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns \
		-fno-stack-protector -fno-asynchronous-unwind-tables -fno-pie -no-pie -O2 -s -Wall -Werror \
		-o cmd/sandbox/sandbox-stage.bin cmd/sandbox-stage/stage.c
	tags="$tags,embedstage"
	stage_note=" and the holder stage"
fi
# The registry client (image pull), embedded likewise: its package
# initialisation (~2 ms) is paid by pulls only.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
	-o cmd/sandbox/sandbox-pull.bin ./cmd/sandbox-pull
# The profile decoder (run --profile FILE), embedded likewise: the YAML and
# TOML parsers' package initialisation (~0.8 ms) is paid by runs with a
# profile only.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
	-o cmd/sandbox/sandbox-profile.bin ./cmd/sandbox-profile
# Which init this is: a holder started by this build shares its copy of
# init with this build's runs only (parent.InitID).
init_id="$(sha256sum cmd/sandbox/sandbox-init.bin | cut -d' ' -f1)"
# Which network helper this is: the holder shares a copy of it with this
# build's runs only (spec.NetstackID).
netstack_id="$(sha256sum cmd/sandbox/sandbox-netstack.bin | cut -d' ' -f1)"
# Which profile decoder this is: its cached answers are its own.
profile_id="$(sha256sum cmd/sandbox/sandbox-profile.bin | cut -d' ' -f1)"
CGO_ENABLED=0 go build -trimpath -tags "$tags" \
	-ldflags "-s -w -X main.version=$version -X main.initID=$init_id -X main.netstackID=$netstack_id -X main.profileID=$profile_id" \
	-o bin/sandbox ./cmd/sandbox
# The stage is in, or the build fails here rather than at a run.
if [[ "$tags" == *embedstage* ]] && ! grep -q "only sandbox runs this (SANDBOX_STAGE" bin/sandbox; then
	echo "build: ERROR: bin/sandbox was built without its holder stage" >&2
	exit 1
fi
# The OCI runtime (docs/oci.md), a program of its own beside sandbox: with
# cgo, statically, for exec's namespace stage (cmd/sandbox-oci/nsenter.c),
# which must run before the Go runtime starts its threads (a cross build
# has no C library of the target to link it with: without cgo, its exec
# then says so).
if [[ "$cross" == 0 ]] && command -v gcc >/dev/null && [[ "${SANDBOX_OCI_CGO:-1}" != 0 ]]; then
	CGO_ENABLED=1 go build -trimpath -tags osusergo,netgo \
		-ldflags "-s -w -linkmode external -extldflags -static -X main.version=$version" \
		-o bin/sandbox-oci ./cmd/sandbox-oci
else
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" \
		-o bin/sandbox-oci ./cmd/sandbox-oci
fi
rm -f cmd/sandbox/sandbox-netstack.bin cmd/sandbox/sandbox-init.bin cmd/sandbox/sandbox-pull.bin cmd/sandbox/sandbox-profile.bin cmd/sandbox/sandbox-stage.bin
echo "build: bin/sandbox ($version, with sandbox-init, the sandbox-netstack, sandbox-pull and sandbox-profile helpers${stage_note:-} embedded), bin/sandbox-oci"
