package initproc

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"sandbox/internal/wire"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o644)
	env := []string{"PATH=" + dir}
	if p, _, err := lookPath("tool", env, "/"); err != nil || p != exe {
		t.Errorf("tool: %q %v", p, err)
	}
	if _, st, err := lookPath("missing", env, "/"); err == nil || st != wire.StatusNotFound {
		t.Errorf("missing: status %d err %v, want 127", st, err)
	}
	if _, st, err := lookPath("plain", env, "/"); err == nil || st != wire.StatusNotExec {
		t.Errorf("plain: status %d err %v, want 126", st, err)
	}
	if _, st, err := lookPath("./plain", env, dir); err == nil || st != wire.StatusNotExec {
		t.Errorf("./plain: status %d err %v, want 126", st, err)
	}
	if _, st, err := lookPath(dir, env, "/"); err == nil || st != wire.StatusNotExec {
		t.Errorf("a directory: status %d err %v, want 126", st, err)
	}
}

// TestEmptyNameAndMissingInterpreter: an empty command name is "command
// not found" (127), not the first PATH directory ("is a directory", 126);
// a script whose interpreter is missing says so (126, as bash), not that
// the script does not exist.
func TestEmptyNameAndMissingInterpreter(t *testing.T) {
	if _, st, err := lookPath("", []string{"PATH=/usr/bin:/bin"}, "/"); err == nil || st != wire.StatusNotFound || !strings.Contains(err.Error(), "command not found") {
		t.Errorf(`"": status %d err %v, want 127, command not found`, st, err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "s")
	os.WriteFile(script, []byte("#!/nonexistent/interp -x\necho\n"), 0o755)
	pid, err := forkExec(script, []string{"./s"}, dir, nil, []*os.File{os.Stdin, os.Stdout, os.Stderr}, &syscall.SysProcAttr{})
	if err == nil {
		t.Fatalf("the script ran (pid %d)", pid)
	}
	st, err := execFailed("./s", script, err)
	if st != wire.StatusNotExec || err == nil || !strings.Contains(err.Error(), `./s: bad interpreter "/nonexistent/interp": no such file or directory`) {
		t.Errorf("missing interpreter: status %d, %v", st, err)
	}
}
