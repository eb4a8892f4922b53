//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// envMap parses `env` output.
func envMap(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

var sessionVars = map[string]string{
	"SSH_AUTH_SOCK":            "/tmp/e2e-agent.sock",
	"DBUS_SESSION_BUS_ADDRESS": "unix:path=/tmp/e2e-bus",
	"XDG_RUNTIME_DIR":          "/tmp/e2e-xdg",
	"DISPLAY":                  ":99",
	"WAYLAND_DISPLAY":          "wayland-e2e",
	"XAUTHORITY":               "/tmp/e2e-xauth",
	"GPG_AGENT_INFO":           "/tmp/e2e-gpg",
}

func testEnv() []string {
	env := []string{"FOO_E2E=bar", "COPY_E2E=copied"}
	for k, v := range sessionVars {
		env = append(env, k+"="+v)
	}
	return env
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	t.Run("filtered", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{env: testEnv()}, "run", "--env", "A_E2E=1", "--", "env")
		env := envMap(r.stdout)
		for k := range sessionVars {
			if v, ok := env[k]; ok {
				t.Errorf("%s=%s (host session) should be dropped inside", k, v)
			}
		}
		if env["FOO_E2E"] != "bar" {
			t.Errorf("FOO_E2E should pass through as bar, got %q", env["FOO_E2E"])
		}
		if env["A_E2E"] != "1" {
			t.Errorf("--env A_E2E=1: got %q", env["A_E2E"])
		}
	})
	t.Run("copy dropped var", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{env: testEnv()}, "run", "--env", "DISPLAY", "--", "env")
		if got := envMap(r.stdout)["DISPLAY"]; got != sessionVars["DISPLAY"] {
			t.Errorf("--env DISPLAY should copy it from the caller: got %q", got)
		}
	})
	t.Run("clearenv", func(t *testing.T) {
		t.Parallel()
		// TERM is set in the caller's environment: with --clearenv the
		// payload still gets one.
		r := mustRun(t, opts{env: append(testEnv(), "TERM=xterm-e2e")}, "run", "--clearenv", "--env", "A_E2E=1", "--env", "COPY_E2E", "--", "env")
		env := envMap(r.stdout)
		if _, ok := env["FOO_E2E"]; ok {
			t.Errorf("--clearenv: FOO_E2E should be absent")
		}
		if env["A_E2E"] != "1" || env["COPY_E2E"] != "copied" {
			t.Errorf("--clearenv with --env A_E2E=1 --env COPY_E2E: got A_E2E=%q COPY_E2E=%q", env["A_E2E"], env["COPY_E2E"])
		}
		for _, k := range []string{"PATH", "HOME", "TERM"} {
			if _, ok := env[k]; !ok {
				t.Errorf("--clearenv: %s should be set", k)
			}
		}
		if env["PATH"] == "" || env["HOME"] == "" || env["TERM"] == "" {
			t.Errorf("--clearenv: PATH=%q HOME=%q TERM=%q should not be empty", env["PATH"], env["HOME"], env["TERM"])
		}
		var extra []string
		for k := range env {
			if !slices.Contains([]string{"PATH", "HOME", "TERM", "A_E2E", "COPY_E2E", "PWD", "SHLVL", "_"}, k) {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			slices.Sort(extra)
			t.Errorf("--clearenv: unexpected variables %q", extra)
		}
	})
}

func TestNoInheritedFDs(t *testing.T) {
	t.Parallel()
	f, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// `; true` keeps dash from exec'ing ls in place of the shell.
	r := mustRun(t, opts{extra: []*os.File{f, f}}, sh(nil, "ls /proc/$$/fd; true")...)
	got := lines(r.stdout)
	got = slices.DeleteFunc(got, func(s string) bool { return s == "255" }) // bash's script fd
	if !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("the payload's fds should be exactly 0 1 2 (the test passed fds 3 and 4 to the sandbox), got %q", got)
	}
}

// TestEnvValueWithComma: -e keeps a value's commas (NO_PROXY=a,b), for run
// and exec: kong split it into "NO_PROXY=a" and a name "b" copied from
// nowhere, so the value was cut without a word. SANDBOX_ENV separates its
// values with ';', as every variable of a flag that keeps commas.
func TestEnvValueWithComma(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--net=none", "-e", "NO_PROXY=localhost,127.0.0.1", "--", "sh", "-c", `echo "$NO_PROXY"`)
	if got := strings.TrimSpace(r.stdout); got != "localhost,127.0.0.1" {
		t.Errorf("run -e NO_PROXY=localhost,127.0.0.1: inside %q\n%s", got, r)
	}
	r = mustRun(t, opts{env: []string{"SANDBOX_ENV=X=1,2;Y=3"}}, "run", "--net=none", "--", "sh", "-c", `echo "$X|$Y"`)
	if got := strings.TrimSpace(r.stdout); got != "1,2|3" {
		t.Errorf("SANDBOX_ENV='X=1,2;Y=3': inside %q\n%s", got, r)
	}
	l := newLife(t)
	l.detach("comma", []string{"--net=none"}, "sleep", "3600")
	r = l.run("exec", "-e", "L=a,b", "comma", "--", "sh", "-c", `echo "$L"`)
	wantCode(t, r, 0)
	if got := strings.TrimSpace(r.stdout); got != "a,b" {
		t.Errorf("exec -e L=a,b: inside %q\n%s", got, r)
	}
}

// TestBytesNotUTF8ReachTheCommand: arguments and variables that are not
// UTF-8 (a Latin-1 file name, say) reach the command of run and of exec
// byte for byte, as through execve. Before, each such byte arrived as
// U+FFFD (ef bf bd): init's configuration is JSON.
func TestBytesNotUTF8ReachTheCommand(t *testing.T) {
	l := newLife(t)
	l.detach("bytes", []string{"--net=none"}, "sleep", "3600")
	const raw = "x\xff\xfey\xe9"
	o := l.o
	o.env = append(append([]string(nil), o.env...), "INHERITED="+raw)
	script := []string{"--", "sh", "-c", `printf '%s|%s|%s' "$1" "$GIVEN" "$INHERITED"`, "sh", raw}
	for _, args := range [][]string{
		append([]string{"run", "--net=none", "-e", "GIVEN=" + raw}, script...),
		append([]string{"exec", "-e", "GIVEN=" + raw, "-e", "INHERITED", "bytes"}, script...), // copied from the caller's
	} {
		r := runOpts(t, o, args...)
		wantCode(t, r, 0)
		if want := raw + "|" + raw + "|" + raw; r.stdout != want {
			t.Errorf("%s: the command got %q, want %q", args[0], r.stdout, want)
		}
	}
}

// TestPathsNotUTF8: a working directory, a --bind (source and target),
// --chdir and exec's --chdir whose names are not UTF-8 (Latin-1, say)
// work as any other. Before, `run` from such a directory failed (125:
// "opening host path …: no such file or directory"): the plan is JSON,
// which turned each such byte into U+FFFD.
func TestPathsNotUTF8(t *testing.T) {
	base := tempDir(t)
	cwd := filepath.Join(base, "caf\xe9")
	src := filepath.Join(base, "bind\xff")
	for _, d := range []string{cwd, src} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "in\xfe"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const target = "/mnt/t\xfd"
	l := newLife(t)
	l.o.dir = cwd
	r := l.run("run", "--net=none", "--bind", src+":"+target, "--", "sh", "-c",
		`pwd; cat "$1/in`+"\xfe"+`"; echo out > made`, "sh", target)
	wantCode(t, r, 0)
	if want := cwd + "\nhost\n"; r.stdout != want {
		t.Errorf("run: %q, want %q\n%s", r.stdout, want, r)
	}
	if b, err := os.ReadFile(filepath.Join(cwd, "made")); err != nil || string(b) != "out\n" {
		t.Errorf("the file made in the shared working directory: %q, %v", b, err)
	}
	r = l.run("run", "--net=none", "--bind", src+":"+target, "--chdir", target, "--", "pwd")
	wantCode(t, r, 0)
	if r.stdout != target+"\n" {
		t.Errorf("run --chdir: %q, want %q\n%s", r.stdout, target+"\n", r)
	}

	l.detach("paths", []string{"--net=none", "--bind", src + ":" + target}, "sleep", "3600")
	r = l.run("exec", "--chdir", target, "paths", "--", "sh", "-c", `pwd; cat in*`)
	wantCode(t, r, 0)
	if want := target + "\nhost\n"; r.stdout != want {
		t.Errorf("exec --chdir: %q, want %q\n%s", r.stdout, want, r)
	}
	r = l.run("exec", "paths", "--", "pwd")
	wantCode(t, r, 0)
	if r.stdout != cwd+"\n" {
		t.Errorf("exec: %q, want %q\n%s", r.stdout, cwd+"\n", r)
	}
}
