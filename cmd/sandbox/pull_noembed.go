//go:build !embedpull

package main

// Without the embedpull tag (a plain `go build`), `image pull` looks for a
// sandbox-pull executable next to sandbox and in PATH.
var pullELF string
