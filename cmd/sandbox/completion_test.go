package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sandbox/internal/testenv"

	"github.com/alecthomas/kong"
)

// testApp has a flag or argument of each kind completion tells apart, and
// a command taking a sandbox name (as the lifecycle commands do).
type testApp struct {
	Run struct {
		Mode    string   `enum:"fast,slow" default:"fast" help:"Mode. Second sentence."`
		Root    string   `type:"path" placeholder:"DIR" help:"Root."`
		Conf    string   `placeholder:"FILE" help:"Config, e.g. a.toml."`
		Filter  string   `placeholder:"default|off|FILE" help:"Filter."`
		Share   string   `placeholder:"rw|ro" help:"Share."`
		Bind    []string `placeholder:"SRC[:DST]" help:"Bind."`
		Size    string   `placeholder:"SIZE" help:"Size."`
		Quiet   bool     `short:"q" help:"Quiet."`
		Color   bool     `negatable:"" help:"Color."`
		Secret  string   `hidden:"" help:"Hidden."`
		Command []string `arg:"" optional:"" passthrough:"partial" help:"Command."`
	} `cmd:"" help:"Run it."`
	Logs struct {
		Follow bool   `short:"f" help:"Follow."`
		Name   string `arg:"" help:"Sandbox."`
	} `cmd:"" help:"Show logs."`
	Shell struct {
		Kind string `arg:"" enum:"bash,zsh" help:"Shell."`
	} `cmd:"" help:"Shell."`
	Ghost struct{} `cmd:"" hidden:"" help:"Hidden."`
}

func testModel(t *testing.T, grammar any) *kong.Application {
	t.Helper()
	k, err := kong.New(grammar, kong.Name("sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	return k.Model
}

// realModel is the model `sandbox completion` uses.
func realModel(t *testing.T) *kong.Application {
	t.Helper()
	var c cli
	k, err := kong.New(&c, kong.Name("sandbox"), newDefaults(os.LookupEnv).option(), helpOption())
	if err != nil {
		t.Fatal(err)
	}
	return k.Model
}

func TestCompletionTree(t *testing.T) {
	root := completionTree(testModel(t, &testApp{}))
	var names []string
	for _, c := range root.children {
		names = append(names, c.key())
	}
	if !slices.Equal(names, []string{"run", "logs", "shell"}) {
		t.Fatalf("commands %q, want run logs shell (no hidden one)", names)
	}
	run := root.children[0]
	got := map[string]string{}
	for _, f := range run.flags {
		got[f.name] = strings.TrimSpace(string(f.kind) + " " + strings.Join(f.words, " "))
	}
	want := map[string]string{
		"--help": "bool", "-h": "bool", "--mode": "words fast slow", "--root": "dirs", "--conf": "files",
		"--filter": "files default off", "--share": "words rw ro", "--bind": "files", "--size": "free",
		"--quiet": "bool", "-q": "bool", "--color": "bool", "--no-color": "bool",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("run's flags:\n got %v\nwant %v", got, want)
	}
	if len(run.args) != 1 || run.args[0].kind != kindCommand {
		t.Errorf("run's argument: %+v, want a command", run.args)
	}
	if a := root.children[1].args; len(a) != 1 || a[0].kind != kindNames {
		t.Errorf("logs' argument: %+v, want sandbox names", a)
	}
	if a := root.children[2].args; len(a) != 1 || a[0].kind != kindWords || !slices.Equal(a[0].words, []string{"bash", "zsh"}) {
		t.Errorf("shell's argument: %+v, want the words bash zsh", a)
	}
	if run.flags[2].help != "Mode" || run.flags[4].help != "Config, e.g. a.toml" {
		t.Errorf("descriptions are the first sentence: %q, %q", run.flags[2].help, run.flags[4].help)
	}
}

// script writes the completion script of model for shell into a file.
func script(t *testing.T, model *kong.Application, shell string) string {
	t.Helper()
	var b strings.Builder
	var err error
	root := completionTree(model)
	switch shell {
	case "bash":
		err = writeBash(&b, "sandbox", root)
	case "zsh":
		err = writeZsh(&b, "sandbox", root)
	case "fish":
		err = writeFish(&b, "sandbox", root)
	}
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "sandbox."+shell, b.String())
}

func needShell(t *testing.T, shell string) string {
	t.Helper()
	p, err := exec.LookPath(shell)
	testenv.RequireOrSkip(t, err == nil, shell+" (scripts/setup-host.sh installs it)")
	return p
}

// shellRun runs a shell command with a bound, in dir, with extra env.
func shellRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestCompletionSyntax(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			sh := needShell(t, shell)
			for _, m := range []*kong.Application{realModel(t), testModel(t, &testApp{})} {
				shellRun(t, "", nil, sh, "-n", script(t, m, shell))
			}
		})
	}
}

// completionDir holds a directory and a file to complete.
func completionDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stateDir makes an XDG_RUNTIME_DIR with the state of sandboxes db and web.
func stateDir(t *testing.T) string {
	t.Helper()
	xdg := t.TempDir()
	for _, d := range []string{"sandbox/db", "sandbox/web", "sandbox/-bad"} {
		if err := os.MkdirAll(filepath.Join(xdg, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(xdg, "sandbox", "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return xdg
}

type compCase struct {
	line string   // the command line up to the cursor
	want []string // exactly these candidates (sorted), or
	has  []string // at least these
}

func checkCandidates(t *testing.T, shell string, c compCase, got []string) {
	t.Helper()
	sort.Strings(got)
	got = slices.Compact(got)
	if c.want != nil && !slices.Equal(got, c.want) {
		t.Errorf("%s: %q completes to %q, want %q", shell, c.line, got, c.want)
	}
	for _, h := range c.has {
		if !slices.Contains(got, h) {
			t.Errorf("%s: %q completes to %q, lacking %q", shell, c.line, got, h)
		}
	}
}

// bashComplete drives the completion function as bash's programmable
// completion does: COMP_WORDS split as readline splits (at '=' too).
func bashComplete(t *testing.T, scriptPath, dir string, env []string, words ...string) []string {
	t.Helper()
	var q []string
	for _, w := range words {
		q = append(q, shQuote(w))
	}
	prog := fmt.Sprintf(`source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _sandbox; printf '%%s\n' "${COMPREPLY[@]}"`,
		shQuote(scriptPath), strings.Join(q, " "), len(words)-1)
	return strings.Fields(shellRun(t, dir, env, needShell(t, "bash"), "--norc", "--noprofile", "-c", prog))
}

// bashWords splits a command line as readline does by default: at blanks,
// and '=' as a word of its own.
func bashWords(line string) []string {
	var words []string
	for _, f := range strings.Split(line, " ") {
		parts := strings.Split(f, "=")
		for i, p := range parts {
			if i > 0 {
				words = append(words, "=")
			}
			if p != "" || i == len(parts)-1 {
				words = append(words, p)
			}
		}
	}
	// "--net=" ends in "=": readline's current word is then "=".
	if len(words) > 1 && words[len(words)-1] == "" && words[len(words)-2] == "=" {
		words = words[:len(words)-1]
	}
	return words
}

var realCases = []compCase{
	{line: "sandbox ", has: []string{"run", "check", "version", "completion"}},
	{line: "sandbox ru", want: []string{"run"}},
	{line: "sandbox run --ne", want: []string{"--net"}},
	{line: "sandbox run --net=", want: []string{"auto", "builtin", "host", "none", "pasta", "slirp4netns"}},
	{line: "sandbox run --net=no", want: []string{"none"}},
	{line: "sandbox run --net ", want: []string{"auto", "builtin", "host", "none", "pasta", "slirp4netns"}},
	{line: "sandbox run -p 80:80 --read-o", want: []string{"--read-only"}},
	{line: "sandbox run --rootfs ", want: []string{"adir/"}},
	{line: "sandbox run --seccomp=", has: []string{"default", "unconfined", "adir/", "afile"}},
	{line: "sandbox run --profile a", has: []string{"afile"}},
	{line: "sandbox run --tty=al", want: []string{"always"}},
	{line: "sandbox run -v -- ech", has: []string{"echo"}},
	{line: "sandbox run --net none -- ls a", has: []string{"adir/", "afile"}},
	{line: "sandbox completion ", want: []string{"bash", "fish", "zsh"}},
	{line: "sandbox check --j", want: []string{"--json"}},
}

var testCases = []compCase{
	{line: "sandbox logs ", want: []string{"db", "web"}},
	{line: "sandbox logs w", want: []string{"web"}},
	{line: "sandbox logs -f ", want: []string{"db", "web"}},
	{line: "sandbox run --no-c", want: []string{"--no-color"}},
	{line: "sandbox run --filter ", has: []string{"default", "off", "afile"}},
	{line: "sandbox shell ", want: []string{"bash", "zsh"}},
}

// eachScript calls fn with the script for shell of each model the shell
// tests complete in, and that model's cases; dir holds a directory and a
// file, env points XDG_RUNTIME_DIR to the state of sandboxes db and web.
func eachScript(t *testing.T, shell string, fn func(path string, cases []compCase, dir string, env []string)) {
	dir := completionDir(t)
	env := []string{"XDG_RUNTIME_DIR=" + stateDir(t)}
	fn(script(t, realModel(t), shell), realCases, dir, env)
	fn(script(t, testModel(t, &testApp{}), shell), testCases, dir, env)
}

func TestCompletionBash(t *testing.T) {
	t.Parallel()
	needShell(t, "bash")
	eachScript(t, "bash", func(path string, cases []compCase, dir string, env []string) {
		for _, c := range cases {
			got := bashComplete(t, path, dir, env, bashWords(c.line)...)
			checkCandidates(t, "bash", c, markDirs(dir, got))
		}
	})
	dir := t.TempDir()
	// Without '=' in COMP_WORDBREAKS the value arrives in one word.
	got := bashComplete(t, script(t, realModel(t), "bash"), dir, nil, "sandbox", "run", "--net=no")
	checkCandidates(t, "bash", compCase{line: "--net=no (one word)", want: []string{"--net=none"}}, got)
	// A relative XDG_RUNTIME_DIR is not where state lives (state.BaseDir).
	if err := os.MkdirAll(filepath.Join(dir, "rel", "sandbox", "wrong"), 0o700); err != nil {
		t.Fatal(err)
	}
	got = bashComplete(t, script(t, testModel(t, &testApp{}), "bash"), dir, []string{"XDG_RUNTIME_DIR=rel"}, "sandbox", "logs", "wr")
	if slices.Contains(got, "wrong") {
		t.Errorf("bash completed a name from a relative XDG_RUNTIME_DIR: %q", got)
	}
}

func TestCompletionFish(t *testing.T) {
	t.Parallel()
	fish := needShell(t, "fish")
	eachScript(t, "fish", func(path string, cases []compCase, dir string, env []string) {
		for _, c := range cases {
			out := shellRun(t, dir, env, fish, "--no-config", "-c",
				fmt.Sprintf("source %s; complete -C %s", fishQuote(path), fishQuote(c.line)))
			// fish answers "--net=" with "--net=VALUE": compare the values.
			last := c.line[strings.LastIndex(c.line, " ")+1:]
			prefix, _, hasValue := strings.Cut(last, "=")
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				cand, _, _ := strings.Cut(l, "\t")
				if hasValue {
					cand = strings.TrimPrefix(cand, prefix+"=")
				}
				got = append(got, cand)
			}
			checkCandidates(t, "fish", c, markDirs(dir, got))
		}
	})
}

// zshDriver completes lines in one interactive zsh on a pty (zsh/zpty):
// each candidate offered goes to a file, then a marker per line.
const zshDriver = `
zmodload zsh/zpty || exit 2
script=$1 out=$2 dump=$3
shift 3
zpty z zsh -f -i
zpty -w z "PS1='> '; unsetopt autolist beep; autoload -Uz compinit && compinit -u -C -d ${(q)dump}; source ${(q)script}"
zpty -w z "compadd() { if (( \$@[(I)-[OAD]] )); then builtin compadd \"\$@\"; return; fi; local -a m; builtin compadd -O m \"\$@\"; print -rl -- \$m >> ${(q)out}; builtin compadd \"\$@\"; }"
zpty -w z "zle -C t-complete complete-word _main_complete; t-widget() { zle t-complete; print -r -- __DONE__ >> ${(q)out}; }; zle -N t-widget; bindkey '^X' t-widget"
n=0
for line; do
	n=$((n + 1))
	zpty -w -n z "$line"$'\x18'
	for i in {1..600}; do
		c=$(grep -c __DONE__ $out 2>/dev/null)
		(( ${c:-0} >= n )) && break
		sleep 0.05
	done
	zpty -w -n z $'\x15'
done
zpty -d z
`

func TestCompletionZsh(t *testing.T) {
	t.Parallel()
	zsh := needShell(t, "zsh")
	driver := writeFile(t, "driver.zsh", zshDriver)
	dump := filepath.Join(t.TempDir(), "zcompdump") // the second session reuses the first's
	eachScript(t, "zsh", func(path string, cases []compCase, dir string, env []string) {
		out := filepath.Join(t.TempDir(), "out")
		args := []string{"-f", driver, path, out, dump}
		for _, c := range cases {
			args = append(args, c.line)
		}
		shellRun(t, dir, env, zsh, args...)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		results := strings.Split(string(b), "__DONE__\n")
		if len(results) != len(cases)+1 {
			t.Fatalf("zsh completed %d of %d lines: %q", len(results)-1, len(cases), b)
		}
		for i, c := range cases {
			checkCandidates(t, "zsh", c, markDirs(dir, strings.Split(results[i], "\n")))
		}
	})
}

// markDirs ends the candidates that are directories of dir with a '/', as
// the shells show them.
func markDirs(dir string, in []string) []string {
	out := []string{}
	for _, s := range in {
		if s == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, s)); err == nil && fi.IsDir() && !strings.HasSuffix(s, "/") {
			s += "/"
		}
		out = append(out, s)
	}
	return out
}

// The scripts hold every flag and enum value of the model: a new flag
// completes without editing completion.go.
func TestCompletionContent(t *testing.T) {
	m := realModel(t)
	for _, shell := range []string{"bash", "zsh", "fish"} {
		b, err := os.ReadFile(script(t, m, shell))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		eachNode(completionTree(m), func(n *compNode) {
			for _, f := range n.flags {
				name := f.name
				if shell == "fish" {
					name = map[bool]string{true: "-l ", false: "-s "}[strings.HasPrefix(name, "--")] +
						fishQuote(strings.TrimLeft(name, "-"))
				}
				if !strings.Contains(text, name) {
					t.Errorf("%s script lacks %s of %q", shell, name, n.key())
				}
				for _, w := range f.words {
					if !strings.Contains(text, w) {
						t.Errorf("%s script lacks %s's value %s", shell, f.name, w)
					}
				}
			}
		})
	}
}
