package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatLine(t *testing.T) {
	ppid, comm, err := statLine("42 (a (b) c) S 7 42 42 0 -1")
	if err != nil || ppid != 7 || comm != "a (b) c" {
		t.Errorf("statLine = %d %q %v, want 7 \"a (b) c\"", ppid, comm, err)
	}
	if _, _, err := statLine("42 garbage"); err == nil {
		t.Error("no error for a stat without comm")
	}
}

func TestStatusFields(t *testing.T) {
	st := statusFields("Name:\tsandbox-init\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t1234\t1\nVmRSS:\t   9312 kB\nRssAnon:\t    1004 kB\nRssFile:\t       8 kB\n")
	if st.rssKB != 9312 || st.anonKB != 1004 || len(st.nspid) != 2 || st.nspid[1] != 1 || st.uid != 1000 {
		t.Errorf("statusFields = %+v", st)
	}
}

// fakeProc writes a /proc with the given processes: pid, ppid, comm, exe,
// VmRSS and RssAnon kB, NSpid, uid (status's Uid), argv (cmdline).
func fakeProc(t *testing.T, procs []proc, argv ...map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(p.Pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (%s) S %d 1 1 0 -1", p.Pid, p.Comm, p.Ppid)
		ns := make([]string, len(p.nspid))
		for i, n := range p.nspid {
			ns[i] = fmt.Sprint(n)
		}
		status := fmt.Sprintf("Name:\t%s\nUid:\t%d\t%d\t%d\t%d\nNSpid:\t%s\nVmRSS:\t%d kB\nRssAnon:\t%d kB\n", p.Comm, p.uid, p.uid, p.uid, p.uid, strings.Join(ns, "\t"), p.RSSKB, p.AnonKB)
		cmdline := p.Exe + "\x00"
		for _, a := range argv {
			if c, ok := a[p.Pid]; ok {
				cmdline = c
			}
		}
		for name, text := range map[string]string{"stat": stat, "status": status, "cmdline": cmdline} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(p.Exe, filepath.Join(dir, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestMeasureRoles(t *testing.T) {
	// sandbox run (100) → init (101, PID 1 inside) → sleep (102) and an
	// exec'd shell (103) → its child (104); a network helper (105) beside
	// init; an unrelated process (200).
	root := fakeProc(t, []proc{
		{Pid: 100, Ppid: 1, Comm: "sandbox", Exe: "/bin/sandbox", RSSKB: 11000, AnonKB: 2000, nspid: []int{100}},
		{Pid: 101, Ppid: 100, Comm: "sandbox-init", Exe: "/bin/sandbox", RSSKB: 9000, AnonKB: 1000, nspid: []int{101, 1}},
		{Pid: 102, Ppid: 101, Comm: "sleep", Exe: "/usr/bin/sleep", RSSKB: 1500, AnonKB: 300, nspid: []int{102, 2}},
		{Pid: 103, Ppid: 101, Comm: "sh", Exe: "/bin/sandbox", RSSKB: 3000, AnonKB: 300, nspid: []int{103, 3}},
		{Pid: 104, Ppid: 103, Comm: "sh", Exe: "/bin/sh", RSSKB: 3000, AnonKB: 300, nspid: []int{104, 4}},
		{Pid: 105, Ppid: 100, Comm: "slirp4netns", Exe: "/usr/bin/slirp4netns", RSSKB: 2048, AnonKB: 500, nspid: []int{105}},
		{Pid: 200, Ppid: 1, Comm: "sandbox", Exe: "/bin/sandbox", RSSKB: 99999, nspid: []int{200}},
	})
	if ok, err := hasPayload(root, 100, "sleep"); err != nil || !ok {
		t.Fatalf("hasPayload = %v %v", ok, err)
	}
	s, err := measure(root, 100, "fg", "new", "sleep")
	if err != nil {
		t.Fatal(err)
	}
	if s.SupervisorKB != 11000 || s.InitKB != 9000 || s.HelpersKB != 2048 || s.AnonKB != 3000 {
		t.Errorf("sample = supervisor %d init %d helpers %d kB, anonymous %d, want 11000 9000 2048, 3000", s.SupervisorKB, s.InitKB, s.HelpersKB, s.AnonKB)
	}
	if len(s.Helpers) != 1 || s.Helpers[0] != "slirp4netns" {
		t.Errorf("helpers = %v", s.Helpers)
	}
	roles := map[int]string{}
	for _, p := range s.Procs {
		roles[p.Pid] = p.Role
	}
	want := map[int]string{100: "supervisor", 101: "init", 102: "payload", 103: "payload", 104: "payload", 105: "helper"}
	if fmt.Sprint(roles) != fmt.Sprint(want) {
		t.Errorf("roles = %v, want %v", roles, want)
	}
	if _, err := measure(root, 999, "fg", "new", "sleep"); err == nil {
		t.Error("no error for a missing root")
	}
}

func TestMeasureWithoutPidNamespace(t *testing.T) {
	root := fakeProc(t, []proc{
		{Pid: 10, Ppid: 1, Comm: "tool", Exe: "/bin/tool", RSSKB: 500, nspid: []int{10}},
		{Pid: 11, Ppid: 10, Comm: "sleep", Exe: "/usr/bin/sleep", RSSKB: 700, nspid: []int{11}},
	})
	s, err := measure(root, 10, "x", "bwrap", "sleep")
	if err != nil {
		t.Fatal(err)
	}
	if s.SupervisorKB != 500 || s.InitKB != 0 || s.Procs[1].Role != "payload" {
		t.Errorf("sample = %+v", s)
	}
}

func TestPid(t *testing.T) {
	var out strings.Builder
	in := `[{"name":"a","pid":5,"status":"running"},{"name":"bench-1","pid":77,"status":"running"}]`
	if err := cmdPid([]string{"-name", "bench-1"}, strings.NewReader(in), &out); err != nil || out.String() != "77\n" {
		t.Errorf("pid = %q %v", out.String(), err)
	}
	if err := cmdPid([]string{"-name", "zzz"}, strings.NewReader(in), &out); err == nil {
		t.Error("no error for an unknown name")
	}
}

func TestReport(t *testing.T) {
	var lines []string
	add := func(set, tool string, sup, init, helpers int64) {
		// A quarter of it anonymous.
		b, err := json.Marshal(sample{Set: set, Tool: tool, SupervisorKB: sup, InitKB: init, HelpersKB: helpers, AnonKB: (sup + init) / 4})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	for _, k := range []int64{1, 3, 2} { // medians: the middle sample
		add("fg", "new", 3072*k, 1024*k, 0)
		add("fg", "base", 10240*k, 9216*k, 0)
		add("fg", "bwrap", 2048, 1024, 0)
		add("det", "new", 4096, 4096+1024*k, 0)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "memory.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	md, js := filepath.Join(dir, "memory.md"), filepath.Join(dir, "memory.json")
	var out strings.Builder
	if err := cmdReport([]string{"-in", in, "-md", md, "-json", js}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"fg: supervisor + init", "8.0", "38.0", "3.0",
		"supervisor + init ≤ 8 MB, fg, new: 8.0 MB, met",
		"supervisor + init ≤ 8 MB, fg, base: 38.0 MB, not met",
		"supervisor + init ≤ 8 MB, det, new: 10.0 MB, not met",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| fg: supervisor + init | 38.0 | 8.0 | 3.0 |", "| det: init | — | 6.0 | — |",
		"| fg: supervisor + init, anonymous (RssAnon) | 9.5 | 2.0 | 0.8 |"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "helpers") {
		t.Errorf("a helpers row without helpers:\n%s", b)
	}
	var rep memReport
	if b, err = os.ReadFile(js); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Rows) != 8 || rep.Rows[0].MB["bwrap"] == nil {
		t.Errorf("memory.json = %s (%v)", b, err)
	}
	if err := cmdReport([]string{"-in", filepath.Join(dir, "none")}, &out); err == nil {
		t.Error("no error for a missing input")
	}
}

// TestHolderApart: the user's holder (argv[0] sandbox-holder, run from a
// memfd: its comm is the fd's number) is in no sum, whether the sampled
// run started it (in the tree) or not; another user's holder is not this
// run's; report prints it as a line of its own.
func TestHolderApart(t *testing.T) {
	procs := []proc{
		{Pid: 100, Ppid: 1, Comm: "sandbox", Exe: "/bin/sandbox", RSSKB: 11000, nspid: []int{100}, uid: 1000},
		{Pid: 101, Ppid: 100, Comm: "sandbox-init", Exe: "/bin/sandbox", RSSKB: 9000, nspid: []int{101, 1}, uid: 1000},
		{Pid: 102, Ppid: 101, Comm: "sleep", Exe: "/usr/bin/sleep", RSSKB: 1500, nspid: []int{102, 2}, uid: 1000},
		{Pid: 300, Ppid: 1, Comm: "4", Exe: "/memfd:sandbox (deleted)", RSSKB: 2500, nspid: []int{300}, uid: 1000},
		{Pid: 301, Ppid: 1, Comm: "4", Exe: "/memfd:sandbox (deleted)", RSSKB: 7777, nspid: []int{301}, uid: 1001},
	}
	argv := map[int]string{300: "sandbox-holder\x00--user\x00", 301: "sandbox-holder\x00"}
	root := fakeProc(t, procs, argv)
	s, err := measure(root, 100, "fg", "new", "sleep")
	if err != nil {
		t.Fatal(err)
	}
	if s.SupervisorKB != 11000 || s.InitKB != 9000 || s.HelpersKB != 0 || s.HolderKB != 2500 || fmt.Sprint(s.HolderPids) != "[300]" {
		t.Errorf("holder outside the tree: %+v", s)
	}

	if s, err := measure(root, 100, "fg", "bwrap", "sleep"); err != nil || s.HolderKB != 0 {
		t.Errorf("bwrap's sample counts the holder: %+v %v", s, err)
	}

	// Started by this run (its child until it is reparented).
	procs[3].Ppid = 100
	root = fakeProc(t, procs, argv)
	s, err = measure(root, 100, "fg", "new", "sleep")
	if err != nil {
		t.Fatal(err)
	}
	if s.SupervisorKB != 11000 || s.HelpersKB != 0 || len(s.Helpers) != 0 || s.HolderKB != 2500 || fmt.Sprint(s.HolderPids) != "[300]" {
		t.Errorf("holder in the tree: %+v", s)
	}
	for _, p := range s.Procs {
		if p.Pid == 300 && p.Role != "holder" {
			t.Errorf("the holder's role is %q", p.Role)
		}
	}

	var lines []string
	for _, k := range []int64{1, 3, 2} {
		for _, smp := range []sample{
			{Set: "fg", Tool: "new", SupervisorKB: 3072, InitKB: 1024, HolderKB: 1024 * k},
			{Set: "fg", Tool: "base", SupervisorKB: 3072, InitKB: 1024},
		} {
			b, _ := json.Marshal(smp)
			lines = append(lines, string(b))
		}
	}
	rep := build(mustSamples(t, strings.Join(lines, "\n")), 8)
	last := rep.Rows[len(rep.Rows)-1]
	if last.What != holderRow || last.Set != "" || last.MB["new"] == nil || *last.MB["new"] != 2 || last.MB["base"] != nil {
		t.Errorf("holder row = %+v", last)
	}
	for _, want := range []string{"holder, shared by all runs  ", "fg: supervisor + init", "supervisor + init ≤ 8 MB, fg, new: 4.0 MB, met"} {
		if !strings.Contains(rep.text(), want) {
			t.Errorf("report lacks %q:\n%s", want, rep.text())
		}
	}
	if !strings.Contains(rep.markdown(), "| holder, shared by all runs | — | 2.0 | — |") {
		t.Errorf("markdown:\n%s", rep.markdown())
	}
}

func mustSamples(t *testing.T, text string) []sample {
	t.Helper()
	ss, err := readSamples(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return ss
}
