package main

import (
	"reflect"
	"strings"

	"github.com/alecthomas/kong"
)

// grammarFor returns the options that give kong its model for args: when
// the first word names a command (other than completion, which prints the
// whole model), an empty grammar with that command alone, added as kong's
// dynamic command with its field's tag and parsed straight into c's
// field; else c itself, every command. Building the model of every command
// (~55 flags of run, their tags, interpolated help) was a quarter of the
// CPU of a `sandbox version`. Help, errors and exit codes are those of the
// whole model: once the first word selected a command, kong reads no other
// command's part of it.
func grammarFor(c *cli, args []string) (grammar any, opts []kong.Option) {
	if len(args) == 0 || args[0] == "completion" {
		return c, nil
	}
	t := reflect.TypeOf(c).Elem()
	for i := range t.NumField() {
		f := t.Field(i)
		if !isCommandField(f, args[0]) {
			continue
		}
		field := reflect.ValueOf(c).Elem().Field(i).Addr().Interface()
		return &struct{}{}, []kong.Option{kong.DynamicCommand(args[0], f.Tag.Get("help"), f.Tag.Get("group"), field, string(f.Tag))}
	}
	return c, nil // help, a typo, an unknown word: kong needs them all
}

// isCommandField says whether f is the command kong names word: its name
// tag, else its field name in kong's lower-case dashed form (no command of
// cli has more than one word, or aliases).
func isCommandField(f reflect.StructField, word string) bool {
	if _, ok := f.Tag.Lookup("cmd"); !ok {
		return false
	}
	if n, ok := f.Tag.Lookup("name"); ok {
		return n == word
	}
	return strings.ToLower(f.Name) == word
}

// whole says whether grammar is every command's.
func whole(grammar any) bool {
	_, ok := grammar.(*cli)
	return ok
}
