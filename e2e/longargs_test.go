//go:build linux

package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLongCommandLine: what the kernel would exec passes through the
// sandbox (100,000 arguments, ~590 KB, used to be refused: "config message
// is N bytes, over the 196608 byte limit"); beyond the kernel's own limit
// the payload gets the kernel's error, E2BIG, as 126 like a shell.
func TestLongCommandLine(t *testing.T) {
	t.Parallel()
	t.Run("100000 arguments", func(t *testing.T) {
		t.Parallel()
		args := []string{"run", "--net=none", "--", "sh", "-c", `echo "$# ${100000}"`, "sh"}
		for i := 1; i <= 100000; i++ {
			args = append(args, strconv.Itoa(i))
		}
		began := time.Now()
		r := runOpts(t, opts{dir: tempDir(t)}, args...)
		// Not r itself: it would print the 100000 arguments.
		if got := strings.TrimSpace(r.stdout); r.code != 0 || r.timedOut || got != "100000 100000" {
			t.Fatalf("the payload should see all 100000 arguments (want exit 0 and count, last = \"100000 100000\"): exit %d, timed out %v, stdout %q, stderr %q",
				r.code, r.timedOut, clip(r.stdout), clip(r.stderr))
		}
		t.Logf("100000 arguments: %v", time.Since(began).Round(time.Millisecond))
	})
	t.Run("beyond the kernel's limit", func(t *testing.T) {
		t.Parallel()
		// One argument over MAX_ARG_STRLEN (128 KiB): no exec can take it.
		// It comes from a profile, as the sandbox's own command line
		// could not hold it either.
		dir := tempDir(t)
		p := filepath.Join(dir, "long.yaml")
		writeFile(t, p, "command: [\"true\", "+strings.Repeat("x", 200<<10)+"]\nnet: none\n", 0o644)
		r := runOpts(t, opts{dir: dir}, "run", "--profile", p)
		wantCode(t, r, 126)
		if !strings.Contains(strings.ToLower(r.stderr), "argument list too long") {
			t.Errorf("want the kernel's E2BIG (argument list too long)\n%s", r)
		}
	})
}
