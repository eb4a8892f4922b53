package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const runsJSONL = `{"place":"host","run":1,"results":[{"name":"create","unit":"ms","value":100},{"name":"fio seq read 1M","unit":"MiB/s","value":1000}]}
{"place":"kernel","run":1,"results":[{"name":"create","unit":"ms","value":110},{"name":"fio seq read 1M","unit":"MiB/s","value":500}]}
{"place":"host","run":2,"results":[{"name":"create","unit":"ms","value":300},{"name":"fio seq read 1M","unit":"MiB/s","value":3000}]}
{"place":"kernel","run":2,"results":[{"name":"create","unit":"ms","value":330},{"name":"fio seq read 1M","unit":"MiB/s","value":1500}],"skipped":["fio: x"]}
{"place":"host","run":3,"results":[{"name":"create","unit":"ms","value":200},{"name":"fio seq read 1M","unit":"MiB/s","value":2000}]}
{"place":"kernel","run":3,"results":[{"name":"create","unit":"ms","value":220},{"name":"fio seq read 1M","unit":"MiB/s","value":1000}]}
`

func TestSummarize(t *testing.T) {
	runs, err := readRuns(strings.NewReader(runsJSONL))
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(runs, "host")
	if got := strings.Join(s.Places, ","); got != "host,kernel" {
		t.Errorf("places = %q", got)
	}
	// Times: the ratio is place / host; rates: host / place, so both say
	// "times slower".
	create := s.Cells["create"]["kernel"]
	if create.Median != 220 || create.Runs != 3 || !near(create.Slowdown, 1.1) {
		t.Errorf("create in kernel = %+v, want median 220 of 3 runs, 1.1× host", create)
	}
	read := s.Cells["fio seq read 1M"]["kernel"]
	if read.Median != 1000 || !near(read.Slowdown, 2) {
		t.Errorf("seq read in kernel = %+v, want median 1000, 2× slower", read)
	}
	if len(s.Skipped) != 1 || s.Skipped[0] != "kernel: fio: x" {
		t.Errorf("skipped = %q", s.Skipped)
	}
	g, ok := s.geomean("kernel")
	if !ok || !near(g, 1.4832) { // sqrt(1.1 * 2)
		t.Errorf("geomean = %v, %v", g, ok)
	}
	md := s.markdown()
	for _, want := range []string{
		"| workload | unit | host | kernel |",
		"| create | ms | 200 | 220 (1.10×) |",
		"| fio seq read 1M | MiB/s | 2000 | 1000 (2.00×) |",
		"| geometric mean of × host | | 1.00× | 1.48× |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestSummarizeWithoutBaseline(t *testing.T) {
	runs, err := readRuns(strings.NewReader(runsJSONL))
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(runs, "nowhere")
	if c := s.Cells["create"]["kernel"]; c.Slowdown != 0 {
		t.Errorf("slowdown without a baseline = %v, want 0", c.Slowdown)
	}
	if !strings.Contains(s.markdown(), "| create | ms | 200 | 220 |") {
		t.Errorf("markdown without a baseline:\n%s", s.markdown())
	}
}

func TestReadRunsErrors(t *testing.T) {
	if _, err := readRuns(strings.NewReader("\n")); err == nil {
		t.Error("no runs: no error")
	}
	if _, err := readRuns(strings.NewReader("{\"place\":\"a\"}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: err = %v, want one naming line 2", err)
	}
}

func TestParseFio(t *testing.T) {
	in := `{"jobs":[
 {"jobname":"fio seq write 1M","error":0,"read":{"bw_bytes":0,"iops":0},"write":{"bw_bytes":2097152,"iops":2}},
 {"jobname":"fio seq read 1M","error":0,"read":{"bw_bytes":4194304,"iops":4},"write":{"bw_bytes":0,"iops":0}},
 {"jobname":"fio rand read 4k","error":0,"read":{"bw_bytes":4096000,"iops":1000},"write":{}},
 {"jobname":"fio rand write 4k","error":0,"read":{},"write":{"bw_bytes":8192000,"iops":2000}}]}`
	got, err := parseFio([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{"fio seq write 1M", "MiB/s", 2},
		{"fio seq read 1M", "MiB/s", 4},
		{"fio rand read 4k", "IOPS", 1000},
		{"fio rand write 4k", "IOPS", 2000},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d = %v, want %v", i, got[i], want[i])
		}
	}
	if _, err := parseFio([]byte(`{"jobs":[]}`)); err == nil {
		t.Error("missing jobs: no error")
	}
	bad := strings.Replace(in, `"fio seq read 1M","error":0`, `"fio seq read 1M","error":5`, 1)
	if _, err := parseFio([]byte(bad)); err == nil || !strings.Contains(err.Error(), "error 5") {
		t.Errorf("failed job: err = %v", err)
	}
}

func TestReportWritesFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(in, []byte(runsJSONL), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	md, js := filepath.Join(dir, "s.md"), filepath.Join(dir, "s.json")
	if err := dispatch([]string{"report", "-in", in, "-md", md, "-json", js}, &out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil || string(b) != out.String() {
		t.Errorf("markdown file = %q (%v), want what was printed: %q", b, err, out.String())
	}
	if b, err := os.ReadFile(js); err != nil || !bytes.Contains(b, []byte(`"x_baseline": 1.1`)) {
		t.Errorf("summary JSON = %s (%v)", b, err)
	}
	if err := dispatch([]string{"report"}, &out); err == nil {
		t.Error("report without -in: no error")
	}
	if err := dispatch([]string{"frobnicate"}, &out); err == nil {
		t.Error("unknown subcommand: no error")
	}
}

func near(a, b float64) bool { return a-b < 1e-3 && b-a < 1e-3 }
