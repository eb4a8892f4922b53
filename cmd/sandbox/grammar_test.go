package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// parseWith parses args with the model of grammar as runCLI does, and
// returns what kong printed, its exit code (-1: none), the error, the
// selected command and its parsed values.
func parseWith(t *testing.T, c *cli, grammar any, one []kong.Option, args []string) string {
	t.Helper()
	var out strings.Builder
	code := -1
	def := newDefaults(func(string) (string, bool) { return "", false })
	def.runless = !whole(grammar) && args[0] != "run"
	parser, err := kong.New(grammar, append(one, kong.Name("sandbox"), kong.Writers(&out, &out), kong.UsageOnError(),
		kong.Exit(func(c int) { code = c }), def.option(), helpOption())...)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	ctx, err := parser.Parse(args)
	cmd := ""
	if ctx != nil {
		cmd = ctx.Command()
	}
	if err == nil && code < 0 {
		if err = emptyValue(ctx); err != nil {
			err = def.explain(err)
		}
	}
	// The program reads the selected command's values only (the whole
	// model also sets the defaults of the others).
	var parsed any
	if cmd != "" {
		word, _, _ := strings.Cut(cmd, " ")
		parsed = reflect.ValueOf(c).Elem().FieldByNameFunc(func(n string) bool { return strings.ToLower(n) == word }).Interface()
	}
	return fmt.Sprintf("output:\n%s\nexit %d, error %v, command %q, parsed %+v", out.String(), code, err, cmd, parsed)
}

// TestGrammarForSameAsWhole: the model of the command the first word names
// alone gives the same help, errors, exit codes and parsed values as the
// whole model.
func TestGrammarForSameAsWhole(t *testing.T) {
	cases := [][]string{
		{"run", "--help"}, {"run", "-h"}, {"run", "--bogus"}, {"run", "--net=bogus", "--", "true"},
		{"run", "--name", "", "--", "true"}, {"run", "--tty=x"}, {"run"}, {"run", "--memory", "1G", "-e", "A=1", "--bind", "/a:/b", "--", "x", "y"},
		{"run", "--read-only", "--net", "none", "echo", "hi"}, {"run", "--", "--help"},
		{"exec"}, {"exec", "--help"}, {"exec", "box"}, {"exec", "box", "--", "true"}, {"exec", "--tty=never", "-e", "A", "box", "--", "sh", "-c", "x"},
		{"exec", "--bogus", "box", "--", "true"}, {"exec", "-e", "", "box", "--", "true"},
		{"ps"}, {"ps", "--help"}, {"ps", "-a", "--json"}, {"ps", "extra"}, {"ps", "--bogus"},
		{"kill"}, {"kill", "--help"}, {"kill", "box"}, {"kill", "box", "KILL"}, {"kill", "box", "1", "2"},
		{"stop", "--help"}, {"stop", "box"}, {"stop", "--time", "3s", "box"}, {"stop", "--time", "x", "box"},
		{"logs", "--help"}, {"logs", "-f", "box"}, {"rm", "--help"}, {"rm", "box"}, {"rm"},
		{"check"}, {"check", "--help"}, {"check", "--json"},
		{"image"}, {"image", "--help"}, {"image", "ls", "--json"}, {"image", "pull", "--help"}, {"image", "pull", "alpine"},
		{"image", "import", "--help"}, {"image", "rm", "x"}, {"image", "prune"}, {"image", "bogus"},
		{"version"}, {"version", "--help"}, {"version", "extra"},
	}
	for _, args := range cases {
		var all, one cli
		want := parseWith(t, &all, &all, nil, args)
		grammar, opts := grammarFor(&one, args)
		if whole(grammar) {
			t.Errorf("%q: grammarFor took the whole model", args)
		}
		if got := parseWith(t, &one, grammar, opts, args); got != want {
			t.Errorf("%q: with the one command's model\n%s\nwith the whole model\n%s", args, got, want)
		}
	}
	for _, args := range [][]string{nil, {"--help"}, {"help"}, {"versio"}, {"completion", "bash"}, {"--bogus"}, {"ru"}} {
		var c cli
		if g, _ := grammarFor(&c, args); !whole(g) {
			t.Errorf("%q: grammarFor took one command's model, want the whole one", args)
		}
	}
}

// TestGrammarForEveryCommand: each command of the whole model is found by
// its name (isCommandField knows how kong names them).
func TestGrammarForEveryCommand(t *testing.T) {
	var c cli
	k, err := kong.New(&c, kong.Name("sandbox"), newDefaults(func(string) (string, bool) { return "", false }).option(), helpOption())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range k.Model.Children {
		if n.Type != kong.CommandNode || n.Name == "completion" {
			continue
		}
		if len(n.Aliases) > 0 {
			t.Errorf("command %s has aliases: grammarFor does not know them", n.Name)
		}
		if g, _ := grammarFor(&c, []string{n.Name}); whole(g) {
			t.Errorf("grammarFor does not find command %s", n.Name)
		}
	}
}
