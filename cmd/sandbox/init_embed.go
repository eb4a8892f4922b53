//go:build embedinit

package main

import _ "embed"

// PID 1 of every sandbox (cmd/sandbox-init), built by scripts/build.sh just
// before this binary; it runs from a sealed memfd, so `sandbox` stays one
// file and init starts as a small program, not as the whole CLI.
//
//go:embed sandbox-init.bin
var initELF string
