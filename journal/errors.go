package journal

import (
	"errors"
	"fmt"
	"os"
)

// UsageError is bad input: the run stops before anything is built.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef is a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

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
