//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReportOverlayDriverUsed: root.overlay_driver says what served the
// overlays, fuse_mounts which ones fuse-overlayfs served.
func TestReportOverlayDriverUsed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ flag, want string }{{"--overlay=kernel", "kernel"}, {"--overlay=fuse", "fuse"}} {
		file := filepath.Join(tempDir(t), "report.json")
		mustRun(t, opts{}, "run", "--report", file, c.flag, "--", "true")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Root struct {
				OverlayDriver string   `json:"overlay_driver"`
				FuseMounts    []string `json:"fuse_mounts"`
			} `json:"root"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Root.OverlayDriver != c.want || rep.Root.FuseMounts == nil {
			t.Errorf("%s: overlay_driver %q, fuse_mounts %v; want %q and a list", c.flag, rep.Root.OverlayDriver, rep.Root.FuseMounts, c.want)
		}
		if fused := slices.Contains(rep.Root.FuseMounts, "/etc"); fused != (c.want == "fuse") {
			t.Errorf("%s: fuse_mounts %v", c.flag, rep.Root.FuseMounts)
		}
	}
}

// TestMissingCommandOneMessage: a command that does not exist is one clean
// line (127), the error not said twice.
func TestMissingCommandOneMessage(t *testing.T) {
	t.Parallel()
	missing := "/nonexistent-" + randHex(6) + "/cmd"
	r := run(t, "run", "--", missing)
	want := "sandbox: " + missing + ": no such file or directory"
	if r.code != 127 || strings.TrimSpace(r.stderr) != want {
		t.Errorf("want exit 127 and exactly %q, got %s", want, r)
	}
}
