package hostcheck

import (
	"strings"
	"testing"

	"sandbox/idmap"
)

func TestJudgeNested(t *testing.T) {
	if r := judgeNested(NestedFacts{}); r.Status != OK || !strings.Contains(r.Message, "not nested") {
		t.Errorf("the initial namespace: %+v", r)
	}
	ids := []idmap.Range{{Start: 0, Count: 1}, {Start: 1, Count: 65536}}
	r := judgeNested(NestedFacts{Nested: true, UIDs: ids, GIDs: ids, Privileged: true, Filtered: true})
	if r.Status != Warn || r.Blocks || !strings.Contains(r.Message, "maps 65537 uids and 65537 gids") ||
		!strings.Contains(r.Message, "run maps only those ids") || !strings.Contains(r.Message, "seccomp filter stays") {
		t.Errorf("nested root: %+v", r)
	}
	r = judgeNested(NestedFacts{Nested: true, UIDs: ids[:1], GIDs: ids[:1]})
	if !strings.Contains(r.Message, "only your own uid and gid") {
		t.Errorf("nested non-root: %+v", r)
	}
	r = judgeNested(NestedFacts{Nested: true, UIDs: ids, GIDs: ids, Privileged: true, ProcMasked: []string{"/proc/kcore", "/proc/keys"}})
	if r.Status != Fail || !r.Blocks || !strings.Contains(r.Message, "2 of /proc's entries are masked (/proc/kcore, /proc/keys)") ||
		!strings.Contains(r.Fix, "unmask=ALL") || !strings.Contains(r.Fix, "procMount: Unmasked") {
		t.Errorf("masked /proc: %+v", r)
	}
}
