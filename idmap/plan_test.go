package idmap

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func rg(start, count uint32) Range {
	return Range{Start: start, Count: count, File: "/etc/subuid", Line: 2}
}

func TestPlan(t *testing.T) {
	many := func(n int) []Range { // n non-contiguous ranges
		var rs []Range
		for i := range n {
			rs = append(rs, rg(uint32(100000+10*i), 5))
		}
		return rs
	}
	tests := []struct {
		name           string
		inside, caller uint32
		ranges         []Range
		mode           Mode
		want           []Mapping
		wantErr        []string
	}{
		{
			name: "inside 0", inside: 0, caller: 1000, ranges: []Range{rg(100000, 65536)}, mode: Full,
			want: []Mapping{{0, 1000, 1}, {1, 100000, 65536}},
		},
		{
			name: "inside 1000 keeps the id", inside: 1000, caller: 1000, ranges: []Range{rg(100000, 65536)}, mode: Full,
			want: []Mapping{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64536}},
		},
		{
			name: "single ignores ranges", inside: 0, caller: 1000, ranges: []Range{rg(100000, 65536)}, mode: Single,
			want: []Mapping{{0, 1000, 1}},
		},
		{
			name: "single even when a range holds the caller", inside: 5, caller: 1000, ranges: []Range{rg(0, 65536)}, mode: Single,
			want: []Mapping{{5, 1000, 1}},
		},
		{
			name: "ranges in file order", inside: 0, caller: 1000, ranges: []Range{rg(200000, 5), rg(100000, 10)}, mode: Full,
			want: []Mapping{{0, 1000, 1}, {1, 200000, 5}, {6, 100000, 10}},
		},
		{
			name: "inside splits the second range", inside: 12, caller: 1000, ranges: []Range{rg(100000, 10), rg(200000, 5)}, mode: Full,
			want: []Mapping{{0, 100000, 10}, {10, 200000, 2}, {12, 1000, 1}, {13, 200002, 3}},
		},
		{
			name: "inside at a range boundary", inside: 10, caller: 1000, ranges: []Range{rg(100000, 10), rg(200000, 5)}, mode: Full,
			want: []Mapping{{0, 100000, 10}, {10, 1000, 1}, {11, 200000, 5}},
		},
		{
			name: "inside beyond all ranges", inside: 65534, caller: 1000, ranges: []Range{rg(100000, 10)}, mode: Full,
			want: []Mapping{{0, 100000, 10}, {65534, 1000, 1}},
		},
		{
			name: "contiguous ranges merge", inside: 0, caller: 1000, ranges: []Range{rg(100000, 10), rg(100010, 10)}, mode: Full,
			want: []Mapping{{0, 1000, 1}, {1, 100000, 20}},
		},
		{
			name: "duplicate range dropped", inside: 0, caller: 1000, ranges: []Range{rg(100000, 10), rg(100000, 10)}, mode: Full,
			want: []Mapping{{0, 1000, 1}, {1, 100000, 10}},
		},
		{
			name: "overlap trimmed", inside: 0, caller: 1000, ranges: []Range{rg(100000, 10), rg(100005, 10)}, mode: Full,
			want: []Mapping{{0, 1000, 1}, {1, 100000, 15}},
		},
		{
			name: "earlier range inside a later one", inside: 0, caller: 1000, ranges: []Range{rg(100005, 10), rg(100000, 20)}, mode: Full,
			want: []Mapping{{0, 1000, 1}, {1, 100005, 10}, {11, 100000, 5}, {16, 100015, 5}},
		},
		{
			name: "root with the default range", inside: 0, caller: 0, ranges: []Range{defaultRootRange()}, mode: Full,
			want: []Mapping{{0, 0, 1}, {1, DefaultRootStart, DefaultRootCount}},
		},
		{
			name: "whole id space", inside: 5, caller: 1000, ranges: []Range{rg(0, 1000), rg(1001, maxID-1000)}, mode: Full,
			want: []Mapping{{0, 0, 5}, {5, 1000, 1}, {6, 5, 995}, {1001, 1001, maxID - 1000}},
		},
		{
			name: "340 lines is the limit", inside: 0, caller: 1000, ranges: many(339), mode: Full,
			want: func() []Mapping {
				m := []Mapping{{0, 1000, 1}}
				for i := range 339 {
					m = append(m, Mapping{uint32(1 + 5*i), uint32(100000 + 10*i), 5})
				}
				return m
			}(),
		},
		{
			name: "341 lines", inside: 0, caller: 1000, ranges: many(340), mode: Full,
			wantErr: []string{"more than 340 lines", "fix: merge the ranges in /etc/subuid"},
		},
		{
			name: "range holds the caller", inside: 0, caller: 100500, ranges: []Range{rg(200000, 5), rg(100000, 65536)}, mode: Full,
			wantErr: []string{"range 100000:65536 (/etc/subuid line 2) contains your own id 100500", "fix: edit /etc/subuid", "--map=single"},
		},
		{
			name: "range starts at the caller", inside: 0, caller: 100000, ranges: []Range{rg(100000, 1)}, mode: Full,
			wantErr: []string{"contains your own id 100000"},
		},
		{
			name: "range ends right before the caller", inside: 0, caller: 100010, ranges: []Range{rg(100000, 10)}, mode: Full,
			want: []Mapping{{0, 100010, 1}, {1, 100000, 10}},
		},
		{name: "no ranges", inside: 0, caller: 1000, mode: Full, wantErr: []string{"no subordinate ranges", "--map=single"}},
		{name: "empty range", inside: 0, caller: 1000, ranges: []Range{rg(5, 0)}, mode: Full, wantErr: []string{"range 5:0 (/etc/subuid line 2) is empty"}},
		{name: "range past the top", inside: 0, caller: 1000, ranges: []Range{rg(4294967295, 1)}, mode: Full, wantErr: []string{"goes past 4294967294"}},
		{name: "auto is not a plan", inside: 0, caller: 1000, ranges: []Range{rg(100000, 1)}, mode: Auto, wantErr: []string{`mode "auto"`}},
		{name: "inside -1", inside: 1<<32 - 1, caller: 1000, mode: Single, wantErr: []string{"4294967295 cannot be mapped"}},
		{name: "caller -1", inside: 0, caller: 1<<32 - 1, mode: Single, wantErr: []string{"4294967295 cannot be mapped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Plan(tt.inside, tt.caller, tt.ranges, tt.mode)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
			if err == nil {
				checkKernelRules(t, got)
			}
		})
	}
}

// checkKernelRules checks what the kernel checks: no line overflows and
// no two lines overlap, inside or outside.
func checkKernelRules(t *testing.T, m []Mapping) {
	t.Helper()
	if len(m) > MaxLines {
		t.Errorf("%d lines", len(m))
	}
	for i, a := range m {
		if a.Count == 0 || uint64(a.Inside)+uint64(a.Count) > 1<<32-1 || uint64(a.Outside)+uint64(a.Count) > 1<<32-1 {
			t.Errorf("line %v is empty or overflows", a)
		}
		for _, b := range m[i+1:] {
			over := func(x, y, n, k uint32) bool {
				return uint64(x) < uint64(y)+uint64(k) && uint64(y) < uint64(x)+uint64(n)
			}
			if over(a.Inside, b.Inside, a.Count, b.Count) || over(a.Outside, b.Outside, a.Count, b.Count) {
				t.Errorf("lines %v and %v overlap", a, b)
			}
		}
	}
}

func TestFormatAndHelperArgs(t *testing.T) {
	m := []Mapping{{0, 1000, 1}, {1, 100000, 65536}}
	if got, want := Format(m), "0 1000 1\n1 100000 65536\n"; got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
	if got := Format(nil); got != "" {
		t.Errorf("Format(nil) = %q", got)
	}
	got := strings.Join(HelperArgs(1234, m), " ")
	if want := "1234 0 1000 1 1 100000 65536"; got != want {
		t.Errorf("HelperArgs = %q, want %q", got, want)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "full", "single"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	_, err := ParseMode("keep-id")
	checkErr(t, err, []string{"--map=keep-id", "want auto, full or single"})
}

func TestSpans(t *testing.T) {
	used := []span{}
	for _, s := range []span{{10, 20}, {30, 40}, {20, 25}, {0, 5}, {4, 31}} {
		used = addSpan(used, s)
	}
	if want := []span{{0, 40}}; !reflect.DeepEqual(used, want) {
		t.Errorf("addSpan: %v, want %v", used, want)
	}
	got := subtract(span{0, 100}, []span{{10, 20}, {30, 40}, {90, 200}})
	if want := []span{{0, 10}, {20, 30}, {40, 90}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("subtract: %v, want %v", got, want)
	}
}
