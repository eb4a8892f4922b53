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
// of signals not yet read, is dropped). Stop puts the runtime's handler
// back. The handler keeps the runtime's flags (SA_ONSTACK: it runs on
// the thread's signal stack; SA_RESTART), restorer and mask (every signal
// blocked while it runs).
//
// Only where the Go runtime has a handler (a signal ignored when the
// program started keeps SIG_IGN; callersig.ForwardedByCaller leaves those
// out), on amd64 and arm64; elsewhere Notify returns
// errors.ErrUnsupported, and the caller uses os/signal. Do not ask
// os/signal for a signal caught here while it is: signal.Ignore or Reset
// would put another handler in place of this one.
package sigcatch
