#!/bin/sh
# The project's build: fetch its dependency from the registry ($FETCH_URL),
# run each vendored package's install script (npm-style; one of them is
# compromised), then write dist/bundle.txt.
set -eu
mkdir -p deps dist
echo "fetching $FETCH_URL"
curl -fsS --max-time 20 -o deps/dependency "$FETCH_URL"
echo "fetched deps/dependency ($(wc -c <deps/dependency) bytes): $(head -n 1 deps/dependency)"
for script in vendor/*/install.sh; do
	echo "running $script"
	sh "$script" || echo "$script failed (status $?)"
done
{
	echo "# bundle built from src/ with deps/dependency"
	cat src/hello.txt
	sh vendor/left-padder/index.sh 30 "padded by left-padder"
} >dist/bundle.txt
echo "built dist/bundle.txt"
