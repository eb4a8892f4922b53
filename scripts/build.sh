#!/usr/bin/env bash
# Build bin/sandbox (static; CGO_ENABLED=0 but for its embedded init) from ./cmd/sandbox.
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
# that its start does not cost what the whole CLI's does. On amd64 with a C
# compiler it is built with cgo, statically (no NSS: osusergo, netgo), for
# its holder stage (cmd/sandbox-init/stage.c), and sandbox is told so by
# the initstage tag; elsewhere, or with SANDBOX_INIT_CGO=0, without it
# (runs then write their maps with newuidmap/newgidmap).
tags="embednetstack,embedinit,embedpull"
if [[ "$(go env GOARCH)" == amd64 && "${SANDBOX_INIT_CGO:-1}" != 0 ]] && command -v gcc >/dev/null; then
	CGO_ENABLED=1 go build -trimpath -tags osusergo,netgo \
		-ldflags "-s -w -linkmode external -extldflags -static" \
		-o cmd/sandbox/sandbox-init.bin ./cmd/sandbox-init
	# The stage is in, or the build fails here rather than at a run.
	grep -q SANDBOX_INIT_HOLDER_UIDMAP cmd/sandbox/sandbox-init.bin || {
		echo "build: ERROR: sandbox-init was built without its holder stage" >&2
		exit 1
	}
	tags="$tags,initstage"
else
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
		-o cmd/sandbox/sandbox-init.bin ./cmd/sandbox-init
fi
# The registry client (image pull), embedded likewise: its package
# initialisation (~2 ms) is paid by pulls only.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
	-o cmd/sandbox/sandbox-pull.bin ./cmd/sandbox-pull
# Which init this is: a holder started by this build shares its copy of
# init with this build's runs only (parent.InitID).
init_id="$(sha256sum cmd/sandbox/sandbox-init.bin | cut -d' ' -f1)"
CGO_ENABLED=0 go build -trimpath -tags "$tags" \
	-ldflags "-s -w -X main.version=$version -X main.initID=$init_id" \
	-o bin/sandbox ./cmd/sandbox
# The OCI runtime (docs/oci.md), a program of its own beside sandbox: with
# cgo, statically, for exec's namespace stage (cmd/sandbox-oci/nsenter.c),
# which must run before the Go runtime starts its threads.
if command -v gcc >/dev/null && [[ "${SANDBOX_OCI_CGO:-1}" != 0 ]]; then
	CGO_ENABLED=1 go build -trimpath -tags osusergo,netgo \
		-ldflags "-s -w -linkmode external -extldflags -static -X main.version=$version" \
		-o bin/sandbox-oci ./cmd/sandbox-oci
else
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" \
		-o bin/sandbox-oci ./cmd/sandbox-oci
fi
rm -f cmd/sandbox/sandbox-netstack.bin cmd/sandbox/sandbox-init.bin cmd/sandbox/sandbox-pull.bin
echo "build: bin/sandbox ($version, with sandbox-init, the sandbox-netstack and sandbox-pull helpers embedded), bin/sandbox-oci"
