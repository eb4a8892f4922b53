//go:build linux && cgo

package main

// The holder stage (stage.c) runs as a constructor, before the Go runtime:
// this file only makes the package use cgo, so that stage.c is built in.

import "C"
