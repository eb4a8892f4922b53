package seccomp

import "sandbox/seccomp/bpf"

// ErrNoNewPrivs is returned by Install when no_new_privs is not set on the
// calling thread (bpf.ErrNoNewPrivs).
var ErrNoNewPrivs = bpf.ErrNoNewPrivs

// SetNoNewPrivs is bpf.SetNoNewPrivs.
func SetNoNewPrivs() error { return bpf.SetNoNewPrivs() }

// Install is bpf.Install: it loads the filter on every thread of the
// process (TSYNC); nil is unconfined.
func Install(p *Program) error { return bpf.Install(p) }

// InstallPrivileged is bpf.InstallPrivileged: Install without requiring
// no_new_privs, for a caller with CAP_SYS_ADMIN.
func InstallPrivileged(p *Program) error { return bpf.InstallPrivileged(p) }
