//go:build linux && cgo

package main

// exec's namespace stage (nsenter.c) runs as a constructor, before the Go
// runtime: this file only makes the package use cgo, so that it is built in.

import "C"

// haveNsenter says the stage is in this binary.
const haveNsenter = true
