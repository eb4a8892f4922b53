package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// kongParse parses args as runCLI's kong path does (the whole model, the
// command's words after the first cut off by splitCommand and appended
// after); ok false when kong refuses them or prints help.
func kongParse(t *testing.T, args []string) (c cli, name string, ok bool) {
	t.Helper()
	var out strings.Builder
	code := -1
	def := newDefaults(func(string) (string, bool) { return "", false })
	parser, err := kong.New(&c, kong.Name("sandbox"), kong.Writers(&out, &out), kong.Exit(func(c int) { code = c }),
		def.option(), helpOption())
	if err != nil {
		t.Fatal(err)
	}
	kargs, rest := splitCommand(args)
	ctx, err := parser.Parse(kargs)
	if err != nil || code >= 0 || emptyValue(ctx) != nil {
		return c, "", false
	}
	c.Exec.Command = append(c.Exec.Command, rest...)
	name, _, _ = strings.Cut(ctx.Command(), " ")
	return c, name, true
}

// selected is what the program reads of c for command name.
func selected(c cli, name string) string {
	switch name {
	case "exec":
		return fmt.Sprintf("%#v", c.Exec)
	case "ps":
		return fmt.Sprintf("%#v", c.Ps)
	}
	return ""
}

// TestFastParseSameAsKong: every command line fastParse takes gives the
// values kong gives; the common forms are taken (else the fast path is
// dead), and what it leaves to kong includes every help, error and
// doubtful form.
func TestFastParseSameAsKong(t *testing.T) {
	taken := [][]string{
		{"version"}, {"ps"}, {"ps", "-a"}, {"ps", "--all"}, {"ps", "--json"}, {"ps", "-a", "--json"}, {"ps", "--json", "-a", "-a"},
		{"exec", "box", "--", "true"}, {"exec", "box", "--", "sh", "-c", "echo a,b; exit 3"},
		{"exec", "box", "--", "--help"}, {"exec", "box", "--", "-x", "--", "y"}, {"exec", "box", "--", ""},
		{"exec", "--tty=never", "-e", "A", "box", "--", "sh", "-c", "x"}, {"exec", "--tty", "always", "box", "--", "ls"},
		{"exec", "-e", "A=1", "--env", "B=2", "--env=C=3=4", "box", "--", "env"},
		{"exec", "--chdir", "/tmp", "box", "--", "pwd"}, {"exec", "--chdir=/", "--tty=auto", "box", "--", "pwd"},
		{"exec", "box", "-e", "A=1", "--tty", "never", "--", "true"}, {"exec", "--tty", "never", "--tty", "always", "box", "--", "x"},
		{"exec", "a=b", "--", "true"}, {"exec", "box.1_x-y", "--", "true"}, {"exec", "-e", "A= b", "box", "--", "true"},
	}
	left := [][]string{
		nil, {"--help"}, {"version", "extra"}, {"version", "--help"}, {"ps", "--help"}, {"ps", "-h"}, {"ps", "extra"},
		{"ps", "--json=true"}, {"ps", "-aa"}, {"ps", "--bogus"}, {"run", "--", "true"}, {"kill", "box"},
		{"exec"}, {"exec", "--help"}, {"exec", "box"}, {"exec", "box", "--"}, {"exec", "--", "true"},
		{"exec", "box", "true"}, {"exec", "box", "other", "--", "true"}, {"exec", "-h", "box", "--", "true"},
		{"exec", "--bogus", "box", "--", "true"}, {"exec", "-e", "", "box", "--", "true"}, {"exec", "--env=", "box", "--", "true"},
		{"exec", "-e", "A=1,B=2", "box", "--", "true"}, {"exec", "-e", `A=\,`, "box", "--", "true"}, {"exec", "-e", "-x", "box", "--", "true"},
		{"exec", "-eA=1", "box", "--", "true"}, {"exec", "-e=A", "box", "--", "true"}, {"exec", "--tty=x", "box", "--", "true"},
		{"exec", "--tty", "box", "--", "true"}, {"exec", "--tty="}, {"exec", "--chdir", "", "box", "--", "true"},
		{"exec", "--chdir", "--", "box", "--", "true"}, {"exec", "box", "-e"}, {"exec", "-box", "--", "true"}, {"exec", "box", "--help", "--", "x"},
	}
	for _, args := range taken {
		if _, _, ok := fastParse(args); !ok {
			t.Errorf("%q: left to kong, want the fast path", args)
		}
	}
	for _, args := range left {
		if _, _, ok := fastParse(args); ok {
			t.Errorf("%q: taken by the fast path, want kong", args)
		}
	}
	for _, args := range append(taken, left...) {
		fc, fname, ok := fastParse(args)
		if !ok {
			continue
		}
		kc, kname, kok := kongParse(t, args)
		if !kok {
			t.Errorf("%q: fast path took what kong refuses", args)
			continue
		}
		if fname != kname || selected(fc, fname) != selected(kc, kname) {
			t.Errorf("%q: fast path %s %s, kong %s %s", args, fname, selected(fc, fname), kname, selected(kc, kname))
		}
	}
}
