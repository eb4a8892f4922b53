#!/usr/bin/env bash
# A build whose third-party install script is malicious, run in a sandbox
# with default flags (examples/untrusted-build/README.md). The script tries
# to steal an SSH key, phone home, write outside the project and persist in
# $HOME; afterwards this script checks on the host that none of it got out
# and that the build's output did. Exit status 0 only if so.
#
#   examples/untrusted-build/run.sh   # sandbox on PATH, or SANDBOX=/path/to/sandbox
#
# Environment:
#   SANDBOX   the sandbox binary (default: `sandbox` on PATH)
#   WORKDIR   a directory under /tmp for the project's copy, the fake HOME and
#             the listener's files (default: a new /tmp/sandbox-untrusted-build.*);
#             kept for you to look at
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=examples/lib.sh
. "$here/../lib.sh"
need python3 curl

work="$(workdir /tmp untrusted-build)"
# The fake HOME must be where the sandbox shows an empty directory, as it
# does for your real home: /tmp is a fresh tmpfs inside.
case "$work" in
/tmp/?*) ;;
*) die "WORKDIR=$work is not under /tmp: the fake HOME in it would be visible inside" ;;
esac
rm -rf "${work:?}/project" "${work:?}/home" "${work:?}/outside.txt" "${work:?}/listener."*
cp -R "$here/project" "$work/project"
echo "work directory: $work"

say "a fake HOME with an SSH key (your real ~/.ssh is never touched)"
home="$work/home"
mkdir -p "$home/.ssh"
chmod 700 "$home/.ssh"
secret="FAKE-KEY-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\n%s\n-----END OPENSSH PRIVATE KEY-----\n' "$secret" >"$home/.ssh/id_ed25519"
chmod 600 "$home/.ssh/id_ed25519"
printf '# the fake HOME'"'"'s .bashrc\n' >"$home/.bashrc"
bashrc_before="$(cat "$home/.bashrc")"
echo "HOME=$home, key $home/.ssh/id_ed25519"

say "the attacker's listener on the host's 127.0.0.1"
# Counts connections (listener.count) and keeps what they sent
# (listener.data); runs until this script ends.
python3 -u -c '
import os, socket, sys
port_file, count_file, data_file = sys.argv[1:4]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
open(count_file, "w").write("0\n")
open(port_file + ".new", "w").write("%d\n" % s.getsockname()[1])
os.rename(port_file + ".new", port_file)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    open(count_file, "w").write("%d\n" % n)
    c.settimeout(3)
    try:
        data = c.recv(65536)
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nthanks\n")
    except OSError:
        data = b""
    open(data_file, "ab").write(data)
    c.close()
' "$work/listener.port" "$work/listener.count" "$work/listener.data" 2>"$work/listener.log" &
listener=$!
trap 'kill "$listener" 2>/dev/null || true; wait "$listener" 2>/dev/null || true' EXIT
wait_until "$listener" test -s "$work/listener.port" ||
	die "the listener did not start: $(cat "$work/listener.log")"
port="$(cat "$work/listener.port")"
echo "listening on 127.0.0.1:$port"
# The compromised package "hard-codes" that address.
sed -i "s/@EXFIL@/127.0.0.1:$port/" "$work/project/vendor/left-padder/install.sh"

say "the build, in a sandbox with default flags"
cd "$work/project"
HOME="$home" "$sandbox" run -- ./build.sh

say "what reached the host"
leaks=0
check() { # check OK|LEAK WHAT
	printf '%-5s %s\n' "$1" "$2"
	[[ "$1" == OK ]] || leaks=$((leaks + 1))
}
if grep -rqF -- "$secret" "$work/project" "$work/listener.data" 2>/dev/null; then
	check LEAK "the key's text is in the project or the listener's data"
else
	check OK "the key's text is in no file of the project and was not received"
fi
count="$(cat "$work/listener.count")"
if [[ "$count" == 0 ]]; then
	check OK "the listener on 127.0.0.1:$port accepted 0 connections"
else
	check LEAK "the listener on 127.0.0.1:$port accepted $count connections"
fi
# Control: the listener does count, a connection from the host makes it
# one more.
curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$port/" || true
counted() { [[ "$(cat "$work/listener.count")" != "$count" ]]; }
wait_until "$listener" counted || true
if [[ "$(cat "$work/listener.count")" == $((count + 1)) ]]; then
	check OK "control: a connection from the host itself is counted"
else
	check LEAK "control: the listener did not count a connection from the host ($(cat "$work/listener.count"))"
fi
for f in "$work/outside.txt" /var/tmp/left-padder.sh; do
	if [[ -e "$f" ]]; then
		check LEAK "$f exists"
	else
		check OK "$f does not exist"
	fi
done
if [[ "$(cat "$home/.bashrc")" == "$bashrc_before" ]]; then
	check OK "$home/.bashrc is unchanged"
else
	check LEAK "$home/.bashrc was changed"
fi
if grep -qx "the build output survives the sandbox" dist/bundle.txt 2>/dev/null; then
	check OK "the build output $work/project/dist/bundle.txt is there"
else
	check LEAK "the build output $work/project/dist/bundle.txt is missing"
fi
if [[ "$leaks" -ne 0 ]]; then
	echo "$leaks check(s) failed"
	exit 1
fi
echo "all attempts failed or were discarded; the build output survived"
