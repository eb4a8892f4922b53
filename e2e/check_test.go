package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// checkResult is one line of `sandbox check --json`.
type checkResult struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Message   string `json:"message"`
	Fix       string `json:"fix"`
	BlocksRun bool   `json:"blocks_run"`
}

type checkDoc struct {
	OK      bool          `json:"ok"`
	Results []checkResult `json:"results"`
}

// parseCheck decodes --json output strictly: one document, and every
// result has exactly the keys id, status, message, fix, blocks_run.
func parseCheck(t *testing.T, out string) (checkDoc, map[string]checkResult) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var raw struct {
		OK      *bool            `json:"ok"`
		Results []map[string]any `json:"results"`
	}
	if err := dec.Decode(&raw); err != nil || raw.OK == nil {
		t.Fatalf("--json is not one document with ok: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("--json printed more than one document:\n%s", out)
	}
	for _, r := range raw.Results {
		var keys []string
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"blocks_run", "fix", "id", "message", "status"}; !slices.Equal(keys, want) {
			t.Errorf("result %v has keys %v, want %v", r["id"], keys, want)
		}
	}
	var doc checkDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	byID := map[string]checkResult{}
	for _, r := range doc.Results {
		if _, dup := byID[r.ID]; dup {
			t.Errorf("id %q appears twice", r.ID)
		}
		byID[r.ID] = r
		if r.Status != "OK" && r.Status != "WARN" && r.Status != "FAIL" {
			t.Errorf("%s has status %q", r.ID, r.Status)
		}
		if r.BlocksRun && r.Status != "FAIL" {
			t.Errorf("%s blocks run but is %s", r.ID, r.Status)
		}
		if r.Message == "" {
			t.Errorf("%s has no message", r.ID)
		}
	}
	blocked := slices.ContainsFunc(doc.Results, func(r checkResult) bool { return r.BlocksRun })
	if doc.OK == blocked {
		t.Errorf("ok=%v but a result blocks run: %v", doc.OK, blocked)
	}
	return doc, byID
}

// want checks one result: its status, whether it blocks run, and words
// its message and fix must contain.
func want(t *testing.T, byID map[string]checkResult, id, status string, blocks bool, inMsg, inFix []string) {
	t.Helper()
	r, ok := byID[id]
	if !ok {
		t.Errorf("no %q result", id)
		return
	}
	if r.Status != status || r.BlocksRun != blocks {
		t.Errorf("%s: %s (blocks_run %v): %s; want %s (blocks_run %v)", id, r.Status, r.BlocksRun, r.Message, status, blocks)
	}
	for _, s := range inMsg {
		if !strings.Contains(r.Message, s) {
			t.Errorf("%s: message %q lacks %q", id, r.Message, s)
		}
	}
	for _, s := range inFix {
		if !strings.Contains(r.Fix, s) {
			t.Errorf("%s: fix %q lacks %q", id, r.Fix, s)
		}
	}
}

var (
	checkLine   = regexp.MustCompile(`^(OK  |WARN|FAIL)  (\S+) +\S`)
	checkFix    = regexp.MustCompile(`^ {26}fix: \S`)
	checkIDs    = []string{"kernel", "userns.max", "userns", "subuid", "subgid", "newuidmap", "newgidmap", "overlayfs", "fuse-overlayfs", "pivot_root", "tun", "fuse", "net.auto", "seccomp", "landlock", "cgroup.v2", "cgroup.delegation", "cgroup.controllers", "systemd.bus", "tiocsti", "run", "registry-auth", "registry-proxy"}
	checkProbes = []string{"userns", "overlayfs", "pivot_root"} // the namespace probe's lines
)

// TestCheck: on the test host (scripts/setup-host.sh prepared it) every
// link `run` needs is in place: check exits 0, with no FAIL, its live
// probes work, and the text and JSON reports hold the same lines.
func TestCheck(t *testing.T) {
	t.Parallel()
	requireFullMap(t)
	r := mustRun(t, opts{}, "check")
	var ids []string
	ls := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	for i, l := range ls {
		switch m := checkLine.FindStringSubmatch(l); {
		case m != nil:
			ids = append(ids, m[2])
			if m[1] == "FAIL" {
				t.Errorf("FAIL on the test host: %s", l)
			}
		case checkFix.MatchString(l) && i > 0 && !strings.HasPrefix(ls[i-1], "OK"):
		case i == len(ls)-1 && strings.HasPrefix(l, "check: ") && strings.Contains(l, "0 FAIL: `sandbox run` works with its defaults here"):
		default:
			t.Errorf("unexpected line %d %q in:\n%s", i+1, l, r.stdout)
		}
	}

	r = mustRun(t, opts{}, "check", "--json")
	if r.stderr != "" {
		t.Errorf("check --json wrote to stderr: %q", r.stderr)
	}
	doc, byID := parseCheck(t, r.stdout)
	if !doc.OK {
		t.Errorf("--json: ok is false:\n%s", r.stdout)
	}
	var jsonIDs []string
	for _, res := range doc.Results {
		jsonIDs = append(jsonIDs, res.ID)
		if res.Status != "OK" && res.Fix == "" {
			t.Errorf("%s is %s without a fix: %s", res.ID, res.Status, res.Message)
		}
	}
	if !slices.Equal(ids, jsonIDs) {
		t.Errorf("text ids %v, JSON ids %v", ids, jsonIDs)
	}
	for _, id := range checkIDs {
		if _, ok := byID[id]; !ok {
			t.Errorf("no %q line", id)
		}
	}
	for _, id := range checkProbes {
		want(t, byID, id, "OK", false, []string{"probe: "}, nil)
	}
	want(t, byID, "run", "OK", false, []string{"`sandbox run -- true` works"}, nil)
	uids := expectedRanges("/etc/subuid")
	want(t, byID, "subuid", "OK", false, []string{fmt.Sprintf("%d:%d from /etc/subuid", uids[0].start, uids[0].count)}, nil)
	want(t, byID, "subgid", "OK", false, []string{"from /etc/subgid"}, nil)
	want(t, byID, "newuidmap", "OK", false, []string{"setuid root"}, nil)
	want(t, byID, "tun", "OK", false, []string{"/dev/net/tun: read-write for you (mode 0666)"}, nil)
	want(t, byID, "fuse", "OK", false, []string{"mode 0666"}, nil)
	want(t, byID, "overlayfs", "OK", false, []string{"copy-up and whiteouts work"}, nil)
}

// checkInside runs `sandbox check --json` as uid 1000 inside a sandbox
// whose /etc/subuid, /etc/subgid (and /dev/net/tun if tun is set) are the
// given files: host shapes this host does not have, seen by the real
// binary. The outer sandbox runs unconfined so that check can make its
// own namespaces, with /proc unmasked (--unmask-proc) so that a
// nested run could mount its own; its root is the caller, so a 0600 file
// of the caller's is, for uid 1000 inside, a node it may not open.
func checkInside(t *testing.T, subuid, subgid string, tun bool) (result, checkDoc, map[string]checkResult) {
	t.Helper()
	requireFullMap(t)
	requireOrSkip(t, findHelper("setpriv"), "setpriv (package util-linux)")
	dir := tempDir(t)
	writeFile(t, filepath.Join(dir, "subuid"), subuid, 0o644)
	writeFile(t, filepath.Join(dir, "subgid"), subgid, 0o644)
	args := []string{"run", "--seccomp=unconfined", "--unmask-proc", "--net=none",
		"--bind", filepath.Join(dir, "subuid") + ":/etc/subuid:ro", "--bind", filepath.Join(dir, "subgid") + ":/etc/subgid:ro",
		"--bind", binary(t) + ":/tmp/sandbox-under-test:ro"}
	if tun {
		writeFile(t, filepath.Join(dir, "tun"), "", 0o600)
		args = append(args, "--bind", filepath.Join(dir, "tun")+":/dev/net/tun")
	}
	args = append(args, "--", "setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "/tmp/sandbox-under-test", "check", "--json")
	r := runOpts(t, opts{}, args...)
	if r.startErr != nil || r.timedOut || (r.code != 0 && r.code != 1) {
		t.Fatalf("check inside a sandbox: %s", r)
	}
	doc, byID := parseCheck(t, r.stdout)
	if (r.code == 0) != doc.OK {
		t.Errorf("exit status %d with ok=%v", r.code, doc.OK)
	}
	// The nested probes of namespaces work (the nested `sandbox run` is not
	// checked here).
	for _, id := range checkProbes {
		want(t, byID, id, "OK", false, nil, nil)
	}
	return r, doc, byID
}

// TestCheckMisconfigured: a subuid range keyed by uid that is too small
// and overlaps another user's, a subgid range holding the caller's own
// gid (which stops run), and /dev/net/tun at mode 0600.
func TestCheckMisconfigured(t *testing.T) {
	t.Parallel()
	r, doc, byID := checkInside(t, "1000:300000:1000\nbob:300500:65536\n", "1000:0:65536\n", true)
	want(t, byID, "subuid", "WARN", false,
		[]string{"300000:1000 (/etc/subuid line 1) overlaps bob's 300500:65536 (/etc/subuid line 2)", "only 1000 ids"},
		[]string{"--del-subuids 300000-300999 --add-subuids 100000-165535"})
	want(t, byID, "subgid", "FAIL", true, []string{"0:65536 (/etc/subgid line 1) contains your own gid 1000", "run stops"},
		[]string{"--del-subgids 0-65535 --add-subgids 100000-165535"})
	want(t, byID, "tun", "WARN", false, []string{"/dev/net/tun has mode 0600 (owner uid 0): you cannot open it (permission denied)"},
		[]string{"sudo chmod 0666 /dev/net/tun"})
	want(t, byID, "net.auto", "WARN", false, []string{"--net=none"}, nil)
	if doc.OK || r.code != 1 {
		t.Errorf("a range holding the caller's gid stops run: want exit status 1 and ok=false, got %d, %v", r.code, doc.OK)
	}
}

// TestCheckNoSubids: sbxnosub's shape, no entry for the caller in either
// file: WARN (run maps only the caller), never a blocking FAIL.
func TestCheckNoSubids(t *testing.T) {
	t.Parallel()
	_, doc, byID := checkInside(t, "bob:300500:65536\n", "bob:300500:65536\n", false)
	from := ""
	if findHelper("getsubids") {
		from = "nor from getsubids"
	}
	for _, kind := range []string{"uid", "gid"} {
		want(t, byID, "sub"+kind, "WARN", false, []string{"or uid 1000 in /etc/sub" + kind, from, "run maps only your own " + kind},
			[]string{"sudo usermod --add-sub" + kind + "s 100000-165535"})
	}
	for _, res := range doc.Results {
		if res.BlocksRun && res.ID != "run" {
			t.Errorf("%s blocks run: %s", res.ID, res.Message)
		}
	}
}
