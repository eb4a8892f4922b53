package journal

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// UsageError is bad input: the run stops before anything is built.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef is a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

// Hinted is an error with lines of sandbox's own below it (what to do about
// it). Printed by Logger.Fail, the error's text, which may quote what a
// user, a profile or a file gave, stays one line, its line breaks escaped;
// only the lines below are printed as lines of their own.
type Hinted struct {
	Err   error
	Below []string
}

// WithHint is err with the lines below it.
func WithHint(err error, below ...string) error { return &Hinted{Err: err, Below: below} }

func (h *Hinted) Error() string { return h.Err.Error() + h.suffix() }

func (h *Hinted) Unwrap() error { return h.Err }

func (h *Hinted) suffix() string { return "\n" + strings.Join(h.Below, "\n") }

// UnwrapSyscall is err without its *os.PathError or *os.SyscallError
// wrapper: the bare errno, for messages that name the path themselves.
func UnwrapSyscall(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}
