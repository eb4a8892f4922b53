// Package sigcatch catches signals into a channel as os/signal's Notify
// does, without os/signal's cost at a program's start: Notify enables
// each signal by a round trip to the Go runtime's signal-mask thread,
// which the first one starts (~1 ms of every `sandbox run` and `sandbox
// exec` here, for the ~13 signals they pass on to the sandbox).
//
// Here a handler in assembly takes the runtime's place for the caught
// signals: it writes the signal's number, one byte, to a pipe that is
// never closed and returns; a goroutine reads the pipe and sends each
// signal to its channel without blocking, as os/signal does (the pipe's
// write end does not block either: a signal that finds it full, 64 KiB
// of signals not yet read, is dropped). Stop puts back the action it
// replaced. The handler keeps the runtime's flags (SA_ONSTACK: it runs on
// the thread's signal stack; SA_RESTART), restorer and mask (every signal
// blocked while it runs).
//
// Where the Go runtime has a handler, or none yet (SIG_DFL: the job-control
// signals SIGTSTP, SIGCONT, SIGTTIN and SIGTTOU until os/signal asks for
// them; the relay then takes the flags, restorer and mask of the runtime's
// handler of SIGURG, and Stop puts SIG_DFL back); not a signal ignored
// when the program started, which keeps SIG_IGN (callersig.ForwardedByCaller
// leaves those out), nor SIGURG, the runtime's preemption signal. The relay
// writes only in the process that installed it (by its pid): a child
// forked from it keeps the handler of a signal caught at SIG_DFL until
// its exec (the runtime resets in the child only the handlers it
// installed itself), and a signal sent to the child then must not come
// out of the parent's channel. A PID 1 cannot tell so a child made in a
// new PID namespace, also PID 1 there: it catches none at SIG_DFL. On
// amd64 and arm64; elsewhere Notify returns
// errors.ErrUnsupported, and the caller uses os/signal. Do not ask
// os/signal for a signal caught here while it is: signal.Ignore or Reset
// would put another handler in place of this one.
package sigcatch
