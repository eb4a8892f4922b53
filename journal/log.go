package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"sandbox/internal/wire"

	"golang.org/x/sys/unix"
)

// Levels are slog levels, carried as values from the call to the handler
// (never as text in the message): a step and a helper's line are
// slog.LevelInfo (printed with -v), a notice (a fact the user should see
// at the end of a run) levelNotice, a warning slog.LevelWarn, an error
// slog.LevelError (notices, warnings and errors are always printed).
const (
	levelStep    = slog.LevelInfo
	levelNotice  = slog.LevelInfo + 2
	levelWarning = slog.LevelWarn
	levelError   = slog.LevelError
)

// Text prefixes of warnings and errors in the text format. Only the text
// handler writes them; Line is the one place that reads them.
const (
	warnText  = "sandbox: warning: "
	errorText = "sandbox: "
)

// Log formats (--log-format).
const (
	LogText = "text"
	LogJSON = "json"
)

// Logger prints and records the lines of one process of a run (stage
// "sandbox": the parent; "init": the sandbox's PID 1). It prints through
// a slog.Handler of its format; it records steps, warnings and fallbacks
// for the report.
type Logger struct {
	mu        sync.Mutex
	w         io.Writer
	h         slog.Handler // textHandler or jsonHandler, on w
	min       slog.LevelVar
	stage     string
	Start     int64 // CLOCK_MONOTONIC ns of the run's start; elapsed times count from it
	steps     []stepRecord
	printed   int // steps printed so far (init learns -v only from its configuration)
	warnings  []string
	fallbacks []wire.Fallback
}

// stepRecord is one setup step, formatted only when printed or reported:
// recording must cost next to nothing on the way to the payload.
type stepRecord struct {
	at     int64 // CLOCK_MONOTONIC ns
	format string
	args   []any
	msg    string
}

func (r *stepRecord) text() string {
	if r.format != "" {
		r.msg, r.format, r.args = fmt.Sprintf(r.format, r.args...), "", nil
	}
	return r.msg
}

// NewLogger logs to w in format (LogText, LogJSON; "" is text) as stage;
// elapsed times count from start. Steps are printed only when verbose.
func NewLogger(w io.Writer, format, stage string, verbose bool, start time.Time) *Logger {
	l := &Logger{w: w, stage: stage, Start: monoOf(start)}
	l.setLocked(format, verbose)
	return l
}

func (l *Logger) setLocked(format string, verbose bool) {
	l.min.Set(levelWarning)
	if verbose {
		l.min.Set(levelStep)
	}
	l.h = newHandler(l.w, format, &l.min)
}

// ValidLogFormat checks a --log-format value.
func ValidLogFormat(f string) error {
	switch f {
	case "", LogText, LogJSON:
		return nil
	}
	return Usagef("--log-format=%s: use text or json", f)
}

// Configure sets what init learns from its configuration, and prints the
// steps recorded before it when verbose.
func (l *Logger) Configure(format string, verbose bool, start int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(format, verbose)
	if start != 0 {
		l.Start = start
	}
	l.flushLocked()
}

// Step records a finished setup step and prints it when verbose.
func (l *Logger) Step(format string, args ...any) {
	now := MonoNow()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps = append(l.steps, stepRecord{at: now, format: format, args: args})
	l.flushLocked()
}

// flushLocked prints the steps not printed yet, when steps are printed.
func (l *Logger) flushLocked() {
	if l.printed == len(l.steps) || l.min.Level() > levelStep { // the handler's Enabled, without the call
		return
	}
	for ; l.printed < len(l.steps); l.printed++ {
		r := &l.steps[l.printed]
		l.printLocked(levelStep, l.stage, r.at, r.text())
	}
}

// Warn prints a warning (always) and records it for the report. msg is the
// bare text: the level is what makes it a warning.
func (l *Logger) Warn(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.warnings = append(l.warnings, msg)
	l.printLocked(levelWarning, l.stage, MonoNow(), msg)
}

// Notice prints a line that is neither a warning nor an error (always),
// such as what the egress policy blocked. msg is the bare text.
func (l *Logger) Notice(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.printLocked(levelNotice, l.stage, MonoNow(), msg)
}

// Detail prints a line of stage when verbose, without recording it as a
// step (an event, such as one blocked connection).
func (l *Logger) Detail(stage, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.min.Level() <= levelStep {
		l.printLocked(levelStep, stage, MonoNow(), msg)
	}
}

// Error prints an error line (always). msg is the bare text.
func (l *Logger) Error(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.printLocked(levelError, l.stage, MonoNow(), msg)
}

// Fail prints err as an error (always): its text as one line, then the
// lines of sandbox's own that a Hinted in its chain puts below it.
func (l *Logger) Fail(err error) {
	msg := err.Error()
	var below []string
	if h := (*Hinted)(nil); errors.As(err, &h) {
		msg = strings.Replace(msg, h.suffix(), "", 1)
		below = h.Below
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.printLocked(levelError, l.stage, MonoNow(), msg, below...)
}

// Fallback records that the run took a second choice, and why. The
// warning that usually goes with it is printed separately.
func (l *Logger) Fallback(area, taken, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fallbacks = append(l.fallbacks, wire.Fallback{Area: area, Taken: taken, Why: why})
}

// Writer is an io.Writer for a helper's diagnostics (stage names it): text
// passes through as it is, JSON becomes one info line per line written.
func (l *Logger) Writer(stage string) io.Writer { return &lineWriter{l: l, stage: stage} }

type lineWriter struct {
	l     *Logger
	stage string
	buf   []byte
}

// maxLine bounds a partial line held back in JSON mode.
const maxLine = 4096

func (w *lineWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	if _, ok := w.l.h.(*textHandler); ok {
		return w.l.w.Write(p)
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 && len(w.buf) < maxLine {
			break
		}
		if i < 0 {
			i = len(w.buf)
		}
		w.l.printLocked(levelStep, w.stage, MonoNow(), string(w.buf[:i]))
		w.buf = w.buf[min(i+1, len(w.buf)):]
	}
	return len(p), nil
}

// printLocked hands one line to the handler, whatever its level: the
// callers decide what is printed (Step through Enabled; a helper's lines
// are printed because the helper was given the Writer).
func (l *Logger) printLocked(level slog.Level, stage string, at int64, msg string, below ...string) {
	r := slog.NewRecord(wallOf(at), level, msg, 0)
	r.AddAttrs(slog.String(keyStage, stage), slog.Float64(keyElapsed, msOf(at-l.Start)))
	if len(below) > 0 {
		r.AddAttrs(slog.Any(keyBelow, below))
	}
	l.h.Handle(context.Background(), r)
}

// initLimits bound init's share of the report, which must fit one message
// (proto.MaxSize) next to the rest.
const (
	maxInitSteps = 512
	maxStepMsg   = 256
)

// InitReport returns what init recorded, for the parent's report.
func (l *Logger) initReport() *wire.InitReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &wire.InitReport{Warnings: l.warnings, Fallbacks: l.fallbacks}
	for i := range l.steps {
		if i == maxInitSteps {
			break
		}
		msg := l.steps[i].text()
		if len(msg) > maxStepMsg {
			msg = msg[:maxStepMsg] + "…"
		}
		r.Steps = append(r.Steps, wire.TimedStep{At: l.steps[i].at, Msg: msg})
	}
	return r
}

// journal returns the parent's steps (as init's wire form) and its
// warnings and fallbacks.
func (l *Logger) journal() ([]wire.TimedStep, []string, []wire.Fallback) {
	l.mu.Lock()
	defer l.mu.Unlock()
	steps := make([]wire.TimedStep, 0, len(l.steps))
	for i := range l.steps {
		steps = append(steps, wire.TimedStep{At: l.steps[i].at, Msg: l.steps[i].text()})
	}
	return steps, l.warnings, l.fallbacks
}

// The parent's and init's steps share one timeline: CLOCK_MONOTONIC, which
// both read alike (the sandbox gets no time namespace). It is read once per
// process; later readings come from Go's own monotonic clock (vDSO).
var clock struct {
	once sync.Once
	wall time.Time
	mono int64
}

func clockBase() {
	clock.once.Do(func() {
		var ts unix.Timespec
		clock.wall = time.Now()
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			clock.mono = ts.Nano()
		}
	})
}

// monoOf is t on CLOCK_MONOTONIC, in ns.
func monoOf(t time.Time) int64 {
	clockBase()
	return clock.mono + int64(t.Sub(clock.wall))
}

func MonoNow() int64 { return monoOf(time.Now()) }

// wallOf is the wall-clock time of a CLOCK_MONOTONIC reading.
func wallOf(mono int64) time.Time {
	clockBase()
	return clock.wall.Add(time.Duration(mono - clock.mono))
}

// msOf is a duration in ns as milliseconds, to the microsecond.
func msOf(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

// DefaultLogger is for a Spec not made by Prepare.
func DefaultLogger(verbose bool, start time.Time) *Logger {
	return NewLogger(os.Stderr, LogText, "sandbox", verbose, start)
}

// Format is the Logger's format, to hand on to init.
func (l *Logger) Format() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.h.(*jsonHandler); ok {
		return LogJSON
	}
	return LogText
}
