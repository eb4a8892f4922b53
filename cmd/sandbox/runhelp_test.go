package main

import (
	"testing"

	"github.com/alecthomas/kong"
)

// runNode is run's command in kong's whole model, as runCLI builds it.
func runNode(t *testing.T) *kong.Node {
	t.Helper()
	var c cli
	k, err := kong.New(&c, kong.Name("sandbox"), newDefaults(func(string) (string, bool) { return "", false }).option(), helpOption())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range k.Model.Children {
		if n.Name == "run" {
			return n
		}
	}
	t.Fatal("no run command in kong's model")
	return nil
}

// TestRunHelpComplete: every flag and argument of run has its help in
// runHelp, and runHelp names nothing else.
func TestRunHelpComplete(t *testing.T) {
	run := runNode(t)
	seen := map[string]bool{}
	values := run.Positional
	for _, f := range run.Flags {
		values = append(values, f.Value)
	}
	for _, v := range values {
		seen[v.Name] = true
		if v.Help == "" || runHelp()[v.Name] == "" {
			t.Errorf("run's %s has no help in runHelp", v.Name)
		}
	}
	for name := range runHelp() {
		if !seen[name] {
			t.Errorf("runHelp has %q, which is no flag or argument of run", name)
		}
	}
}
