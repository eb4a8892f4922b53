package hostpath

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookWithPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "helper-of-test")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got, err := Look("helper-of-test"); err != nil || got != p {
		t.Errorf("Look with PATH=%s: %q, %v; want %q", dir, got, err, p)
	}
	// PATH set: only PATH counts, as for exec.LookPath.
	if got, err := Look("sh"); err == nil {
		t.Errorf("Look(sh) with PATH=%s found %q", dir, got)
	}
	if Searched() != "PATH" {
		t.Errorf("Searched() = %q with PATH set", Searched())
	}
}

// Without PATH (unset or empty), the system's directories are searched,
// as execvp(3) does: sh is in one of them on every host.
func TestLookWithoutPath(t *testing.T) {
	want, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh on this host: %v", err)
	}
	for _, unset := range []bool{true, false} {
		t.Setenv("PATH", "")
		if unset {
			os.Unsetenv("PATH")
		}
		got, err := Look("sh")
		if err != nil {
			t.Fatalf("Look(sh) without PATH (unset %v): %v", unset, err)
		}
		if filepath.Base(got) != "sh" || !strings.Contains(Default, filepath.Dir(got)) {
			t.Errorf("Look(sh) without PATH = %q (sh on PATH is %q), want one in %s", got, want, Default)
		}
		if _, err := Look("no-such-program-of-sandbox"); !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("Look of a missing program: %v, want exec.ErrNotFound", err)
		}
		if !strings.Contains(Searched(), "PATH is not set") {
			t.Errorf("Searched() = %q without PATH", Searched())
		}
	}
}

// A name with a slash is not searched for.
func TestLookPathName(t *testing.T) {
	t.Setenv("PATH", "")
	if _, err := Look("./no-such-program-of-sandbox"); err == nil {
		t.Error("Look found a relative path that does not exist")
	}
	if got, err := Look("/bin/sh"); err != nil || got != "/bin/sh" {
		t.Errorf("Look(/bin/sh) = %q, %v", got, err)
	}
}
