// Command sandbox-profile is the profile decoder behind `sandbox run
// --profile FILE`: the YAML and TOML parsers (package profiledoc), kept out
// of `sandbox` itself so that their package initialisation (~0.8 ms) is
// paid only by a run with a profile, never by every run, exec or ps.
// scripts/build.sh embeds it in sandbox, which runs it from a sealed memfd.
// It is started by sandbox, never by hand: its argument is the format
// (toml or yaml), its input the profile's text on stdin, its answer one
// JSON document on stdout (package profilewire). It opens no file.
package main

import (
	"errors"
	"io"
	"os"

	"sandbox/internal/profiledoc"
	"sandbox/internal/profilewire"
	"sandbox/internal/userfile"
)

func main() {
	var values map[string]any
	var lines map[string]int
	data, err := read()
	if err == nil {
		values, lines, err = profiledoc.Decode(format(), data)
	}
	out, merr := profilewire.Encode(values, lines, err)
	if merr != nil {
		os.Stderr.WriteString("sandbox-profile: " + merr.Error() + "\n")
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		os.Exit(1)
	}
}

// format is the one argument, the document's format.
func format() string {
	if len(os.Args) != 2 {
		return ""
	}
	return os.Args[1]
}

// read reads the document, no more than a profile file may hold (sandbox
// read the file with the same bound).
func read() ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(os.Stdin, userfile.MaxConfig+1))
	if err != nil {
		return nil, errors.New(": reading it from sandbox: " + err.Error())
	}
	if len(data) > userfile.MaxConfig {
		return nil, errors.New(": over the limit of a profile (1 MiB)")
	}
	return data, nil
}
