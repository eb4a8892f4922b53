//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docFlags extracts the flags of the `sandbox run` table of docs/cli.md.
func docFlags(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot, "docs", "cli.md"))
	if err != nil {
		t.Fatalf("reading docs/cli.md: %v", err)
	}
	flagRe := regexp.MustCompile("(^|[\\s,/`])(--?[a-z][a-z-]*)")
	var flags []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "| `-") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(l, "|"), "|")
		for _, m := range flagRe.FindAllStringSubmatch(first, -1) {
			if !slices.Contains(flags, m[2]) {
				flags = append(flags, m[2])
			}
		}
	}
	if len(flags) < 10 {
		t.Fatalf("found only %q in docs/cli.md", flags)
	}
	return flags
}

// docCommands lists the subcommands of docs/cli.md's usage block
// (lines "sandbox NAME ...").
func docCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot, "docs", "cli.md"))
	if err != nil {
		t.Fatalf("reading docs/cli.md: %v", err)
	}
	var cmds []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "sandbox" && !strings.HasPrefix(f[1], "-") && !slices.Contains(cmds, f[1]) {
			cmds = append(cmds, f[1])
		}
	}
	if !slices.Contains(cmds, "run") {
		t.Fatalf("no `sandbox run` usage line in docs/cli.md (found %q)", cmds)
	}
	return cmds
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	flags := docFlags(t)
	t.Run("run --help", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{}, "run", "--help")
		out := r.stdout + r.stderr
		for _, f := range flags {
			if !regexp.MustCompile(regexp.QuoteMeta(f) + `\b`).MatchString(out) {
				t.Errorf("`sandbox run --help` does not mention %s:\n%s", f, out)
			}
		}
	})
	t.Run("--help", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{}, "--help")
		out := r.stdout + r.stderr
		for _, cmd := range docCommands(t) {
			if !regexp.MustCompile(`\b` + cmd + `\b`).MatchString(out) {
				t.Errorf("`sandbox --help` does not mention the %s command:\n%s", cmd, out)
			}
		}
	})
}

func TestCLIVersion(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "version")
	if strings.TrimSpace(r.stdout) == "" {
		t.Errorf("`sandbox version` printed nothing on stdout: %s", r)
	}
	// A version it could not print is an error, as for ps and --help
	// (before: exit 0, nothing said).
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	r = runOpts(t, opts{stdout: full}, "version")
	wantCode(t, r, exitSandbox)
	if !regexp.MustCompile(`^sandbox: .*no space left on device\n$`).MatchString(r.stderr) {
		t.Errorf("`sandbox version >/dev/full` should say why in one line: %s", r)
	}
}

func TestCLIVerbose(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-v", "--verbose"} {
		r := mustRun(t, opts{}, "run", flag, "--", "true")
		if strings.TrimSpace(r.stderr) == "" {
			t.Errorf("`sandbox run %s` should log its setup steps on stderr: %s", flag, r)
		}
	}
}
