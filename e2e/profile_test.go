//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// profileFile writes a profile into a fresh directory.
func profileFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// probeScript prints the hostname, whether the root is writable, and two
// variables: what the precedence test compares.
const probeScript = `cat /proc/sys/kernel/hostname; if touch /etc/e2e-probe 2>/dev/null; then echo rw; else echo ro; fi; echo "${P1:-unset} ${P2:-unset}"`

// A scalar, a switch and a list, each set by SANDBOX_* variables, a
// profile and the command line: the command line wins over the profile,
// which wins over the environment.
func TestProfilePrecedence(t *testing.T) {
	t.Parallel()
	env := []string{"SANDBOX_HOSTNAME=fromenv", "SANDBOX_READ_ONLY=true", "SANDBOX_ENV=P1=env;P2=env"}
	toml := profileFile(t, "p.toml", "hostname = \"fromprofile\"\nread-only = false\nenv = [\"P1=profile\"]\n")
	yaml := profileFile(t, "p.yaml", "hostname: fromprofile\nread-only: false\nenv: [P1=profile]\n")
	cases := []struct {
		desc  string
		env   []string
		flags []string
		want  string
	}{
		{"environment", env, nil, "fromenv ro env env"},
		{"TOML profile over environment", env, []string{"--profile", toml}, "fromprofile rw profile unset"},
		{"YAML profile over environment", env, []string{"--profile", yaml}, "fromprofile rw profile unset"},
		{"SANDBOX_PROFILE", append([]string{"SANDBOX_PROFILE=" + yaml}, env...), nil, "fromprofile rw profile unset"},
		{"command line over profile", env,
			[]string{"--profile", toml, "--hostname", "fromcli", "--read-only=true", "-e", "P1=cli"}, "fromcli ro cli unset"},
	}
	// One after the other: a run's default name follows its hostname, and
	// two running sandboxes cannot share a name.
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			r := mustRun(t, opts{env: tc.env}, sh(tc.flags, probeScript)...)
			if got := strings.Join(strings.Fields(r.stdout), " "); got != tc.want {
				t.Errorf("got %q, want %q (hostname, root, $P1 $P2)\n%s", got, tc.want, r)
			}
		})
	}
}

func TestProfileCommand(t *testing.T) {
	t.Parallel()
	p := profileFile(t, "cmd.yaml", "command: [sh, -c, echo from-profile]\nnet: none\n")
	r := mustRun(t, opts{}, "run", "--profile", p)
	if strings.TrimSpace(r.stdout) != "from-profile" {
		t.Errorf("the profile's command should run when none is given:\n%s", r)
	}
	r = mustRun(t, opts{}, "run", "--profile", p, "--", "echo", "from-cli")
	if strings.TrimSpace(r.stdout) != "from-cli" {
		t.Errorf("the command line's command should win:\n%s", r)
	}
}

// Bad profiles and variables stop the run with 125 and a message naming
// where the bad value is.
func TestProfileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc string
		env  []string
		file string // profile name, "" for none
		text string
		want []string
	}{
		{"unknown key", nil, "p.toml", "memroy = \"1G\"\n", []string{`key "memroy"`, `did you mean "memory"`}},
		{"wrong type", nil, "p.yaml", "bind: /src\n", []string{"line 1", `key "bind"`, "expected a list"}},
		{"bad enum", nil, "p.toml", "net = \"nowhere\"\n", []string{`key "net"`, "--net=nowhere"}},
		{"bad value", nil, "p.toml", "memory = \"lots\"\n", []string{"--memory lots", `key "memory" in profile`}},
		{"malformed", nil, "p.toml", "net = \n", []string{"line 1"}},
		{"extension", nil, "p.ini", "net=none\n", []string{`unknown extension ".ini"`}},
		{"missing", nil, "", "", []string{"/nonexistent/p.toml", "cannot read it"}},
		{"bad variable", []string{"SANDBOX_MEMORY=lots"}, "", "", []string{"--memory lots", "SANDBOX_MEMORY"}},
		{"bad enum variable", []string{"SANDBOX_NET=nowhere"}, "", "", []string{`SANDBOX_NET="nowhere"`}},
		{"io-max list", []string{"SANDBOX_IO_MAX=bogus;8:0:rbps=1M"}, "", "", []string{"--io-max bogus:", "SANDBOX_IO_MAX"}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			args := []string{"run"}
			path := ""
			switch {
			case tc.file != "":
				path = profileFile(t, tc.file, tc.text)
				args = append(args, "--profile", path)
			case tc.desc == "missing":
				path = "/nonexistent/p.toml"
				args = append(args, "--profile", path)
			}
			r := runOpts(t, opts{env: tc.env}, append(args, "--", "true")...)
			wantCode(t, r, exitSandbox)
			for _, w := range append(tc.want, path) {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r)
				}
			}
		})
	}
}

// TestProfileValueCannotDriveTheTerminal: a value from a profile or a
// variable (a profile may come with a repository) is quoted in the error
// with its control characters escaped; before, a profile's `net` printed
// its escape sequences raw (a title, a cleared screen, colours).
func TestProfileValueCannotDriveTheTerminal(t *testing.T) {
	t.Parallel()
	// (A NUL is refused before: TestProfileErrors.)
	const bad = "\x1b]0;PWNED\a\x1b[2J\x1b[31mred\x7f"
	path := profileFile(t, "p.yaml", "net: \"\\e]0;PWNED\\a\\e[2J\\e[31mred\\x7f\"\n")
	for _, o := range []struct {
		desc string
		env  []string
		args []string
	}{
		{"profile", nil, []string{"--profile", path}},
		{"variable", []string{"SANDBOX_NET=" + bad}, nil},
	} {
		r := runOpts(t, opts{env: o.env}, append(append([]string{"run"}, o.args...), "--", "true")...)
		wantCode(t, r, exitSandbox)
		if strings.ContainsAny(r.stderr, "\x1b\a\x7f") || !strings.Contains(r.stderr, `\x1b]0;PWNED`) {
			t.Errorf("%s: stderr %q, want the value's control characters escaped", o.desc, r.stderr)
		}
	}
}

// SANDBOX_PRESERVE_FDS is both the default of --preserve-fds and the
// variable the parent hands its re-executed init: the caller's value only
// ever acts as that default, init gets the effective count.
func TestPreserveFDsVariable(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "fd3")
	if err := os.WriteFile(data, []byte("through-fd3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	open3 := func(t *testing.T) []*os.File {
		f, err := os.Open(data)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return []*os.File{f}
	}
	const probe = `if [ -e /proc/$$/fd/3 ]; then cat <&3; else echo no-fd3; fi`
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{env: []string{"SANDBOX_PRESERVE_FDS=1"}, extra: open3(t)}, sh(nil, probe)...)
		if strings.TrimSpace(r.stdout) != "through-fd3" {
			t.Errorf("SANDBOX_PRESERVE_FDS=1 should pass fd 3:\n%s", r)
		}
	})
	t.Run("command line wins", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{env: []string{"SANDBOX_PRESERVE_FDS=1"}, extra: open3(t)},
			sh([]string{"--preserve-fds=0"}, probe)...)
		if strings.TrimSpace(r.stdout) != "no-fd3" {
			t.Errorf("--preserve-fds=0 over SANDBOX_PRESERVE_FDS=1 must not pass fd 3:\n%s", r)
		}
	})
	t.Run("bad", func(t *testing.T) {
		t.Parallel()
		r := runOpts(t, opts{env: []string{"SANDBOX_PRESERVE_FDS=two"}}, "run", "--", "true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "SANDBOX_PRESERVE_FDS") {
			t.Errorf("the message should name the variable:\n%s", r)
		}
	})
	t.Run("fd not open", func(t *testing.T) {
		t.Parallel()
		// Not 2: the Go runtime of sandbox itself may hold fd 4 (cgroup-aware GOMAXPROCS).
		r := runOpts(t, opts{env: []string{"SANDBOX_PRESERVE_FDS=40"}, extra: open3(t)}, "run", "--", "true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "--preserve-fds from SANDBOX_PRESERVE_FDS") {
			t.Errorf("the message should trace --preserve-fds to the variable:\n%s", r)
		}
	})
}

// `sandbox run --help` stands in for a man page.
func TestRunHelpManual(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--help")
	for _, w := range []string{"Exit status:", "125", "Profiles (--profile FILE", `memory = "512M"`,
		"Environment:", "$SANDBOX_MEMORY", "$SANDBOX_IO_MAX, semicolon-separated", "Precedence:",
		"State:", "$XDG_RUNTIME_DIR/sandbox/NAME/"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("`sandbox run --help` lacks %q:\n%s", w, r.stdout)
		}
	}
	// The command list: one line per command, its help beside it.
	r = mustRun(t, opts{}, "--help")
	_, list, _ := strings.Cut(r.stdout, "Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	lines := strings.Split(list, "\n")
	for _, l := range lines {
		if !regexp.MustCompile(`^  [a-z-]+ {2,}[A-Z]`).MatchString(l) {
			t.Errorf("`sandbox --help` should list each command on one line with its help, not %q:\n%s", l, r.stdout)
		}
	}
	if len(lines) < 4 {
		t.Errorf("`sandbox --help` lists %d commands:\n%s", len(lines), r.stdout)
	}
}
