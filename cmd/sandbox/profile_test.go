package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// parse parses args as runCLI does, with env as the whole environment; it
// returns the parsed command line and the resolver.
func parse(t *testing.T, env map[string]string, args ...string) (*cli, *defaults, error) {
	t.Helper()
	c, def, _, err := parseContext(t, env, args...)
	return c, def, err
}

// parseContext is parse with kong's context too.
func parseContext(t *testing.T, env map[string]string, args ...string) (*cli, *defaults, *kong.Context, error) {
	t.Helper()
	var c cli
	def := newDefaults(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	parser, err := kong.New(&c, kong.Name("sandbox"), kong.Exit(func(int) { t.Fatalf("kong exited on %q", args) }),
		def.option(), helpOption())
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := parser.Parse(args)
	return &c, def, ctx, err
}

func mustParse(t *testing.T, env map[string]string, args ...string) (*cli, *defaults) {
	t.Helper()
	c, def, err := parse(t, env, args...)
	if err != nil {
		t.Fatalf("parsing %q with %v: %v", args, env, err)
	}
	return c, def
}

// writeFile writes a file named name in a fresh directory and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The precedence is command line > profile > environment > default, for a
// scalar, a switch and a list, in both profile formats.
func TestPrecedence(t *testing.T) {
	profiles := map[string]string{
		"p.toml": "hostname = \"prof\"\nread-only = false\nbind = [\"/prof\"]\n",
		"p.yaml": "hostname: prof\nread-only: false\nbind: [/prof]\n",
	}
	env := map[string]string{"SANDBOX_HOSTNAME": "env", "SANDBOX_READ_ONLY": "true", "SANDBOX_BIND": "/env1,/env2"}
	type want struct {
		host string
		ro   bool
		bind []string
	}
	for name, text := range profiles {
		prof := writeFile(t, name, text)
		cases := []struct {
			desc string
			env  map[string]string
			args []string
			want want
		}{
			{"defaults", nil, nil, want{"", false, nil}},
			{"environment", env, nil, want{"env", true, []string{"/env1", "/env2"}}},
			{"profile over environment", env, []string{"--profile", prof}, want{"prof", false, []string{"/prof"}}},
			{"profile from SANDBOX_PROFILE", map[string]string{"SANDBOX_PROFILE": prof, "SANDBOX_HOSTNAME": "env"}, nil,
				want{"prof", false, []string{"/prof"}}},
			{"command line over profile", env,
				[]string{"--profile", prof, "--hostname", "cli", "--read-only=true", "--bind", "/cli"},
				want{"cli", true, []string{"/cli"}}},
			{"command line over environment", env, []string{"--hostname", "cli", "--read-only=false"},
				want{"cli", false, []string{"/env1", "/env2"}}},
			{"empty --profile drops SANDBOX_PROFILE", map[string]string{"SANDBOX_PROFILE": prof}, []string{"--profile="},
				want{"", false, nil}},
		}
		for _, tc := range cases {
			t.Run(name+"/"+tc.desc, func(t *testing.T) {
				c, _ := mustParse(t, tc.env, append(append([]string{"run"}, tc.args...), "--", "true")...)
				got := want{c.Run.Hostname, c.Run.ReadOnly, c.Run.Bind}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
			})
		}
	}
}

// Every kind of flag takes its value from the profile and the environment.
func TestProfileValues(t *testing.T) {
	prof := writeFile(t, "all.toml", `
uid = 1000
gid = "1000"
net = "none"
cpus = 0.5
memory = "512M"
preserve-fds = 0
publish = ["8080:80"]
env = ["A=1,2"]
io-max = ["8:0:rbps=1M,wbps=2M"]
clearenv = true
command = ["make", "test"]
`)
	c, def := mustParse(t, nil, "run", "--profile", prof)
	r := c.Run
	if r.UID != 1000 || r.GID != 1000 || r.Net != "none" || r.CPUs != "0.5" || r.Memory != "512M" || !r.Clearenv {
		t.Errorf("scalars: %+v", r)
	}
	if !slices.Equal(r.Publish, []string{"8080:80"}) || !slices.Equal(r.Env, []string{"A=1,2"}) ||
		!slices.Equal(r.IOMax, []string{"8:0:rbps=1M,wbps=2M"}) {
		t.Errorf("lists: publish %q env %q io-max %q", r.Publish, r.Env, r.IOMax)
	}
	if len(r.Command) != 0 || !slices.Equal(def.command(), []string{"make", "test"}) {
		t.Errorf("command: given %q, profile's %q", r.Command, def.command())
	}
	// A command on the command line leaves the profile's unused (main
	// takes def.command() only for an empty one).
	c, _ = mustParse(t, nil, "run", "--profile", prof, "--", "id")
	if !slices.Equal(c.Run.Command, []string{"--", "id"}) {
		t.Errorf("command line's command: %q", c.Run.Command)
	}
}

func TestEnvironmentValues(t *testing.T) {
	c, _ := mustParse(t, map[string]string{
		"SANDBOX_IO_MAX":   "/dev/vda:rbps=1M,wbps=2M;8:16:riops=5",
		"SANDBOX_ENV":      `A=1,2;B=3;`,
		"SANDBOX_UID":      "7",
		"SANDBOX_LANDLOCK": "yes",
		"SANDBOX_HOSTNAME": "", // empty: unset
		"SANDBOX_BOGUS":    "x",
	}, "run", "--", "true")
	r := c.Run
	if !slices.Equal(r.IOMax, []string{"/dev/vda:rbps=1M,wbps=2M", "8:16:riops=5"}) {
		t.Errorf("SANDBOX_IO_MAX is ';'-separated: got %q", r.IOMax)
	}
	if !slices.Equal(r.Env, []string{"A=1,2", "B=3"}) {
		t.Errorf(`SANDBOX_ENV is ';'-separated (-e keeps commas): got %q`, r.Env)
	}
	if r.UID != 7 || !r.Landlock || r.Hostname != "" {
		t.Errorf("uid %d landlock %v hostname %q", r.UID, r.Landlock, r.Hostname)
	}
	// run's variables mean nothing to the other commands.
	if _, _, err := parse(t, map[string]string{"SANDBOX_UID": "x", "SANDBOX_JSON": "x"}, "check"); err != nil {
		t.Errorf("check with bad SANDBOX_UID: %v", err)
	}
}

// Bad input names its source: the file and key, or the variable.
func TestProfileErrors(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"typo.toml", "memroy = \"1G\"\n", []string{"typo.toml", `key "memroy"`, "unknown key", `did you mean "memory"`}},
		{"far.toml", "zzzzzzzz = 1\n", []string{`key "zzzzzzzz"`, "unknown key", "long names"}},
		{"short.toml", "p = [\"80:80\"]\n", []string{`key "p"`, "unknown key"}},
		{"switch.toml", "read-only = \"yes\"\n", []string{`key "read-only"`, "expected true or false", `string "yes"`}},
		{"list.toml", "bind = \"/a\"\n", []string{`key "bind"`, "expected a list"}},
		{"elem.toml", "bind = [\"/a\", true]\n", []string{`key "bind"`, "element 2", "expected a string"}},
		{"scalar.toml", "memory = [\"1G\"]\n", []string{`key "memory"`, "expected a string or a number", "a list"}},
		{"table.toml", "[run]\nmemory = \"1G\"\n", []string{`key "run"`, "unknown key", "no tables"}},
		{"enum.toml", "net = \"nonee\"\n", []string{`key "net"`, "--net=nonee", "none"}},
		{"uint.toml", "uid = -1\n", []string{`key "uid"`, "--uid"}},
		{"nested.toml", "profile = \"x.toml\"\n", []string{`key "profile"`, "cannot name another profile"}},
		{"cmd.toml", "command = \"make\"\n", []string{`key "command"`, "list of strings"}},
		{"cmdempty.toml", "command = []\n", []string{`key "command"`, "non-empty", "an empty list"}},
		{"bad.toml", "a = 1\nnet = none\n", []string{"bad.toml, line 2"}},
		{"dup.toml", "net = \"none\"\nnet = \"host\"\n", []string{"dup.toml, line 2"}},
		{"bad.yaml", "net: none\nbind: [/a\n", []string{"bad.yaml, line"}},
		{"dup.yaml", "net: none\nnet: host\n", []string{"dup.yaml, line 2", `key "net" already given at line 1`}},
		{"line.yaml", "net: none\n\nread-only: maybe\n", []string{"line.yaml, line 3", `key "read-only"`}},
		{"list.yml", "- net\n", []string{"list.yml, line 1", "expected a mapping"}},
		{"two.yaml", "net: none\n---\nnet: host\n", []string{"more than one YAML document"}},
		{"p.json", "{}", []string{"p.json", `unknown extension ".json"`}},
		// Before: the command got it, execve refused it (126).
		{"nul.yaml", "command: [\"printf\", \"%s\", \"a\\0b\"]\n", []string{"nul.yaml", `key "command"`, "a NUL byte"}},
		{"nulenv.toml", "env = [\"A=a\\u0000b\"]\n", []string{"nulenv.toml", `key "env"`, "a NUL byte"}},
		// The TOML parser's time and memory grow with the square of these
		// (10 000 levels: over 3 GB and 30 s): refused before it runs.
		{"deep.toml", "env = " + strings.Repeat("{a=", 5000) + "1" + strings.Repeat("}", 5000) + "\n",
			[]string{"deep.toml, line 1", "nested more than 4 levels deep"}},
		{"deeplist.toml", "bind = " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n",
			[]string{"deeplist.toml, line 1", "nested more than 4 levels deep"}},
		{"dotted.toml", "net = \"none\"\n" + strings.Repeat("a.", 10000) + "a = 1\n",
			[]string{"dotted.toml, line 2", "more than 4 dotted parts"}},
		{"header.toml", "\n\n[" + strings.Repeat("a.", 100) + "a]\n",
			[]string{"header.toml, line 3", "more than 4 dotted parts"}},
		{"inline.toml", "env = {" + strings.Repeat("a.", 40) + "a = 1}\n",
			[]string{"inline.toml, line 1", "more than 4 dotted parts"}},
		// The two multiply: 31 levels of 32-part keys took 7 GB and 19 s.
		{"product.toml", "env = " + strings.Repeat("{"+strings.Repeat("a.", 31)+"a = ", 31) + "1" + strings.Repeat("}", 31) + "\n",
			[]string{"product.toml, line 1", "dotted parts"}},
		{"keys.toml", "env = {" + strings.Repeat("k = 1, ", 1100) + "z = 1}\n",
			[]string{"keys.toml, line 1", "more than 1024 keys"}},
		// A float after an inline table is no key's dot: the type is the
		// error, not the shape.
		{"floats.toml", "env = [{}" + strings.Repeat(", 1.5", 40) + "]\n",
			[]string{"floats.toml", `key "env"`, "expected a string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.name, tc.text)
			_, _, err := parse(t, nil, "run", "--profile", path, "--", "true")
			if err == nil {
				t.Fatalf("profile %q: no error", tc.text)
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none.toml")
		_, _, err := parse(t, map[string]string{"SANDBOX_PROFILE": path}, "run", "--", "true")
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("missing profile: %v", err)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "d.toml") // a directory: read fails even for root
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, _, err := parse(t, nil, "run", "--profile", dir, "--", "true")
		if err == nil || !strings.Contains(err.Error(), "cannot read it") {
			t.Errorf("unreadable profile: %v", err)
		}
	})
	t.Run("empty profiles", func(t *testing.T) {
		for _, name := range []string{"e.toml", "e.yaml"} {
			mustParse(t, nil, "run", "--profile", writeFile(t, name, ""), "--", "true")
		}
	})
}

func TestEnvironmentErrors(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"SANDBOX_UID": "abc"}, []string{`SANDBOX_UID="abc"`, "--uid"}},
		{map[string]string{"SANDBOX_NET": "bogus"}, []string{`SANDBOX_NET="bogus"`, "--net=bogus"}},
		{map[string]string{"SANDBOX_READ_ONLY": "maybe"}, []string{`SANDBOX_READ_ONLY="maybe"`}},
		{map[string]string{"SANDBOX_PRESERVE_FDS": "x"}, []string{`SANDBOX_PRESERVE_FDS="x"`, "--preserve-fds"}},
		// Separators alone were an empty list: the egress policy was
		// silently off, where --allow-host '' is refused.
		{map[string]string{"SANDBOX_ALLOW_HOST": ";"}, []string{`SANDBOX_ALLOW_HOST=";"`, "no value"}},
		{map[string]string{"SANDBOX_BIND": ",,"}, []string{`SANDBOX_BIND=",,"`, "no value"}},
	}
	for _, tc := range cases {
		// Checked even where the command line overrides the variable.
		for _, args := range [][]string{{"run", "--", "true"}, {"run", "--uid=1", "--net=none", "--read-only", "--preserve-fds=0", "--", "true"}} {
			_, _, err := parse(t, tc.env, args...)
			if err == nil {
				t.Errorf("%v %q: no error", tc.env, args)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v %q: error %q lacks %q", tc.env, args, err, w)
				}
			}
		}
	}
}

// A value that passes the parser but not the run's own checks is traced
// back to its source in the message.
func TestExplain(t *testing.T) {
	prof := writeFile(t, "p.toml", "read-only = true\n")
	_, def := mustParse(t, map[string]string{"SANDBOX_MEMORY": "lots", "SANDBOX_UPPER": "/u"},
		"run", "--profile", prof, "--cpus", "x", "--", "true")
	base := errors.New("--memory lots: not a size; --upper and --read-only exclude each other; --cpus x: bad")
	got := def.explain(base).Error()
	for _, w := range []string{"--memory from SANDBOX_MEMORY", "--upper from SANDBOX_UPPER",
		`--read-only from key "read-only" in profile ` + prof} {
		if !strings.Contains(got, w) {
			t.Errorf("explained error %q lacks %q", got, w)
		}
	}
	if strings.Contains(got, "--cpus from") {
		t.Errorf("--cpus came from the command line, yet: %q", got)
	}
	if !errors.Is(def.explain(base), base) {
		t.Error("explain must wrap the error (its exit status)")
	}
	if err := errors.New("--pids 0: bad"); def.explain(err) != err {
		t.Errorf("an error naming no defaulted flag is unchanged: %v", def.explain(err))
	}
}

func TestClosest(t *testing.T) {
	names := []string{"memory", "memory-swap", "net", "read-only", "cpus"}
	for in, want := range map[string]string{"memroy": "memory", "readonly": "read-only", "cpu": "cpus", "network": "", "x": ""} {
		if got := closest(in, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

// --help shows each flag's variable and the sections of a man page.
func TestRunHelp(t *testing.T) {
	var c cli
	var out strings.Builder
	def := newDefaults(func(string) (string, bool) { return "", false })
	parser, err := kong.New(&c, kong.Name("sandbox"), kong.Writers(&out, &out), kong.Exit(func(int) {}),
		def.option(), helpOption())
	if err != nil {
		t.Fatal(err)
	}
	parser.Parse([]string{"run", "--help"})
	text := strings.Join(strings.Fields(out.String()), " ")
	for _, f := range def.run.Flags {
		if w := "$" + envName(f); !strings.Contains(text, w) {
			t.Errorf("run --help lacks %s", w)
		}
	}
	for _, w := range []string{"Exit status:", "Profiles (--profile FILE, or $SANDBOX_PROFILE; --profile= for none):", `read-only = true`,
		"Environment:", "Precedence:", "State:", "$SANDBOX_IO_MAX, semicolon-separated", "$SANDBOX_BIND, comma-separated"} {
		if !strings.Contains(text, w) {
			t.Errorf("run --help lacks %q:\n%s", w, out.String())
		}
	}
}

// TestProfileShapeSkipsStrings: brackets and dots inside strings and
// comments are no nesting and no dotted key; a profile full of them reads.
func TestProfileShapeSkipsStrings(t *testing.T) {
	many := strings.Repeat("[{a.", 60)
	prof := writeFile(t, "strings.toml", `# a comment `+many+`
env = ["A=`+many+`", 'B=`+many+`\', """C=\"""`+many+`
""", '''D=`+many+`'''] # `+many+`
hostname = """x"""
command = ["sh", "-c", "echo \"`+many+`\""]
`)
	c, def := mustParse(t, nil, "run", "--profile", prof)
	want := []string{"A=" + many, `B=` + many + `\`, `C="""` + many + "\n", "D=" + many}
	if !slices.Equal(c.Run.Env, want) || c.Run.Hostname != "x" {
		t.Errorf("env %q, hostname %q; want env %q", c.Run.Env, c.Run.Hostname, want)
	}
	if cmd := def.command(); len(cmd) != 3 || cmd[2] != `echo "`+many+`"` {
		t.Errorf("command %q", cmd)
	}
}
