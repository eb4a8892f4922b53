#!/usr/bin/env bash
# An untrusted build that may reach only its registry
# (examples/registry-only/README.md): `sandbox run --allow-host
# REGISTRY:80,443 -- ./build.sh`. The build fetches its dependency from the
# registry; a compromised install script tries to phone home by name, by
# DNS exfiltration, by an address literal and by domain fronting. This
# script checks that the fetch worked, that every phone-home failed, and
# that sandbox's exit summary and --report list each one. Exit status 0
# only if so.
#
#   examples/registry-only/run.sh   # sandbox on PATH, or SANDBOX=/path/to/sandbox
#
# Environment:
#   SANDBOX        the sandbox binary (default: `sandbox` on PATH)
#   WORKDIR        where the project's copy and the report go (default: a new
#                  /tmp/sandbox-registry-only.*); kept for you to look at
#   REGISTRY_HOST  the registry, the one name allowed (default: deb.debian.org)
#   REGISTRY_PATH  what the build fetches from it (default:
#                  /debian/dists/bookworm/Release.gpg, 1.7 kB)
#   DNS            the upstream DNS server for the sandbox's resolver
#                  (default: none given, the host's /etc/resolv.conf servers)
#   EVIL_HOST      the attacker's name (default: telemetry.evil.example)
#   EVIL_DOMAIN    the domain the data is exfiltrated under (default: evil.example)
#   EVIL_ADDR      the attacker's address literal (default: 198.51.100.7, TEST-NET-2)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/lib.sh
. "$here/../lib.sh"
need python3

REGISTRY_HOST="${REGISTRY_HOST:-deb.debian.org}"
REGISTRY_PATH="${REGISTRY_PATH:-/debian/dists/bookworm/Release.gpg}"
DNS="${DNS:-}"
EVIL_HOST="${EVIL_HOST:-telemetry.evil.example}"
EVIL_DOMAIN="${EVIL_DOMAIN:-evil.example}"
EVIL_ADDR="${EVIL_ADDR:-198.51.100.7}"

work="$(workdir /tmp registry-only)"
rm -rf "${work:?}/project" "${work:?}/report.json" "${work:?}/sandbox.err" "${work:?}/build.out"
cp -R "$here/project" "$work/project"
echo "work directory: $work"
# The project's secret, the loot: random, so that it is recognisable.
printf 's3cr3t-%s\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$work/project/src/secret.txt"
loot="$(head -c 24 "$work/project/src/secret.txt" | od -An -tx1 | tr -d ' \n')"

say "the build, in a sandbox that may reach only $REGISTRY_HOST (ports 80 and 443)"
args=(run --allow-host "$REGISTRY_HOST:80,443" --report "$work/report.json")
if [[ -n "$DNS" ]]; then
	args+=(--dns "$DNS")
fi
echo "sandbox ${args[*]} -- ./build.sh"
cd "$work/project"
status=0
# What build.sh and the install script read (the environment passes in).
export FETCH_URL="http://$REGISTRY_HOST$REGISTRY_PATH" REGISTRY_HOST EVIL_HOST EVIL_DOMAIN EVIL_ADDR
"$sandbox" "${args[@]}" -- ./build.sh 2>"$work/sandbox.err" | tee "$work/build.out" || status=$?
echo "exit status $status"

say "sandbox's stderr (its exit summary)"
cat "$work/sandbox.err"

say "the report's network.blocked"
python3 - "$work/report.json" <<'EOF' || true
import json, sys
b = json.load(open(sys.argv[1]))["network"]["blocked"]
print("count %d, dropped %d" % (b["count"], b["dropped"]))
for r in b["records"]:
    print("%-4s %s:%d %s: %s" % (r["proto"], r["dst"], r["port"], r.get("name", "-"), r["reason"]))
EOF

say "checks"
fails=0
check() { # check OK|FAIL WHAT
	printf '%-5s %s\n' "$1" "$2"
	[[ "$1" == OK ]] || fails=$((fails + 1))
}
if [[ "$status" == 0 && -s deps/dependency && -s dist/bundle.txt ]]; then
	check OK "the fetch from $REGISTRY_HOST worked (deps/dependency, $(wc -c <deps/dependency) bytes) and the build finished"
else
	check FAIL "the build failed (status $status) or deps/dependency / dist/bundle.txt is missing"
fi

failed="$(grep -c '^\[attack\] .* failed: ' "$work/build.out" || true)"
through="$(grep -c '^\[attack\] .*: GOT THROUGH: ' "$work/build.out" || true)"
if [[ "$failed" == 5 && "$through" == 0 ]]; then
	check OK "all 5 phone-home attempts failed inside"
else
	check FAIL "of 5 phone-home attempts, $failed failed and $through got through"
fi
summary="$(grep -E '^sandbox: blocked [0-9]+ attempts?: ' "$work/sandbox.err" || true)"
if [[ -n "$summary" ]]; then
	check OK "sandbox printed its exit summary"
else
	check FAIL "no 'sandbox: blocked N attempts: …' line on sandbox's stderr"
fi
# Each attempt: what the summary names it, and the report's record
# (proto, destination or name, a word of its reason).
while IFS='|' read -r what item proto dst name reason; do
	if [[ "$summary" == *"$item"* ]]; then
		check OK "summary lists $item ($what)"
	else
		check FAIL "summary lacks $item ($what)"
	fi
	if python3 - "$work/report.json" "$proto" "$dst" "$name" "$reason" <<'EOF'; then
import json, sys
path, proto, dst, name, reason = sys.argv[1:]
recs = json.load(open(path))["network"]["blocked"]["records"]
ok = any(r["proto"] == proto and (not dst or "%s:%d" % (r["dst"], r["port"]) == dst) and
         (not name or r.get("name") == name) and reason in r["reason"] for r in recs)
sys.exit(0 if ok else 1)
EOF
		check OK "report records $proto ${dst:-$name} (${reason})"
	else
		check FAIL "report has no $proto record for ${dst:-$name} with '$reason'"
	fi
done <<EOF
by name|$EVIL_HOST (dns)|dns||$EVIL_HOST|no rule
DNS exfiltration|$loot.$EVIL_DOMAIN (dns)|dns||$loot.$EVIL_DOMAIN|no rule
address literal|$EVIL_ADDR:80|tcp|$EVIL_ADDR:80||no rule
fronting, Host|$EVIL_HOST:80|tcp||$EVIL_HOST|Host
fronting, SNI|$EVIL_HOST:443|tcp||$EVIL_HOST|SNI
EOF
if python3 - "$work/report.json" "$REGISTRY_HOST" <<'EOF'; then
import json, sys
recs = json.load(open(sys.argv[1]))["network"]["blocked"]["records"]
sys.exit(1 if any(r.get("name") == sys.argv[2] and r["proto"] == "dns" for r in recs) else 0)
EOF
	check OK "nothing of $REGISTRY_HOST's own was blocked"
else
	check FAIL "the report blocked a lookup of $REGISTRY_HOST"
fi
if [[ "$fails" -ne 0 ]]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "the fetch from $REGISTRY_HOST worked; every phone-home was blocked and reported"
