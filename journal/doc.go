// Package journal is what a run tells the user: the Logger (sandbox's own
// lines on stderr, quiet by default, every step with -v, text or JSON, on
// one CLOCK_MONOTONIC clock shared by the parent and init; levels are
// slog levels, printed by a log/slog handler per format) and the run
// report (--report): its types, how the parent's and init's shares are
// merged, and the exit cause.
//
// It imports internal/wire (init's share of the report travels in its
// messages) and a few mechanism types; no orchestration package.
package journal
