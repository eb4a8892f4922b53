// Package sigdrop installs, in front of Go's runtime, signal handlers for
// a process that any other may signal: PID 1 of a sandbox, which every
// process inside may signal (the kernel delivers a signal to a
// namespace's init when it has a handler, and the runtime installs one
// for every signal).
//
// Faults gates the signals of a fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
// SIGTRAP, SIGSYS, SIGSTKFLT): what the kernel raised (si_code above
// zero: the program's own fault, a seccomp trap) goes on to the runtime's
// handler, unchanged; what a process sent is dropped. The runtime takes
// any such signal whose code is not SI_USER or SI_TKILL (rt_sigqueueinfo,
// pidfd_send_signal with a siginfo: SI_QUEUE) for a fault of its own and
// dies with a stack trace, whatever signal.Ignore said.
//
// All drops every one of its signals with a handler that returns: for the
// signals whose default in the runtime ends the program (SIGHUP, SIGINT,
// SIGTERM, SIGQUIT, SIGABRT), without os/signal, whose every signal
// costs a round trip to the runtime's signal thread at a start (and the
// first one that thread's start), and without SIG_IGN, which a child
// would keep across its exec (a caught signal is reset to its default).
//
// The handlers are assembly (amd64, arm64), as no Go function can be a
// signal handler without the runtime; elsewhere both return
// errors.ErrUnsupported.
package sigdrop
