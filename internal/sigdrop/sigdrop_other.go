//go:build linux && !amd64 && !arm64

package sigdrop

import (
	"errors"
	"syscall"
)

// Faults has no gate for this architecture: a sent fault signal still
// ends the program.
func Faults(sigs ...syscall.Signal) error { return errors.ErrUnsupported }

// All has no handler for this architecture: the caller catches sigs with
// os/signal instead.
func All(sigs ...syscall.Signal) error { return errors.ErrUnsupported }
