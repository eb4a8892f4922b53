//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// shellOut runs a shell (bounded), failing the test on error.
func shellOut(t *testing.T, shell string, args ...string) string {
	t.Helper()
	_, err := exec.LookPath(shell)
	requireOrSkip(t, err == nil, shell+" (scripts/setup-host.sh installs it)")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, shell, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", shell, args, err, out)
	}
	return string(out)
}

// The scripts the binary prints are valid for their shell and complete
// every flag of docs/cli.md's run table. (cmd/sandbox's tests drive the
// completion itself in each shell.)
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	flags := docFlags(t)
	// How each script spells a flag it completes (any of these).
	spell := map[string]func(string) []string{
		"bash": func(f string) []string { return []string{"'flag " + f + " "} },
		"zsh":  func(f string) []string { return []string{"'" + f + "[", f + "=[", f + "+["} },
		"fish": func(f string) []string {
			if strings.HasPrefix(f, "--") {
				return []string{"-l '" + f[2:] + "'"}
			}
			return []string{"-s '" + f[1:] + "'"}
		},
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			r := mustRun(t, opts{}, "completion", shell)
			path := filepath.Join(t.TempDir(), "sandbox."+shell)
			if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			shellOut(t, shell, "-n", path)
			for _, f := range flags {
				if !slices.ContainsFunc(spell[shell](f), func(s string) bool { return strings.Contains(r.stdout, s) }) {
					t.Errorf("the %s script does not complete %s (no %q)", shell, f, spell[shell](f))
				}
			}
			switch shell {
			case "bash":
				out := shellOut(t, "bash", "--norc", "-c", "source "+path+
					`; COMP_WORDS=(sandbox run --ne); COMP_CWORD=2; _sandbox; echo "${COMPREPLY[*]}"`)
				if strings.TrimSpace(out) != "--net" {
					t.Errorf("bash: `sandbox run --ne` completes to %q, want --net", out)
				}
			case "fish":
				out := shellOut(t, "fish", "--no-config", "-c", "source "+path+`; complete -C "sandbox run --ne"`)
				if cand, _, _ := strings.Cut(out, "\t"); cand != "--net" {
					t.Errorf("fish: `sandbox run --ne` completes to %q, want --net", out)
				}
			}
		})
	}
	t.Run("unknown shell", func(t *testing.T) {
		t.Parallel()
		r := runOpts(t, opts{timeout: 10 * time.Second}, "completion", "tcsh")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "bash") {
			t.Errorf("the error should list the shells:\n%s", r)
		}
	})
}
