package hostcheck

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Probe runs a real sandbox with run's defaults (`exe run -- true`) and
// reports whether the whole chain works, with its wall time.
func Probe(exe, trueBin string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "run", "--cwd=none", "--", trueBin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(100 * time.Microsecond)
	msg := strings.TrimSpace(stderr.String())
	switch {
	case err != nil:
		return Result{Name: "live probe", Level: Fail,
			Detail: fmt.Sprintf("`sandbox run -- true` failed (%v): %s", err, msg),
			Fix:    "see the lines above; `sandbox run -v -- true` shows each step"}
	case msg != "":
		return Result{Name: "live probe", Level: Warn, Detail: fmt.Sprintf("`sandbox run -- true` works (%v) with: %s", took, msg)}
	}
	return Result{Name: "live probe", Level: OK, Detail: fmt.Sprintf("`sandbox run -- true` works (%v)", took)}
}
