package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sandbox/internal/profiledoc"
	"sandbox/internal/profilewire"
)

// The package's tests decode profiles in process, through the same answer
// the decoder writes; TestProfileDecoderHelper runs the decoder itself.
func init() { decodeProfile = decodeInProcess }

// decodeInProcess is sandbox-profile and decodeInHelper without the
// process between them.
func decodeInProcess(format string, data []byte) (map[string]any, map[string]int, error) {
	out, err := profilewire.Encode(profiledoc.Decode(format, data))
	if err != nil {
		return nil, nil, err
	}
	return profilewire.Decode(out)
}

// TestProfileDecoderHelper: the decoder program, found in PATH as a plain
// build would, answers as the in-process decoding does, values, types,
// lines and errors alike.
func TestProfileDecoderHelper(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, profileName), "sandbox/cmd/sandbox-profile")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", profileName, err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	docs := []struct{ format, text string }{
		{profilewire.YAML, "hostname: h\nenv: [A=1, \"B=\\0\"]\nmemory: 512\ncpus: 0.5\npids: 18446744073709551615\nread-only: true\ntmpfs: ~\nbind: {a: 1}\nx: 2001-02-03\n"},
		{profilewire.TOML, "hostname = 'h'\nenv = ['A=1']\nmemory = 512\ncpus = inf\nread-only = false\nd = 1979-05-27T07:32:00Z\n[[t]]\na = 1\n"},
		{profilewire.YAML, "a: 1\n  b: [\n"},          // the parser's error, with its line
		{profilewire.TOML, "a = [[[[[[[[1]]]]]]]]\n"}, // refused before the parser
	}
	for _, d := range docs {
		wantV, wantL, wantErr := decodeInProcess(d.format, []byte(d.text))
		gotV, gotL, gotErr := decodeInHelper(d.format, []byte(d.text))
		if (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error() {
			t.Errorf("%s %q: error %v, want %v", d.format, d.text, gotErr, wantErr)
			continue
		}
		if !reflect.DeepEqual(gotV, wantV) || !reflect.DeepEqual(gotL, wantL) {
			t.Errorf("%s %q:\n got %#v %v\nwant %#v %v", d.format, d.text, gotV, gotL, wantV, wantL)
		}
	}
	// The in-process decoding is the parsers' own: a date stays a date for
	// describe, the biggest integer stays exact, infinity stays a float.
	v, _, err := decodeInHelper(profilewire.TOML, []byte("d = 1979-05-27T07:32:00Z\nn = 9223372036854775807\nf = -inf\n"))
	if err != nil {
		t.Fatal(err)
	}
	if describe(v["d"]) != "a time.Time" || v["n"] != int64(math.MaxInt64) || !math.IsInf(v["f"].(float64), -1) {
		t.Errorf("decoded %#v", v)
	}
	if _, _, err := decodeInHelper(profilewire.YAML, []byte("a: [1, 2")); err == nil || !strings.HasPrefix(err.Error(), ", line ") {
		t.Errorf("a YAML error: %v, want one starting with \", line \"", err)
	}
	// A list nested as deep as the YAML parser allows crosses the pipe (it
	// broke the answer's JSON at encoding/json's nesting limit), and is
	// then refused for what it is, as sandbox said when it parsed itself.
	deep := "hostname: " + strings.Repeat("[", 6000) + strings.Repeat("]", 6000) + "\n"
	if v, _, err := decodeInHelper(profilewire.YAML, []byte(deep)); err != nil {
		t.Errorf("a deep list: %v", err)
	} else if describe(v["hostname"]) != "a list" {
		t.Errorf("a deep list decoded as %s", describe(v["hostname"]))
	}
}
