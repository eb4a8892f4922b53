package main

import (
	"fmt"
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

// withDecoder builds the decoder program into a directory of PATH, where
// a plain build finds it, and returns that directory.
func withDecoder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, profileName), "sandbox/cmd/sandbox-profile")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", profileName, err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

// TestProfileDecoderHelper: the decoder program, found in PATH as a plain
// build would, answers as the in-process decoding does, values, types,
// lines and errors alike.
func TestProfileDecoderHelper(t *testing.T) {
	withDecoder(t)
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

// TestProfileDecodedOnce: kong calls its BeforeResolve hooks once per
// element of the command line; the profile is decoded once a run (each
// decoding is a start of the decoder).
func TestProfileDecodedOnce(t *testing.T) {
	n := 0
	decodeProfile = func(format string, data []byte) (map[string]any, map[string]int, error) {
		n++
		return decodeInProcess(format, data)
	}
	defer func() { decodeProfile = decodeInProcess }()
	prof := writeFile(t, "once.yaml", "hostname: h\n")
	c, _ := mustParse(t, map[string]string{"SANDBOX_MEMORY": "1g"}, "run", "--net=none", "--tty=never", "--profile", prof, "--", "true")
	if n != 1 || c.Run.Hostname != "h" || c.Run.Memory != "1g" {
		t.Errorf("decoded %d times (want 1); hostname %q, memory %q", n, c.Run.Hostname, c.Run.Memory)
	}
}

// TestProfileCache: a document decoded once is read back from the state
// directory, with the decoder gone; a broken cached answer is decoded again
// and replaced; an error is not kept; the cache keeps profileCacheKeep
// answers; another decoder (build) has answers of its own.
func TestProfileCache(t *testing.T) {
	bin := withDecoder(t)
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	defer func(id string) { profileID = id }(profileID)
	profileID = "test-decoder"
	doc := []byte("hostname: cached\n")
	want, _, err := decodeInHelper(profilewire.YAML, doc)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(xdg, "sandbox", profileCacheDir)
	stored := filepath.Join(cache, profileKey(profilewire.YAML, doc))
	if fi, err := os.Stat(stored); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("the answer was not stored privately: %v", err)
	}
	hide := func() { os.Rename(filepath.Join(bin, profileName), filepath.Join(bin, "gone")) }
	show := func() { os.Rename(filepath.Join(bin, "gone"), filepath.Join(bin, profileName)) }
	hide()
	if got, _, err := decodeInHelper(profilewire.YAML, doc); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("without the decoder: %v %v, want the cached %v", got, err, want)
	}
	profileID = "another-build"
	if _, _, err := decodeInHelper(profilewire.YAML, doc); err == nil {
		t.Errorf("another build's decoder used this one's answer")
	}
	profileID = "test-decoder"
	if err := os.WriteFile(stored, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeInHelper(profilewire.YAML, doc); err == nil {
		t.Errorf("a broken answer was used")
	}
	show()
	if got, _, err := decodeInHelper(profilewire.YAML, doc); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after a broken answer: %v %v", got, err)
	}
	if b, err := os.ReadFile(stored); err != nil || string(b) == "{" {
		t.Errorf("the broken answer was not replaced: %q %v", b, err)
	}
	bad := []byte("a: [1\n")
	if _, _, err := decodeInHelper(profilewire.YAML, bad); err == nil {
		t.Fatal("a bad document decoded")
	}
	if _, err := os.Stat(filepath.Join(cache, profileKey(profilewire.YAML, bad))); err == nil {
		t.Errorf("an error was kept")
	}
	for i := range profileCacheKeep + 5 {
		if _, _, err := decodeInHelper(profilewire.YAML, []byte(fmt.Sprintf("hostname: h%d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if ents, err := os.ReadDir(cache); err != nil || len(ents) != profileCacheKeep {
		t.Errorf("%d answers kept (%v), want %d", len(ents), err, profileCacheKeep)
	}
}
