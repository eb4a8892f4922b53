#!/bin/sh
# Download and unpack the dependencies listed in deps.txt ("NAME VERSION"
# per line) from $REGISTRY_URL/NAME-VERSION.tar.gz into deps/. The only
# step of the job that needs the network.
set -eu
: "${REGISTRY_URL:?set REGISTRY_URL to the base URL of the registry}"
mkdir -p deps
while read -r name version; do
	[ -n "$name" ] || continue
	url="$REGISTRY_URL/$name-$version.tar.gz"
	echo "fetching $url"
	curl -fsS --max-time 30 -o "deps/$name-$version.tar.gz" "$url"
	# As root inside, tar would keep the archive's owners: uid 1000 in the
	# tarball is a subordinate id outside, and the job's user could not
	# delete what it unpacked into the project. The files are the job's.
	tar --no-same-owner -xzf "deps/$name-$version.tar.gz" -C deps
	rm "deps/$name-$version.tar.gz"
done < deps.txt
echo "dependencies in deps/: $(ls deps)"
