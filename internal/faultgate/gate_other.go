//go:build linux && !amd64 && !arm64

package faultgate

import (
	"errors"
	"syscall"
)

// Install has no gate for this architecture: a sent fault signal still
// ends the program.
func Install(sigs ...syscall.Signal) error { return errors.ErrUnsupported }
