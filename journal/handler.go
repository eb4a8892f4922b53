package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"sandbox/internal/oneline"
)

// The two --log-format formats as slog handlers. A record's level decides
// how it is printed; its stage and elapsed time travel as attributes
// (keyStage, keyElapsed); the time is the record's. Each line is one Write.

// Attribute keys a Logger puts on every record.
const (
	keyStage   = "stage"
	keyElapsed = "elapsed_ms"
	keyBelow   = "below" // []string: an error's lines of sandbox's own (Hinted)
)

func newHandler(w io.Writer, format string, min slog.Leveler) slog.Handler {
	if format == LogJSON {
		return &jsonHandler{lineHandler{w: w, min: min}}
	}
	return &textHandler{lineHandler{w: w, min: min}}
}

// lineHandler is what both formats share: the writer, the lowest level
// printed, and the attributes given by WithAttrs.
type lineHandler struct {
	w     io.Writer
	min   slog.Leveler
	attrs []slog.Attr
}

func (h *lineHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.min.Level()
}

// with is h with attrs added; groups are not kept: a line has fixed
// fields, and only keyStage and keyElapsed are shown.
func (h lineHandler) with(attrs []slog.Attr) lineHandler {
	h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)
	return h
}

// fields are the stage and elapsed ms of a record (the record's own
// attributes win over WithAttrs').
func (h *lineHandler) fields(r slog.Record) (stage string, elapsed float64) {
	set := func(a slog.Attr) bool {
		v := a.Value.Resolve()
		switch {
		case a.Key == keyStage:
			stage = v.String()
		case a.Key == keyElapsed && v.Kind() == slog.KindFloat64:
			elapsed = v.Float64()
		}
		return true
	}
	for _, a := range h.attrs {
		set(a)
	}
	r.Attrs(set)
	return stage, elapsed
}

// below are the lines a record carries below its message (keyBelow).
func below(r slog.Record) (lines []string) {
	r.Attrs(func(a slog.Attr) bool {
		if l, ok := a.Value.Any().([]string); ok && a.Key == keyBelow {
			lines = l
		}
		return true
	})
	return lines
}

// textHandler prints the text format: `sandbox[STAGE] ELAPSEDms MSG` for
// steps, `sandbox: warning: MSG` for warnings, `sandbox: MSG` for errors.
type textHandler struct{ lineHandler }

// maxMessage bounds one message: an error may quote the value it refuses,
// however long (a 100 KB -p value was printed twice in one line).
const maxMessage = 4096

// bounded is msg cut at maxMessage bytes (on a character's start), saying
// how much was left out.
func bounded(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes more)", msg[:cut], len(msg)-cut)
}

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	// A message may quote a value from the command line, a profile, a
	// variable or a file: its control characters, line breaks included,
	// are escaped (JSON escapes them itself), so that it is one line and
	// cannot print one that looks like sandbox's. Only an error's own
	// lines below it (Hinted) make more lines.
	msg := oneline.Escape(bounded(r.Message))
	for _, l := range below(r) {
		msg += "\n" + oneline.Escape(bounded(l))
	}
	var b []byte
	switch {
	case r.Level >= slog.LevelError:
		b = append(append([]byte(errorText), msg...), '\n')
	case r.Level >= slog.LevelWarn:
		b = append(append([]byte(warnText), msg...), '\n')
	case r.Level >= levelNotice:
		b = append(append([]byte(errorText), msg...), '\n')
	default:
		stage, elapsed := h.fields(r)
		b = fmt.Appendf(nil, "sandbox[%s] %8.3fms %s\n", stage, elapsed, msg)
	}
	_, err := h.w.Write(b)
	return err
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &textHandler{h.with(attrs)}
}

func (h *textHandler) WithGroup(string) slog.Handler { return h }

// jsonHandler prints one logLine per record.
type jsonHandler struct{ lineHandler }

// logLine is one line of --log-format=json (docs/cli.md, Logging).
type logLine struct {
	Time      string  `json:"time"`
	Level     string  `json:"level"`
	Stage     string  `json:"stage"`
	ElapsedMS float64 `json:"elapsed_ms"`
	Msg       string  `json:"msg"`
}

func (h *jsonHandler) Handle(_ context.Context, r slog.Record) error {
	stage, elapsed := h.fields(r)
	msg := r.Message
	if l := below(r); len(l) > 0 {
		msg += "\n" + strings.Join(l, "\n")
	}
	b, err := json.Marshal(logLine{Time: r.Time.Format(time.RFC3339Nano), Level: levelName(r.Level), Stage: stage,
		ElapsedMS: elapsed, Msg: bounded(msg)})
	if err != nil {
		return fmt.Errorf("encoding a log line: %w", err)
	}
	_, err = h.w.Write(append(b, '\n'))
	return err
}

func (h *jsonHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &jsonHandler{h.with(attrs)}
}

func (h *jsonHandler) WithGroup(string) slog.Handler { return h }

// levelName is a level as the JSON format names it.
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= levelNotice:
		return "notice"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}
