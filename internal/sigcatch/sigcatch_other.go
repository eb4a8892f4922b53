//go:build linux && !amd64 && !arm64

package sigcatch

import (
	"errors"
	"os"
)

// Notify has no handler for this architecture: the caller uses os/signal.
func Notify(c chan<- os.Signal, sigs ...os.Signal) error { return errors.ErrUnsupported }

// Stop has nothing to stop here.
func Stop(c chan<- os.Signal) {}
