#!/bin/sh
# The project's tests: check ./hello's output, write test-report.txt.
set -u
status=0
: >test-report.txt
check() { # check EXPECTED [ARG...]
	want="$1"
	shift
	got="$(./hello "$@")"
	if [ "$got" = "$want" ]; then
		echo "ok   ./hello${*:+ $*} -> $got" >>test-report.txt
	else
		echo "FAIL ./hello${*:+ $*} -> $got (want $want)" >>test-report.txt
		status=1
	fi
}
check "hello, world!"
check "hello, sandbox!" sandbox
[ "$status" -eq 0 ] && echo "all tests passed" >>test-report.txt
cat test-report.txt
exit "$status"
