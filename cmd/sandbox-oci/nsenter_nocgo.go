//go:build !(linux && cgo)

package main

// Built without cgo, the binary has no namespace stage: exec refuses.
const haveNsenter = false
