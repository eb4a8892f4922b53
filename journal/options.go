package journal

import (
	"fmt"
)

// UsageError is bad input: the run stops before anything is built.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}
