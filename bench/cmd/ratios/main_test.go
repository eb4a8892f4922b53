package main

import (
	"math"
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

const sampleBase = `{"results":[
 {"command":"sandbox run --net=none -- true","mean":0.015,"stddev":0.001,"median":0.015,"times":[0.015,0.015]},
 {"command":"sandbox@base run --net=none -- true","mean":0.06,"stddev":0.002,"median":0.06,"times":[0.06,0.06]},
 {"command":"sandbox ps","mean":0.008,"stddev":0.001,"median":0.008,"times":[0.008,0.008]},
 {"command":"sandbox@base ps","mean":0.016,"stddev":0.001,"median":0.016,"times":[0.016,0.016]},
 {"command":"sandbox@base version","mean":0.016,"stddev":0.001,"median":0.016,"times":[0.016,0.016]},
 {"command":"bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true","mean":0.012,"stddev":0.0002,"median":0.012,"times":[0.012,0.012]}
]}`

func TestPairsBaseAndNew(t *testing.T) {
	results, err := parse(strings.NewReader(sampleBase))
	if err != nil {
		t.Fatal(err)
	}
	rs, found := rows(results, "bwrap")
	ps := pairs(rs)
	if len(ps) != 3 {
		t.Fatalf("pairs = %+v, want 3", ps)
	}
	if ps[0].Command != "sandbox run --net=none -- true" || ps[0].Base == nil || ps[0].New == nil {
		t.Errorf("pair 0 = %+v", ps[0])
	}
	if got := ps[0].cells(found); got != [5]string{"60.00", "5.00", "15.00", "1.25", "0.25"} {
		t.Errorf("cells of pair 0 = %q", got)
	}
	// A line only the base binary ran keeps an empty new side.
	if ps[2].Command != "sandbox version" || ps[2].New != nil || ps[2].cells(found)[2] != "—" {
		t.Errorf("pair 2 = %+v", ps[2])
	}
	if pairs(rs[:1]) != nil {
		t.Error("pairs without any base line should be nil (the plain table only)")
	}
}

func TestGoals(t *testing.T) {
	for _, bad := range []string{"sandbox ps", "<=10ms", "sandbox ps<=10", "sandbox ps<=-1ms", "sandbox ps<=zms"} {
		if _, err := parseGoal(bad); err == nil {
			t.Errorf("parseGoal(%q): no error", bad)
		}
	}
	results, err := parse(strings.NewReader(sampleBase))
	if err != nil {
		t.Fatal(err)
	}
	rs, found := rows(results, "bwrap")
	var goals []goal
	for _, s := range []string{"sandbox run --net=none -- true<=1.5x", "sandbox ps<=10ms", "sandbox run --net=none -- true<=1.0x", "sandbox exec NAME -- true<=10ms"} {
		g, err := parseGoal(s)
		if err != nil {
			t.Fatal(err)
		}
		goals = append(goals, g)
	}
	got := evalGoals(goals, rs, found)
	want := []goalRow{
		{"sandbox run --net=none -- true ≤ 1.5× bwrap", "5.00×", "1.25×", "yes"},
		{"sandbox ps ≤ 10 ms", "16.00 ms", "8.00 ms", "yes"},
		{"sandbox run --net=none -- true ≤ 1.0× bwrap", "5.00×", "1.25×", "no"},
		{"sandbox exec NAME -- true ≤ 10 ms", "—", "—", "not measured"},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("goal %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRunWritesSideBySide(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "startup.json")
	md := filepath.Join(dir, "summary.md")
	if err := os.WriteFile(in, []byte(sampleBase), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run([]string{"-json", in, "-md", md, "-goal", "sandbox ps<=10ms"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"base × bwrap", "new ÷ base", "sandbox ps ≤ 10 ms", "sandbox@base ps"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `sandbox run --net=none -- true` | 60.00 | 5.00 | 15.00 | 1.25 | 0.25 |",
		"| sandbox ps ≤ 10 ms | 16.00 ms | 8.00 ms | yes |",
		"| `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true` | 12.00 |",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b)
		}
	}
	if err := run([]string{"-json", in, "-goal", "sandbox ps"}, &out); err == nil {
		t.Error("no error for a goal without a limit")
	}
}

// TestMergeRounds: two rounds' exports are one line per command, over all
// of both rounds' times (the second round lists its commands in the other
// order, as bench/startup.sh runs them).
func TestMergeRounds(t *testing.T) {
	r1 := []result{
		{Command: "sandbox ps", Median: 0.010, Times: []float64{0.010, 0.011, 0.009}},
		{Command: "bwrap x", Median: 0.020, Times: []float64{0.020, 0.021}},
	}
	r2 := []result{
		{Command: "bwrap x", Median: 0.030, Times: []float64{0.030, 0.031}},
		{Command: "sandbox ps", Median: 0.013, Times: []float64{0.013}},
		{Command: "only here", Median: 0.005, Times: []float64{0.005}},
	}
	got := merge(r1, r2)
	if len(got) != 3 || got[0].Command != "sandbox ps" || got[1].Command != "bwrap x" || got[2].Command != "only here" {
		t.Fatalf("merged commands: %+v", got)
	}
	ps := got[0]
	if len(ps.Times) != 4 || math.Abs(ps.Median-0.0105) > 1e-12 || ps.Min != 0.009 || ps.Max != 0.013 {
		t.Errorf("sandbox ps merged: %+v, want 4 times, median 10.5 ms, min 9, max 13", ps)
	}
	if want := (0.010 + 0.011 + 0.009 + 0.013) / 4; math.Abs(ps.Mean-want) > 1e-12 {
		t.Errorf("mean %v, want %v", ps.Mean, want)
	}
	if b := got[1]; len(b.Times) != 4 || math.Abs(b.Median-0.0255) > 1e-12 {
		t.Errorf("bwrap merged: %+v, want median 25.5 ms over 4 times", b)
	}
	if len(r1[0].Times) != 3 {
		t.Errorf("merge changed its input: %v", r1[0].Times)
	}
	if one := merge(r1); one[0].Median != 0.010 {
		t.Errorf("one run: median %v, want hyperfine's own 0.010", one[0].Median)
	}
}

// TestRunMergesFiles: -json twice gives the merged table and -merged the
// merged export.
func TestRunMergesFiles(t *testing.T) {
	dir := t.TempDir()
	a, b, merged := filepath.Join(dir, "r1.json"), filepath.Join(dir, "r2.json"), filepath.Join(dir, "startup.json")
	if err := os.WriteFile(a, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run([]string{"-json", a, "-json", b, "-merged", merged}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "     6  ") {
		t.Errorf("want 6 runs a line:\n%s", out.String())
	}
	f, err := os.Open(merged)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || len(rs[0].Times) != 6 {
		t.Errorf("merged export: %+v", rs)
	}
}
