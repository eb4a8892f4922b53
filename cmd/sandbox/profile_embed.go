//go:build embedprofile

package main

import _ "embed"

// The profile decoder, built by scripts/build.sh just before this binary;
// it runs from a sealed memfd, so `sandbox` stays one file.
//
//go:embed sandbox-profile.bin
var profileELF string
