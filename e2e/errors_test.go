//go:build linux

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBadInputsExit125 is not parallel: at the end it checks that no sandbox
// process at all (started during the test) is left behind.
func TestBadInputsExit125(t *testing.T) {
	since := bootTicks()
	cwd := tempDir(t) // relative paths below do not exist there
	missing := "/nonexistent-e2e-" + randHex(8)
	relMissing := "nonexistent-e2e-" + randHex(8)
	cases := []struct {
		name string
		args []string
		want *regexp.Regexp // must match stderr
	}{
		{"unknown flag", []string{"run", "--e2e-no-such-flag", "--", "true"}, regexp.MustCompile(`e2e-no-such-flag`)},
		{"bind missing source", []string{"run", "--bind", missing, "--", "true"}, regexp.MustCompile(regexp.QuoteMeta(missing))},
		{"bind missing source with dst", []string{"run", "--bind", missing + ":/mnt/e2e", "--", "true"}, regexp.MustCompile(regexp.QuoteMeta(missing))},
		{"bind missing relative source", []string{"run", "--bind", relMissing + ":/mnt/e2e", "--", "true"}, regexp.MustCompile(regexp.QuoteMeta(relMissing))},
		{"rootfs missing", []string{"run", "--rootfs", missing, "--", "true"}, regexp.MustCompile(regexp.QuoteMeta(missing))},
		{"rootfs missing relative", []string{"run", "--rootfs", relMissing, "--", "true"}, regexp.MustCompile(regexp.QuoteMeta(relMissing))},
		{"layer missing", []string{"run", "--layer", missing, "--", "true"}, regexp.MustCompile(regexp.QuoteMeta(missing))},
		{"map bogus", []string{"run", "--map=bogus", "--", "true"}, regexp.MustCompile(`bogus`)},
		{"net bogus", []string{"run", "--net=bogus", "--", "true"}, regexp.MustCompile(`bogus`)},
		{"cwd bogus", []string{"run", "--cwd=bogus", "--", "true"}, regexp.MustCompile(`bogus`)},
		{"tty bogus", []string{"run", "--tty=bogus", "--", "true"}, regexp.MustCompile(`bogus`)},
		{"uid not a number", []string{"run", "--uid", "e2e-nan", "--", "true"}, regexp.MustCompile(`e2e-nan`)},
		{"no command", []string{"run"}, regexp.MustCompile(`(?i)command|cmd|argument`)},
		{"no command after --", []string{"run", "--"}, regexp.MustCompile(`(?i)command|cmd|argument`)},
		{"empty bind", []string{"run", "--bind", "", "--", "true"}, regexp.MustCompile(`--bind: empty value`)},
		{"empty bind after one", []string{"run", "--bind", cwd, "--bind", "", "--", "true"}, regexp.MustCompile(`--bind: empty value`)},
		{"empty tmpfs", []string{"run", "--tmpfs", "", "--", "true"}, regexp.MustCompile(`--tmpfs: empty value`)},
		// A path flag's empty value was expanded to the working directory.
		{"empty upper", []string{"run", "--upper", "", "--", "true"}, regexp.MustCompile(`--upper: empty value`)},
		{"empty upper inline", []string{"run", "--upper=", "--", "true"}, regexp.MustCompile(`--upper: empty value`)},
		{"empty rootfs", []string{"run", "--rootfs", "", "--", "true"}, regexp.MustCompile(`--rootfs: empty value`)},
		{"empty name", []string{"run", "--name", "", "--", "true"}, regexp.MustCompile(`--name: empty value`)},
		{"empty hostname", []string{"run", "--hostname", "", "--", "true"}, regexp.MustCompile(`--hostname: empty value`)},
		{"empty cap-add", []string{"run", "--cap-add", "", "--", "true"}, regexp.MustCompile(`--cap-add: empty value`)},
		{"empty env", []string{"run", "-e", "", "--", "true"}, regexp.MustCompile(`--env: empty value`)},
		{"empty env =", []string{"run", "--env=", "--", "true"}, regexp.MustCompile(`--env: empty value`)},
		{"empty chdir", []string{"run", "--chdir", "", "--", "true"}, regexp.MustCompile(`--chdir: empty value`)},
		{"empty memory", []string{"run", "--memory", "", "--", "true"}, regexp.MustCompile(`--memory: empty value`)},
		{"empty exec env", []string{"exec", "-e", "", "x", "--", "true"}, regexp.MustCompile(`--env: empty value`)},
		// Two mounts at one path: before, one hid the other without a word.
		{"tmpfs and bind at one path", []string{"run", "--tmpfs", "/x", "--bind", cwd + ":/x", "--", "true"}, regexp.MustCompile(`are both at /x: one would hide the other`)},
		{"two binds at one path", []string{"run", "--bind", cwd + ":/x", "--bind", "/tmp:/x", "--", "true"}, regexp.MustCompile(`are both at /x`)},
		{"bind of the host's root", []string{"run", "--bind", "/:/host", "--", "true"}, regexp.MustCompile(`the host's root cannot be bound`)},
		// Before, the last one was taken without a word.
		{"dns twice", []string{"run", "--dns", "10.0.2.3", "--dns=10.0.2.4", "--", "true"}, regexp.MustCompile(`--dns given 2 times`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runOpts(t, opts{dir: cwd}, tc.args...)
			if r.startErr != nil || r.timedOut || r.code != exitSandbox {
				t.Fatalf("want exit status %d, got %s", exitSandbox, r)
			}
			if !tc.want.MatchString(r.stderr) {
				t.Errorf("stderr should mention %q: %s", tc.want, r)
			}
			if !hasLinePrefix(r.stderr, "sandbox:") {
				t.Errorf("want a message starting with `sandbox:` on stderr: %s", r)
			}
		})
	}
	// Subtests have their own tokens; check every sandbox process started
	// since the beginning of this (sequential) test.
	requireNoLeftovers(t, since, true, 5*time.Second)
}

// TestCommandsOwnDNSFlags: the words of a command given without "--" are
// its own, --dns among them: only run's own --dns given twice is refused.
// Before, `run --net=none echo --dns a --dns b` was refused (125) as if
// run's --dns had been given twice.
func TestCommandsOwnDNSFlags(t *testing.T) {
	t.Parallel()
	r := runOpts(t, opts{dir: tempDir(t)}, "run", "--net=none", "echo", "--dns", "a", "--dns", "b")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "--dns a --dns b" {
		t.Errorf("a command's own --dns words: want them echoed, exit 0\n%s", r)
	}
}

// TestAValueIsOneLine: a value with a line break is quoted in the one line
// of its error, escaped; before, `--memory $'1\nsandbox: fake'` printed a
// second line that read as sandbox's own ("sandbox: fake: not a size").
func TestAValueIsOneLine(t *testing.T) {
	cwd := tempDir(t)
	forged := "\nsandbox: forged\x1b[2J"
	for _, args := range [][]string{
		{"run", "--memory", "1" + forged, "--", "true"},
		{"run", "--bind", "/nonexistent-e2e" + forged + ":/x", "--", "true"},
		{"run", "--rootfs", "/nonexistent-e2e" + forged, "--", "true"},
		{"run", "--upper", "/nonexistent-e2e/a" + forged, "--", "true"},
		{"run", "--tmpfs", "rel" + forged, "--", "true"},
		{"run", "--cpus", "x" + forged, "--", "true"},
	} {
		t.Run(args[1], func(t *testing.T) {
			r := runOpts(t, opts{dir: cwd}, args...)
			if r.startErr != nil || r.timedOut || r.code != exitSandbox {
				t.Fatalf("want exit status %d, got %s", exitSandbox, r)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "sandbox: ") || !strings.Contains(lines[0], `\nsandbox: forged\x1b[2J`) {
				t.Errorf("want one line quoting the value escaped: %s", r)
			}
		})
	}
}

func hasLinePrefix(s, prefix string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return true
		}
	}
	return false
}

// TestHostShapeErrorsSayTheFix: states of the caller's process that a
// sandbox cannot start from are refused with one line that names the fix
// (before: "getwd: no such file or directory", "moving the memfd of
// sandbox-init above fd 18: invalid argument").
func TestHostShapeErrorsSayTheFix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, script string
		want         *regexp.Regexp
		runs         int
	}{
		{"removed working directory", "mkdir gone && cd gone && rmdir ../gone",
			regexp.MustCompile(`^sandbox: the working directory no longer exists .*--cwd=none\n$`), 1},
		// Which step runs out first moves with timing (init started early,
		// the run's own start, the id-map helpers): several runs. One in
		// two said "moving the memfd of sandbox-init above fd 18: bad file
		// descriptor" (the early start had closed the run's copy of init),
		// one in forty "open /dev/null: too many open files".
		{"open-file limit", "ulimit -n 16",
			regexp.MustCompile(`^sandbox: .*the open-file limit is 16 \(ulimit -n\); raise it\n$`), 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for i := 0; i < tc.runs; i++ {
				r := runOpts(t, opts{dir: tempDir(t), prepare: afterSh(tc.script)}, "run", "--net=none", "--", "pwd")
				wantCode(t, r, exitSandbox)
				if !tc.want.MatchString(r.stderr) {
					t.Fatalf("run %d: stderr should match %v\n%s", i+1, tc.want, r)
				}
			}
		})
	}
}
