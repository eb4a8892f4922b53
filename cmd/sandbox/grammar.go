package main

import (
	"reflect"
	"strings"
)

// grammarFor returns what kong builds its model from for args: when the
// first word names a command (other than completion, which prints the
// whole model), a struct holding that command's field of cli alone, with
// the same name, type and tag; else c itself. Building the model of every
// command (~55 flags of run, their tags, interpolated help) was a quarter
// of the CPU of a `sandbox version`. Help, errors and exit codes are those
// of the whole model: once the first word selected a command, kong reads
// no other command's part of it. fill copies the parsed command back into
// c (a no-op for the whole model).
func grammarFor(c *cli, args []string) (grammar any, fill func()) {
	whole := func() {}
	if len(args) == 0 || args[0] == "completion" {
		return c, whole
	}
	t := reflect.TypeOf(c).Elem()
	for i := range t.NumField() {
		f := t.Field(i)
		if !isCommandField(f, args[0]) {
			continue
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		return one.Interface(), func() { reflect.ValueOf(c).Elem().Field(i).Set(one.Elem().Field(0)) }
	}
	return c, whole // help, a typo, an unknown word: kong needs them all
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

// hasCommand says whether grammar's model has the command word.
func hasCommand(grammar any, word string) bool {
	if _, ok := grammar.(*cli); ok {
		return true
	}
	return isCommandField(reflect.TypeOf(grammar).Elem().Field(0), word)
}
