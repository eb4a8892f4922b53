#!/usr/bin/env bash
# Build bin/sandbox (static, CGO_ENABLED=0) from ./cmd/sandbox.
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
# that its start does not cost what the whole CLI's does.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
	-o cmd/sandbox/sandbox-init.bin ./cmd/sandbox-init
# The registry client (image pull), embedded likewise: its package
# initialisation (~2 ms) is paid by pulls only.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
	-o cmd/sandbox/sandbox-pull.bin ./cmd/sandbox-pull
CGO_ENABLED=0 go build -trimpath -tags embednetstack,embedinit,embedpull \
	-ldflags "-s -w -X main.version=$version" \
	-o bin/sandbox ./cmd/sandbox
rm -f cmd/sandbox/sandbox-netstack.bin cmd/sandbox/sandbox-init.bin cmd/sandbox/sandbox-pull.bin
echo "build: bin/sandbox ($version, with sandbox-init, the sandbox-netstack and sandbox-pull helpers embedded)"
