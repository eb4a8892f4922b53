package initproc

import (
	"os"
	"path/filepath"
	"sandbox/internal/wire"
	"testing"
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
