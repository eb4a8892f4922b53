//go:build !embednetstack

package main

// Without the embednetstack tag (a plain `go build`), --net=builtin looks
// for a sandbox-netstack executable next to sandbox and in PATH.
var netstackELF string
