//go:build embednetstack

package main

import _ "embed"

// The builtin network driver's helper, built by scripts/build.sh just before
// this binary; it runs from a sealed memfd, so `sandbox` stays one file.
//
//go:embed sandbox-netstack.bin
var netstackELF string
