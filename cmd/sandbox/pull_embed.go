//go:build embedpull

package main

import _ "embed"

// The registry client, built by scripts/build.sh just before this binary;
// it runs from a sealed memfd, so `sandbox` stays one file.
//
//go:embed sandbox-pull.bin
var pullELF string
