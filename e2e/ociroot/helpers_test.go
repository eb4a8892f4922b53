//go:build ociroot

package ociroot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandbox/internal/testenv"
	"sandbox/internal/testimage"
)

// runtimePath is the OCI runtime under test: $SANDBOX_OCI_RUNTIME, else
// sandbox-oci beside $SANDBOX_BIN (scripts/build.sh builds both).
func runtimePath(t testing.TB) string {
	t.Helper()
	p := os.Getenv("SANDBOX_OCI_RUNTIME")
	if p == "" {
		bin := os.Getenv("SANDBOX_BIN")
		testenv.RequireOrSkip(t, bin != "", "SANDBOX_BIN or SANDBOX_OCI_RUNTIME (scripts/test.sh sets SANDBOX_BIN)")
		p = filepath.Join(filepath.Dir(bin), "sandbox-oci")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("the OCI runtime: %v (scripts/build.sh builds bin/sandbox-oci)", err)
	}
	return abs
}

func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireOrSkip(t, os.Geteuid() == 0, "root (scripts/test.sh runs e2e/ociroot as root)")
}

// requireCommand returns the path of a command the test needs.
func requireCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	testenv.RequireOrSkip(t, err == nil, name+" (Debian package "+pkg+"; scripts/setup-host.sh installs it)")
	return p
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs name args bounded by d; a run over d fails the test.
func run(t testing.TB, d time.Duration, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), d, r.stdout, r.stderr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// busyboxImage writes a docker-archive tarball of a one-layer image named
// ref (busybox-static with its applets linked, /etc/passwd and group) to
// path, for `ctr image import`.
func busyboxImage(t testing.TB, path, ref string) {
	t.Helper()
	bb := "/bin/busybox"
	if p, err := exec.LookPath("busybox"); err == nil {
		bb = p
	}
	_, err := os.Stat(bb)
	testenv.RequireOrSkip(t, err == nil, "busybox (Debian package busybox-static)")
	if err := testimage.Archive(path, ref, bb); err != nil {
		t.Fatal(err)
	}
}
