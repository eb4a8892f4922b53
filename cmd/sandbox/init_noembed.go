//go:build !embedinit

package main

// Without the embedinit tag (a plain `go build`), init is this binary
// re-executed as sandbox-init (see personalities).
var initELF string
