#!/usr/bin/env bash
# A persistent dev shell (examples/dev-shell/README.md): a sandbox left
# running in the background, commands run in it one after another, its
# root's changes kept in an --upper directory that a later sandbox reuses.
#
#   examples/dev-shell/run.sh     # sandbox on PATH, or SANDBOX=/path/to/sandbox
#
# Environment:
#   SANDBOX   the sandbox binary (default: `sandbox` on PATH)
#   WORKDIR   where the project and the upper directory go (default: a new
#             directory under ${TMPDIR:-/tmp}); kept for you to look at
#   NAME      the sandbox's name (default: dev-shell-<pid of this script>)
# The sh -c scripts in single quotes expand inside the sandbox.
# shellcheck disable=SC2016
set -euo pipefail

# shellcheck source=examples/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
name="${NAME:-dev-shell-$$}"

work="$(workdir "${TMPDIR:-/tmp}" dev-shell)"
mkdir -p "$work/project"
upper="$work/upper"
echo "work directory: $work"
cd "$work/project"

# Whatever happens below, do not leave the sandbox running.
cleanup() {
	"$sandbox" stop --time 2s "$name" >/dev/null 2>&1 || true
	"$sandbox" rm "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "1. start it in the background"
"$sandbox" run -d --name "$name" --upper "$upper" -- sleep infinity

say "2. exec: install a tool into the root, leave a note in /tmp and the project"
"$sandbox" exec "$name" -- sh -c '
mkdir -p /opt/devtool
echo "devtool 1.0" >/opt/devtool/VERSION
echo "written by the first exec" >/tmp/session-note
echo "edited in the dev shell" >notes.txt
echo "hostname: $(hostname)"
'

say "3. exec again: the same sandbox (same hostname, /tmp and root)"
"$sandbox" exec "$name" -- sh -c '
echo "hostname: $(hostname)"
echo "/opt/devtool/VERSION: $(cat /opt/devtool/VERSION)"
echo "/tmp/session-note: $(cat /tmp/session-note)"
'
echo "on the host, notes.txt: $(cat notes.txt)"
status=0
"$sandbox" exec "$name" -- sh -c 'exit 3' || status=$?
echo "exec's exit status is the command's: $status"

say "4. ps"
"$sandbox" ps

say "5. stop, then remove its state"
"$sandbox" stop "$name"
"$sandbox" rm "$name"
echo "stopped and removed $name"

say "6. a new sandbox with the same --upper"
"$sandbox" run --upper "$upper" -- sh -c '
echo "/opt/devtool/VERSION: $(cat /opt/devtool/VERSION)"
if [ -e /tmp/session-note ]; then echo "/tmp/session-note: still there"; else echo "/tmp/session-note: gone (/tmp is a fresh tmpfs)"; fi
'
echo "on the host, the change is in $upper/upper/opt/devtool/VERSION: $(cat "$upper/upper/opt/devtool/VERSION")"
