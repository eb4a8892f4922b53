//go:build !embedprofile

package main

// Without the embedprofile tag (a plain `go build`), `run --profile` looks
// for a sandbox-profile executable next to sandbox and in PATH.
var profileELF string
