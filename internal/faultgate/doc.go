// Package faultgate keeps a Go program alive when another process sends
// it the signal of a fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
// SIGSYS, SIGSTKFLT) with a siginfo of its own: rt_sigqueueinfo(2),
// pidfd_send_signal(2) with info, si_code SI_QUEUE or any other code
// below zero.
//
// Go's runtime takes such a signal for the program's own fault unless its
// code is SI_USER or SI_TKILL (kill(2), tgkill(2)), and dies with a stack
// trace, whatever signal.Ignore said. PID 1 of a sandbox is signalled by
// any process inside (the kernel delivers a signal to a namespace's init
// when it has a handler, and the runtime installs one for every signal),
// so one sigqueue(3) ended the sandbox.
//
// Install puts a small handler (assembly, amd64 and arm64) in front of the
// runtime's: what the kernel raised (si_code above zero: init's own fault,
// a seccomp trap) goes on to the runtime, unchanged; what a process sent
// is dropped. Elsewhere Install returns errors.ErrUnsupported.
package faultgate
