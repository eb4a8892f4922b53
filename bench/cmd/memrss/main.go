// Command memrss measures the resident memory (VmRSS) of a sandbox's own
// processes while its payload sleeps, for bench/startup.sh (standard library
// only), and the anonymous part of it (RssAnon: heap, stacks), which is
// what each further sandbox adds: the rest is pages of files and memfds
// that every run of the same program shares.
//
//	memrss sample -pid PID -tool new|base|bwrap -set LABEL [-payload sleep] [-wait 10s]
//	memrss pid -name NAME < `sandbox ps --json`
//	memrss report -in samples.jsonl [-md memory.md] [-json memory.json] [-goal-mb 8]
//
// sample walks the process tree below PID (the `sandbox run` process, the
// detached supervisor, or bwrap) once the payload runs in it and prints one
// JSON line: the supervisor side (PID and its descendants outside the
// sandbox that run the same executable), init (the shallowest process that
// is PID 1 of a new PID namespace), network helpers (other executables
// outside the sandbox), each with its VmRSS and RssAnon; the payload and
// everything else below init is left out. The holder (a per-user process with argv[0]
// sandbox-holder that serves all sandboxes, in the tree or not) is no part
// of any one run: it is sampled apart (holder_kb), never in the sums, and
// report prints it as a line of its own (not for bwrap, which uses none).
// report prints the medians per set and tool.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxProcs bounds the /proc scan and the tree walk.
const maxProcs = 1 << 16

// holderArg0 is argv[0] of the user's holder process, shared by all runs.
const holderArg0 = "sandbox-holder"

// proc is one process of a sampled tree.
type proc struct {
	Pid    int    `json:"pid"`
	Ppid   int    `json:"ppid"`
	Comm   string `json:"comm"`
	Exe    string `json:"exe,omitempty"`
	Role   string `json:"role"` // supervisor, init, helper, payload, holder
	RSSKB  int64  `json:"rss_kb"`
	AnonKB int64  `json:"anon_kb"`
	depth  int
	nspid  []int
	uid    int // real uid, -1 unknown
}

// sample is one measurement of one process set.
type sample struct {
	Set          string   `json:"set"`
	Tool         string   `json:"tool"`
	SupervisorKB int64    `json:"supervisor_kb"`
	InitKB       int64    `json:"init_kb"`
	AnonKB       int64    `json:"anon_kb"` // supervisor's and init's RssAnon
	HelpersKB    int64    `json:"helpers_kb"`
	Helpers      []string `json:"helpers,omitempty"`
	HolderKB     int64    `json:"holder_kb,omitempty"` // the user's holder, apart from the sums
	HolderPids   []int    `json:"holder_pids,omitempty"`
	Procs        []proc   `json:"procs"`
}

// statLine parses ppid and comm from the text of /proc/PID/stat (comm may
// hold spaces and parentheses: the last ')' ends it).
func statLine(s string) (ppid int, comm string, err error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, "", errors.New("malformed stat")
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return 0, "", errors.New("short stat")
	}
	ppid, err = strconv.Atoi(fields[1])
	return ppid, s[open+1 : end], err
}

// status is what statusFields reads from /proc/PID/status: VmRSS and
// RssAnon in kB (0 for a kernel thread or a zombie), the NSpid list and
// the real uid (-1: none).
type status struct {
	rssKB, anonKB int64
	nspid         []int
	uid           int
}

func statusFields(s string) status {
	st := status{uid: -1}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		switch k {
		case "VmRSS":
			if len(f) > 0 {
				st.rssKB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		case "RssAnon":
			if len(f) > 0 {
				st.anonKB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		case "Uid":
			if len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					st.uid = n
				}
			}
		case "NSpid":
			for _, x := range f {
				if n, err := strconv.Atoi(x); err == nil {
					st.nspid = append(st.nspid, n)
				}
			}
		}
	}
	return st
}

// isHolder: /proc/PID/cmdline's argv[0] names the holder (its comm does
// not: a program run from a memfd is named after the fd).
func isHolder(procRoot string, pid int) bool {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, _ := io.ReadFull(f, b)
	arg0, _, _ := strings.Cut(string(b[:n]), "\x00")
	return filepath.Base(arg0) == holderArg0
}

// table is a snapshot of /proc: parent and comm of every process.
type table struct {
	children map[int][]int
	comm     map[int]string
	ppid     map[int]int
}

func scan(procRoot string) (*table, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	t := &table{children: map[int][]int{}, comm: map[int]string{}, ppid: map[int]int{}}
	for i, e := range ents {
		if i >= maxProcs {
			break
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		ppid, comm, err := statLine(string(b))
		if err != nil {
			continue
		}
		t.children[ppid] = append(t.children[ppid], pid)
		t.comm[pid], t.ppid[pid] = comm, ppid
	}
	return t, nil
}

// tree lists root and its descendants, breadth first, with their depth.
func (t *table) tree(root int) []proc {
	if _, ok := t.comm[root]; !ok {
		return nil
	}
	out := []proc{{Pid: root, Ppid: t.ppid[root], Comm: t.comm[root]}}
	for i := 0; i < len(out) && len(out) < maxProcs; i++ {
		kids := append([]int(nil), t.children[out[i].Pid]...)
		sort.Ints(kids)
		for _, k := range kids {
			out = append(out, proc{Pid: k, Ppid: out[i].Pid, Comm: t.comm[k], depth: out[i].depth + 1})
		}
	}
	return out
}

// classify sets each process's role: the payload is init's subtree below
// init (or, without a PID namespace, the processes named payload and below);
// outside it, the root's executable is the supervisor side, any other a
// helper.
func classify(ps []proc, payload string) {
	byPid := map[int]int{}
	for i := range ps {
		byPid[ps[i].Pid] = i
	}
	rootNS := len(ps[0].nspid)
	initPid := 0
	for _, p := range ps { // breadth first: the shallowest
		if len(p.nspid) > rootNS && p.nspid[len(p.nspid)-1] == 1 {
			initPid = p.Pid
			break
		}
	}
	inside := func(p proc) bool { // below init, or the payload by name
		for q, n := p, 0; n < maxProcs; n++ {
			if q.Pid == initPid && q.Pid != p.Pid {
				return true
			}
			if initPid == 0 && q.Comm == payload {
				return true
			}
			j, ok := byPid[q.Ppid]
			if !ok || q.Pid == ps[0].Pid {
				return false
			}
			q = ps[j]
		}
		return false
	}
	for i := range ps {
		p := &ps[i]
		switch {
		case p.Role == "holder": // set by measure
		case p.Pid == initPid:
			p.Role = "init"
		case inside(*p):
			p.Role = "payload"
		case i == 0 || (p.Exe != "" && p.Exe == ps[0].Exe):
			p.Role = "supervisor"
		default:
			p.Role = "helper"
		}
	}
}

// read fills in exe, VmRSS, RssAnon and NSpid; a process gone meanwhile
// keeps zeros.
func read(procRoot string, ps []proc) {
	for i := range ps {
		dir := filepath.Join(procRoot, strconv.Itoa(ps[i].Pid))
		if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
			ps[i].Exe = exe
		}
		if b, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
			st := statusFields(string(b))
			ps[i].RSSKB, ps[i].AnonKB, ps[i].nspid, ps[i].uid = st.rssKB, st.anonKB, st.nspid, st.uid
		}
	}
}

func measure(procRoot string, root int, set, tool, payload string) (sample, error) {
	t, err := scan(procRoot)
	if err != nil {
		return sample{}, err
	}
	ps := t.tree(root)
	if len(ps) == 0 {
		return sample{}, fmt.Errorf("no process %d", root)
	}
	read(procRoot, ps)
	inTree := map[int]bool{}
	for i := range ps {
		inTree[ps[i].Pid] = true
		if i > 0 && isHolder(procRoot, ps[i].Pid) {
			ps[i].Role = "holder"
		}
	}
	classify(ps, payload)
	s := sample{Set: set, Tool: tool, Procs: ps}
	// The holder outside the tree: the one of the sampled tree's user
	// (bwrap's runs use none).
	var others []proc
	for pid := range t.comm {
		if tool != "bwrap" && !inTree[pid] && isHolder(procRoot, pid) {
			others = append(others, proc{Pid: pid, Ppid: t.ppid[pid], Comm: t.comm[pid]})
		}
	}
	sort.Slice(others, func(i, j int) bool { return others[i].Pid < others[j].Pid })
	read(procRoot, others)
	for _, p := range others {
		if p.uid == ps[0].uid {
			s.HolderKB += p.RSSKB
			s.HolderPids = append(s.HolderPids, p.Pid)
		}
	}
	for _, p := range ps {
		switch p.Role {
		case "holder":
			s.HolderKB += p.RSSKB
			s.HolderPids = append(s.HolderPids, p.Pid)
		case "supervisor":
			s.SupervisorKB += p.RSSKB
			s.AnonKB += p.AnonKB
		case "init":
			s.InitKB += p.RSSKB
			s.AnonKB += p.AnonKB
		case "helper":
			s.HelpersKB += p.RSSKB
			s.Helpers = append(s.Helpers, p.Comm)
		}
	}
	return s, nil
}

// hasPayload reports whether a process named payload runs below root.
func hasPayload(procRoot string, root int, payload string) (bool, error) {
	t, err := scan(procRoot)
	if err != nil {
		return false, err
	}
	ps := t.tree(root)
	if len(ps) == 0 {
		return false, fmt.Errorf("process %d is gone", root)
	}
	for _, p := range ps[1:] {
		if p.Comm == payload {
			return true, nil
		}
	}
	return false, nil
}

func cmdSample(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "root of the process tree (required)")
	tool := fs.String("tool", "new", "column: new, base or bwrap")
	set := fs.String("set", "", "row label (required)")
	payload := fs.String("payload", "sleep", "the payload's comm, left out")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the payload to run")
	settle := fs.Duration("settle", 300*time.Millisecond, "pause after the payload is seen")
	procRoot := fs.String("proc", "/proc", "procfs")
	kill := fs.Bool("kill-payload", false, "SIGTERM the payload after the sample (the set then ends)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 || *set == "" {
		return errors.New("sample needs -pid and -set")
	}
	deadline := time.Now().Add(*wait)
	for {
		ok, err := hasPayload(*procRoot, *pid, *payload)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q below process %d after %v", *payload, *pid, *wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(*settle)
	s, err := measure(*procRoot, *pid, *set, *tool, *payload)
	if err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
		return err
	}
	if *kill {
		for _, p := range s.Procs {
			if p.Role == "payload" && p.Comm == *payload {
				if err := syscall.Kill(p.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
					return fmt.Errorf("killing the payload %d: %w", p.Pid, err)
				}
			}
		}
	}
	return nil
}

// cmdPid prints the supervisor pid of the running sandbox NAME from
// `sandbox ps --json` on stdin.
func cmdPid(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("pid", flag.ContinueOnError)
	name := fs.String("name", "", "sandbox name (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var recs []struct {
		Name   string `json:"name"`
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(stdin, 16<<20)).Decode(&recs); err != nil {
		return fmt.Errorf("decoding sandbox ps --json: %w", err)
	}
	for _, r := range recs {
		if r.Name == *name && r.Pid > 0 {
			_, err := fmt.Fprintln(stdout, r.Pid)
			return err
		}
	}
	return fmt.Errorf("no sandbox %q with a pid in sandbox ps --json", *name)
}

func main() {
	var err error
	if len(os.Args) < 2 {
		err = errors.New("usage: memrss sample|pid|report ...")
	} else {
		switch os.Args[1] {
		case "sample":
			err = cmdSample(os.Args[2:], os.Stdout)
		case "pid":
			err = cmdPid(os.Args[2:], os.Stdin, os.Stdout)
		case "report":
			err = cmdReport(os.Args[2:], os.Stdout)
		default:
			err = fmt.Errorf("unknown subcommand %q (sample, pid, report)", os.Args[1])
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "memrss:", err)
		os.Exit(1)
	}
}
