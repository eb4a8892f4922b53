//go:build !linux

package bpf

import "errors"

var errNotLinux = errors.New("seccomp: only on Linux")

// ErrNoNewPrivs is returned by Install when no_new_privs is not set.
var ErrNoNewPrivs = errors.New("seccomp: no_new_privs is not set on this thread")

// SetNoNewPrivs fails: seccomp is Linux only.
func SetNoNewPrivs() error { return errNotLinux }

// Install fails (except for a nil program): seccomp is Linux only.
func Install(p *Program) error {
	if p == nil {
		return nil
	}
	return errNotLinux
}

// InstallPrivileged fails like Install.
func InstallPrivileged(p *Program) error { return Install(p) }
