//go:build ociroot

package ociroot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"sandbox/internal/testenv"
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
	data, err := os.ReadFile(bb)
	testenv.RequireOrSkip(t, err == nil, "busybox (Debian package busybox-static)")
	applets, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	now := time.Now()
	add := func(h *tar.Header, body []byte) {
		h.ModTime = now
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "etc/", "dev/", "proc/", "sys/", "tmp/", "root/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))}, data)
	for _, a := range strings.Fields(string(applets)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
	}
	for n, c := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	} {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(c))}, []byte(c))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: runtime.GOARCH,
		Config: v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}
