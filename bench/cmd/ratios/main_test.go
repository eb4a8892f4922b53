package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `{"results":[
 {"command":"sandbox run -- true","mean":0.0062,"stddev":0.0004,"median":0.006,"min":0.0055,"max":0.008,"times":[0.006,0.0061,0.0065]},
 {"command":"bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true","mean":0.0121,"stddev":0.0002,"median":0.012,"min":0.0119,"max":0.0122,"times":[0.012,0.0121,0.0122]}
]}`

func TestRowsRatioToBaseline(t *testing.T) {
	results, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	rs, found := rows(results, "bwrap")
	if !found {
		t.Fatal("baseline not found")
	}
	if got := rs[0].Ratio; got < 0.499 || got > 0.501 {
		t.Errorf("ratio of sandbox = %v, want 0.5", got)
	}
	if got := rs[1].Ratio; got != 1 {
		t.Errorf("ratio of baseline = %v, want 1", got)
	}
	if rs[0].Median != 6 || rs[0].Runs != 3 {
		t.Errorf("row 0 = %+v, want median 6 ms over 3 runs", rs[0])
	}
}

func TestRowsNoBaseline(t *testing.T) {
	results, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	rs, found := rows(results, "podman")
	if found {
		t.Fatal("found a baseline that is not there")
	}
	if got := ratio(rs[0], found); got != "n/a" {
		t.Errorf("ratio = %q, want n/a", got)
	}
}

func TestParseRejectsEmpty(t *testing.T) {
	if _, err := parse(strings.NewReader(`{"results":[]}`)); err == nil {
		t.Error("no error for an export without results")
	}
	if _, err := parse(strings.NewReader(`not json`)); err == nil {
		t.Error("no error for garbage")
	}
}

func TestRunWritesTableAndMarkdown(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "startup.json")
	md := filepath.Join(dir, "summary.md")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run([]string{"-json", in, "-md", md}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"median ms", "0.50", "1.00", "6.00", "sandbox run -- true"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "| `sandbox run -- true` | 6.00 | 6.20 ± 0.40 | 3 | 0.50 |") {
		t.Errorf("markdown:\n%s", b)
	}
}
