package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// The runtime's log: every error is one line `sandbox-oci: ...` on
// stderr and, with --log, a record in that file; with --log-format json in
// runc's form {"level":"error","msg":"...","time":"..."}, which containerd's
// shim and conmon read back for the error they show.
var (
	logFile  *os.File
	logger   *slog.Logger
	logDebug bool
)

func logSetup(g *globals) {
	logDebug = g.Debug
	if g.Log == "" || logger != nil {
		return
	}
	f, err := os.OpenFile(g.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox-oci: --log %s: %v\n", g.Log, err)
		return
	}
	logFile = f
	opts := &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey {
				return slog.String(slog.LevelKey, strings.ToLower(a.Value.String()))
			}
			return a
		},
	}
	if g.Debug {
		opts.Level = slog.LevelDebug
	}
	var h slog.Handler
	if g.LogFormat == "json" {
		h = slog.NewJSONHandler(f, opts)
	} else {
		h = slog.NewTextHandler(f, opts)
	}
	logger = slog.New(h)
}

func logClose() {
	if logFile != nil {
		logFile.Close()
	}
}

// logError reports the command's error: stderr and the log file.
func logError(msg string) {
	msg = oneLine(msg)
	fmt.Fprintf(os.Stderr, "sandbox-oci: %s\n", msg)
	if logger != nil {
		logger.Error(msg)
	}
}

// logWarn is for what does not fail the command (a poststop hook's failure).
func logWarn(format string, args ...any) {
	msg := oneLine(fmt.Sprintf(format, args...))
	if logger != nil {
		logger.Warn(msg)
		return
	}
	fmt.Fprintf(os.Stderr, "sandbox-oci: warning: %s\n", msg)
}

// logDebugf is a line for --debug only.
func logDebugf(format string, args ...any) {
	if !logDebug {
		return
	}
	msg := oneLine(fmt.Sprintf(format, args...))
	if logger != nil {
		logger.Debug(msg)
		return
	}
	fmt.Fprintf(os.Stderr, "sandbox-oci: debug: %s\n", msg)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// logInfof is for the log file only (or stderr with --debug): what an
// engine's user may want to know but that is no error.
func logInfof(format string, args ...any) {
	msg := oneLine(fmt.Sprintf(format, args...))
	if logger != nil {
		logger.Info(msg)
		return
	}
	if logDebug {
		fmt.Fprintf(os.Stderr, "sandbox-oci: %s\n", msg)
	}
}
