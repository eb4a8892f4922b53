package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"sandbox/internal/testenv"
)

// TestMain lets the test binary be the probe's child, as cmd/sandbox does.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == ProbeArg0 {
		os.Exit(ProbeChild(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestProbeNamespaces runs the real probe as the test's user: every step
// works on the test host, and nothing is left in TMPDIR.
func TestProbeNamespaces(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	p := ProbeNamespaces(os.Args[0])
	if p.UserNS != nil || p.Caps != nil || p.Overlay != nil || p.Pivot != nil {
		t.Fatalf("probe: %+v", p)
	}
	if p.Took <= 0 {
		t.Errorf("took %v", p.Took)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the probe left %v in TMPDIR", left)
	}
}

func TestProbeNamespacesNoBinary(t *testing.T) {
	p := ProbeNamespaces(filepath.Join(t.TempDir(), "missing"))
	if p.UserNS == nil || !errors.Is(p.Caps, ErrNotProbed) || !errors.Is(p.Overlay, ErrNotProbed) || !errors.Is(p.Pivot, ErrNotProbed) {
		t.Errorf("probe: %+v", p)
	}
	if r := judgeNSProbe(Facts{NS: p}); r.Status != Fail || !r.Blocks {
		t.Errorf("judged %+v", r)
	}
}

// Outside a user namespace an unprivileged process has no capability to
// mount: the child's first step reports it and skips the others. (Never
// as root: it would make the host's mounts private.)
func TestProbeStepsWithoutCapabilities(t *testing.T) {
	testenv.RequireOrSkip(t, os.Getuid() != 0, "a non-root user (as root this would change the host's mounts)")
	caps, overlay, pivot := probeSteps(t.TempDir())
	if !errors.Is(caps, syscall.EPERM) || !errors.Is(overlay, ErrNotProbed) || !errors.Is(pivot, ErrNotProbed) {
		t.Errorf("caps %v, overlay %v, pivot %v", caps, overlay, pivot)
	}
}

func TestProbeChildUsage(t *testing.T) {
	if got := ProbeChild(nil); got != 2 {
		t.Errorf("no argument: status %d", got)
	}
}

// The steps' errors cross the process boundary with their errno.
func TestStepTransport(t *testing.T) {
	if newStep(nil).err() != nil {
		t.Error("nil step")
	}
	err := newStep(fmt.Errorf("pivot_root: %w", syscall.EINVAL)).err()
	if !errors.Is(err, syscall.EINVAL) || err.Error() != "pivot_root: invalid argument" {
		t.Errorf("errno step: %v", err)
	}
	if err := newStep(ErrNotProbed).err(); err != ErrNotProbed {
		t.Errorf("skipped step: %v", err)
	}
	err = newStep(errors.New("copy-up: odd")).err()
	var errno syscall.Errno
	if errors.As(err, &errno) || err.Error() != "copy-up: odd" {
		t.Errorf("plain step: %v", err)
	}
}

func TestProbeRun(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "sandbox")
	// A stand-in for the binary: checks its arguments, warns, exits with $STATUS.
	writeFile(t, fake, `#!/bin/sh
[ "$*" = "run --cwd=none -- /bin/true" ] || { echo "bad args: $*" >&2; exit 3; }
echo "sandbox: warning: something" >&2
echo "sandbox: warning: and more" >&2
exit "${STATUS:-0}"
`, 0o755)
	p := ProbeRun(fake, "/bin/true")
	if p.Err != nil || p.Stderr != "sandbox: warning: something | sandbox: warning: and more" || p.Took <= 0 {
		t.Errorf("warning run: %+v", p)
	}
	t.Setenv("STATUS", "125")
	p = ProbeRun(fake, "/bin/true")
	if p.Err == nil || !strings.Contains(p.Err.Error(), "125") {
		t.Errorf("failed run: %+v", p)
	}
}
