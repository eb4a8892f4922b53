package idmap

import "testing"

func TestOthersInAndFreeStart(t *testing.T) {
	text := "# comment\nalice:100000:65536\n1001:165536:65536\nbob:231072:65536\nbad line\n"
	others := OthersIn(text, "/etc/subuid", "alice", 1001)
	if len(others) != 1 || others[0].Owner != "bob" || others[0].Start != 231072 || others[0].Line != 4 {
		t.Fatalf("OthersIn = %+v, want only bob's entry (line 4)", others)
	}
	if got := FreeStart([]Range{{Start: 100000, Count: 65536}, {Start: 231072, Count: 65536}}); got != 165536 {
		t.Errorf("FreeStart = %d, want the gap at 165536", got)
	}
	if got := FreeStart([]Range{{Start: 120000, Count: 10}, {Start: 165536, Count: 65536}}); got != 231072 {
		t.Errorf("FreeStart = %d, want 231072 (100000's block is touched)", got)
	}
}
