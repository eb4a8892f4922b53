#!/bin/sh
# The project's build, npm-style: first every dependency's install script
# (vendor/*/install.sh), then the project's own step, which writes
# dist/bundle.txt.
set -eu
for script in vendor/*/install.sh; do
	echo "running $script"
	sh "$script" || echo "$script failed (status $?)"
done
mkdir -p dist
{
	echo "# bundle built from src/"
	cat src/*.txt
	sh vendor/left-padder/index.sh 30 "padded by left-padder"
} >dist/bundle.txt
echo "built dist/bundle.txt ($(wc -l <dist/bundle.txt) lines)"
