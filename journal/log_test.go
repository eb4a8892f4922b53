package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sandbox/internal/wire"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// logLines logs the same things in format and returns the output lines.
func logLines(t *testing.T, format string, verbose bool) []string {
	t.Helper()
	var buf bytes.Buffer
	l := NewLogger(&buf, format, "sandbox", verbose, time.Now().Add(-5*time.Millisecond))
	l.Step("step %d", 1)
	l.Warn("made elsewhere")
	l.Warn("plain")
	l.Warn("by convention")
	l.Error("an error by convention")
	l.Error("failed: x")
	w := l.Writer("net")
	fmt.Fprint(w, "helper line 1\nhelper ")
	fmt.Fprint(w, "line 2\n")
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func TestLoggerText(t *testing.T) {
	got := logLines(t, LogText, true)
	want := []*regexp.Regexp{
		regexp.MustCompile(`^sandbox\[sandbox\] +[0-9]+\.[0-9]{3}ms step 1$`),
		regexp.MustCompile(`^sandbox: warning: made elsewhere$`),
		regexp.MustCompile(`^sandbox: warning: plain$`),
		regexp.MustCompile(`^sandbox: warning: by convention$`),
		regexp.MustCompile(`^sandbox: an error by convention$`),
		regexp.MustCompile(`^sandbox: failed: x$`),
		regexp.MustCompile(`^helper line 1$`),
		regexp.MustCompile(`^helper line 2$`),
	}
	if len(got) != len(want) {
		t.Fatalf("lines %q", got)
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Errorf("line %d %q does not match %s", i, got[i], re)
		}
	}
	// Quiet: steps are recorded, not printed.
	if got := logLines(t, LogText, false); len(got) != 7 || strings.Contains(strings.Join(got, "\n"), "step 1") {
		t.Errorf("not verbose: %q", got)
	}
}

func TestLoggerJSON(t *testing.T) {
	got := logLines(t, LogJSON, true)
	want := []struct{ level, stage, msg string }{
		{"info", "sandbox", "step 1"},
		{"warning", "sandbox", "made elsewhere"},
		{"warning", "sandbox", "plain"},
		{"warning", "sandbox", "by convention"},
		{"error", "sandbox", "an error by convention"},
		{"error", "sandbox", "failed: x"},
		{"info", "net", "helper line 1"},
		{"info", "net", "helper line 2"},
	}
	if len(got) != len(want) {
		t.Fatalf("lines %q", got)
	}
	for i, w := range want {
		var l logLine
		dec := json.NewDecoder(strings.NewReader(got[i]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d %q: %v", i, got[i], err)
		}
		ts, err := time.Parse(time.RFC3339Nano, l.Time)
		if l.Level != w.level || l.Stage != w.stage || l.Msg != w.msg || err != nil || time.Since(ts) > time.Minute ||
			l.ElapsedMS < 5 || l.ElapsedMS > 60e3 {
			t.Errorf("line %d: %+v (time: %v), want %+v, elapsed >= 5 ms", i, l, err, w)
		}
	}
}

// TestLoggerInit: init learns the format, -v and the run's start from its
// configuration; steps recorded before are printed then, on the parent's
// timeline.
func TestLoggerInit(t *testing.T) {
	var buf bytes.Buffer
	start := time.Now().Add(-time.Second)
	l := NewLogger(&buf, LogText, "init", false, time.Now())
	l.Step("early")
	if buf.Len() != 0 {
		t.Fatalf("printed before the configuration: %q", buf.String())
	}
	l.Configure(LogJSON, true, monoOf(start))
	l.Step("late %s", "step")
	var lines []logLine
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var ll logLine
		if err := json.Unmarshal([]byte(s), &ll); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		lines = append(lines, ll)
	}
	if len(lines) != 2 || lines[0].Msg != "early" || lines[1].Msg != "late step" || lines[0].Stage != "init" ||
		lines[0].ElapsedMS < 1000 || lines[1].ElapsedMS < lines[0].ElapsedMS {
		t.Errorf("lines %+v: want early then late, from ~1000 ms", lines)
	}
	r := l.initReport()
	if len(r.Steps) != 2 || r.Steps[0].Msg != "early" || r.Steps[1].At < r.Steps[0].At {
		t.Errorf("init's report steps %+v", r.Steps)
	}
}

// TestLoggerInitReportBounded: init's share always fits one message.
func TestLoggerInitReportBounded(t *testing.T) {
	l := NewLogger(&bytes.Buffer{}, LogText, "init", false, time.Now())
	long := strings.Repeat("x", 10000)
	for i := 0; i < 2*maxInitSteps; i++ {
		l.Step("%s", long)
	}
	b, err := json.Marshal(wire.ChildStarted{PID: 2, Init: l.initReport()})
	if err != nil || len(b) > 192<<10 {
		t.Errorf("%d bytes (%v): over a message", len(b), err)
	}
}

func TestMonoClock(t *testing.T) {
	a := time.Now()
	time.Sleep(2 * time.Millisecond)
	b := time.Now()
	if d := monoOf(b) - monoOf(a); d < int64(2*time.Millisecond) || d > int64(time.Second) {
		t.Errorf("monoOf difference %d ns", d)
	}
	if w := wallOf(monoOf(a)); w.Sub(a).Abs() > time.Millisecond {
		t.Errorf("wallOf(monoOf(t)) = %v, t = %v", w, a)
	}
}

// BenchmarkLoggerStep is what recording a step costs when not verbose (on
// init's way to the payload, ~80 steps a run).
func BenchmarkLoggerStep(b *testing.B) {
	l := NewLogger(&bytes.Buffer{}, LogText, "init", false, time.Now())
	for b.Loop() {
		l.Step("overlay %s on %s", "/usr", "/usr")
		if len(l.steps) > 1000 {
			l.steps = l.steps[:0]
		}
	}
}

// TestLoggerLevelsAreValues: a warning's text carries its prefix exactly
// once (text) or not at all (JSON, the report), whichever way it came in,
// and the JSON level is the record's level, never read from the text.
func TestLoggerLevelsAreValues(t *testing.T) {
	var text, js bytes.Buffer
	for _, c := range []struct {
		buf    *bytes.Buffer
		format string
	}{{&text, LogText}, {&js, LogJSON}} {
		l := NewLogger(c.buf, c.format, "sandbox", false, time.Now())
		l.Warn("plain")
		l.Warn("old style")
		l.Warn("error: looks like an error")
		l.Error("warning: looks like a warning")
		fmt.Fprintln(l.Writer("net"), "sandbox: warning: a helper's own line")
		if _, warnings, _ := l.journal(); strings.Join(warnings, "|") != "plain|old style|error: looks like an error" {
			t.Errorf("%s: recorded warnings %q", c.format, warnings)
		}
	}
	wantText := "sandbox: warning: plain\nsandbox: warning: old style\nsandbox: warning: error: looks like an error\n" +
		"sandbox: warning: looks like a warning\nsandbox: warning: a helper's own line\n"
	if text.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", text.String(), wantText)
	}
	if n := strings.Count(text.String(), "sandbox: warning: sandbox:"); n != 0 {
		t.Errorf("a prefix twice:\n%s", text.String())
	}
	want := []struct{ level, stage, msg string }{
		{"warning", "sandbox", "plain"},
		{"warning", "sandbox", "old style"},
		{"warning", "sandbox", "error: looks like an error"},
		{"error", "sandbox", "warning: looks like a warning"},
		{"info", "net", "sandbox: warning: a helper's own line"},
	}
	got := strings.Split(strings.TrimSuffix(js.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("json lines %q", got)
	}
	for i, w := range want {
		var ll logLine
		if err := json.Unmarshal([]byte(got[i]), &ll); err != nil || ll.Level != w.level || ll.Stage != w.stage || ll.Msg != w.msg {
			t.Errorf("json line %d %q (%v): want %+v", i, got[i], err, w)
		}
	}
}

// TestHandlers: the formats are slog handlers: a slog.Logger on one prints
// the project's lines, levels and fields included.
func TestHandlers(t *testing.T) {
	var buf bytes.Buffer
	var min slog.LevelVar
	min.Set(slog.LevelWarn)
	lg := slog.New(newHandler(&buf, LogJSON, &min)).With(keyStage, "init")
	lg.Info("not printed: below the level")
	lg.Warn("careful", keyElapsed, 1.5)
	lg = slog.New(newHandler(&buf, LogText, &min))
	lg.Error("broken")
	min.Set(slog.LevelInfo)
	lg.Info("a step", keyStage, "init", keyElapsed, 12.3)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	var ll logLine
	if len(lines) != 3 || json.Unmarshal([]byte(lines[0]), &ll) != nil || ll.Level != "warning" || ll.Stage != "init" ||
		ll.ElapsedMS != 1.5 || ll.Msg != "careful" || lines[1] != "sandbox: broken" || lines[2] != "sandbox[init]   12.300ms a step" {
		t.Errorf("lines %q", lines)
	}
}

// TestNoLevelInMessageText: no message is made with its level as text
// ("sandbox: warning: …"): only journal's text handler writes the prefix.
func TestNoLevelInMessageText(t *testing.T) {
	allowed := map[string]bool{"journal": true}
	n := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		if d.IsDir() {
			if allowed[rel] || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || allowed[rel] {
			return nil
		}
		if n++; n > 10000 {
			return fmt.Errorf("over %d files", n)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(`"sandbox: warning: `)) {
			t.Errorf("%s makes a warning with its prefix as text: pass the bare text to Logger.Warn", rel)
		}
		return nil
	})
	if err != nil || n < 50 {
		t.Fatalf("walking the module: %v (%d files)", err, n)
	}
}

// TestMessagesBounded: a message quoting a huge value (a 100 KB --publish
// value was printed twice, 200 KB in one line) is cut, saying how much was
// left out, in both formats; a short one is untouched.
func TestMessagesBounded(t *testing.T) {
	long := "--publish " + strings.Repeat("é", 50000) + ": not a port"
	for _, format := range []string{LogText, LogJSON} {
		var buf bytes.Buffer
		lg := NewLogger(&buf, format, "sandbox", false, time.Now())
		lg.Error(long)
		lg.Error("short")
		out := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(out) != 2 || len(out[0]) > maxMessage+200 || !strings.Contains(out[0], "bytes more)") ||
			!utf8.ValidString(out[0]) || !strings.Contains(out[1], "short") {
			t.Errorf("%s: %d lines, the first %d bytes: %.80q…", format, len(out), len(out[0]), out[0])
		}
	}
}

// TestAValueCannotAddALine: a message quoting a value with line breaks or
// terminal controls (a --memory or --bind value, a path) prints as one
// line in the text format: before, `--memory $'1\nsandbox: fake'` printed
// a second line that read as sandbox's own. Only a Hinted error's lines
// below it are lines of their own, each escaped; JSON keeps the text whole.
func TestAValueCannotAddALine(t *testing.T) {
	var text, js bytes.Buffer
	hinted := fmt.Errorf("at a step: %w (--memory from a profile)",
		WithHint(errors.New("--memory 1\nsandbox: fake"), "  what to do\x1b[2J", "  and more"))
	for _, c := range []struct {
		buf    *bytes.Buffer
		format string
	}{{&text, LogText}, {&js, LogJSON}} {
		l := NewLogger(c.buf, c.format, "sandbox", true, time.Now())
		l.Error("--bind /x\nsandbox: fake")
		l.Warn("warned\r\nsandbox: fake")
		l.Step("a step\nsandbox: fake")
		l.Fail(hinted)
	}
	want := "sandbox: --bind /x\\nsandbox: fake\n" +
		"sandbox: warning: warned\\r\\nsandbox: fake\n" +
		"sandbox[sandbox]    0.000ms a step\\nsandbox: fake\n" +
		"sandbox: at a step: --memory 1\\nsandbox: fake (--memory from a profile)\n" +
		"  what to do\\x1b[2J\n  and more\n"
	if got := regexp.MustCompile(`[0-9]+\.[0-9]{3}ms`).ReplaceAllString(text.String(), "0.000ms"); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
	lines := strings.Split(strings.TrimSuffix(js.String(), "\n"), "\n")
	var ll logLine
	if len(lines) != 4 || json.Unmarshal([]byte(lines[3]), &ll) != nil ||
		ll.Msg != "at a step: --memory 1\nsandbox: fake (--memory from a profile)\n  what to do\x1b[2J\n  and more" {
		t.Errorf("json lines %q (last: %q)", lines, ll.Msg)
	}
	if h := (*Hinted)(nil); !errors.As(hinted, &h) || hinted.Error() != "at a step: --memory 1\nsandbox: fake\n  what to do\x1b[2J\n  and more (--memory from a profile)" {
		t.Errorf("Hinted's Error(): %q", hinted.Error())
	}
}
