package idmap

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestMapped(t *testing.T) {
	r, nested, err := Mapped("         0          0 4294967295\n", "uid_map")
	if err != nil || nested || len(r) != 1 {
		t.Errorf("the initial namespace: %v %v %v", r, nested, err)
	}
	r, nested, err = Mapped("0 1000 1\n1 100000 65536\n", "uid_map")
	want := []Range{{Start: 0, Count: 1, File: "uid_map", Line: 1}, {Start: 1, Count: 65536, File: "uid_map", Line: 2}}
	if err != nil || !nested || !reflect.DeepEqual(r, want) {
		t.Errorf("a rootless container: %v %v %v", r, nested, err)
	}
	// 0 4294967295 from another start is a full but shifted map: nested.
	if _, nested, _ := Mapped("0 1 4294967295\n", "uid_map"); !nested {
		t.Errorf("a shifted full map is not the initial namespace")
	}
	if _, _, err := Mapped("0 1000\n", "uid_map"); err == nil || !strings.Contains(err.Error(), "uid_map line 1") {
		t.Errorf("a bad line: %v", err)
	}
}

func TestUsable(t *testing.T) {
	mapped := []Range{{Start: 0, Count: 1}, {Start: 1, Count: 65536}}
	// No subordinate ranges: everything mapped but the caller's own id.
	got := Usable(nil, mapped, 0)
	if want := []Range{{Start: 1, Count: 65536}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Usable(nil) = %v, want %v", got, want)
	}
	// Root's /etc/subuid range from the host image is clipped to the map.
	got = Usable([]Range{{Start: 60000, Count: 100000, File: "/etc/subuid", Line: 1}}, mapped, 0)
	if want := []Range{{Start: 60000, Count: 5537, File: "/etc/subuid", Line: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("clipped = %v, want %v", got, want)
	}
	// A range outside the map entirely: the map's ids instead.
	got = Usable([]Range{{Start: 1000000000, Count: 65536}}, mapped, 0)
	if want := []Range{{Start: 1, Count: 65536}}; !reflect.DeepEqual(got, want) {
		t.Errorf("outside = %v, want %v", got, want)
	}
	// The caller's id in the middle splits the range.
	got = Usable(nil, []Range{{Start: 0, Count: 10}}, 4)
	if want := []Range{{Start: 0, Count: 4}, {Start: 5, Count: 5}}; !reflect.DeepEqual(got, want) {
		t.Errorf("split = %v, want %v", got, want)
	}
	// Only the caller mapped (unshare -r): nothing.
	if got := Usable(nil, []Range{{Start: 0, Count: 1}}, 0); len(got) != 0 {
		t.Errorf("only self mapped: %v", got)
	}
}

func TestDecideNestedRoot(t *testing.T) {
	r := []Range{{Start: 1, Count: 65536}}
	d, err := Decide(Auto, Facts{Root: true, Nested: true, UIDRanges: r, GIDRanges: r})
	if err != nil || d.Mode != Full || d.ViaHelpers || !reflect.DeepEqual(d.UIDRanges, r) {
		t.Errorf("nested root with mapped ids: %+v %v", d, err)
	}
	// Never the built-in 1000000000 range inside a namespace.
	d, err = Decide(Auto, Facts{Root: true, Nested: true})
	if err != nil || d.Mode != Single || !strings.Contains(d.Warning, "maps no uid or gid but your own") {
		t.Errorf("nested root, nothing but itself mapped: %+v %v", d, err)
	}
	if _, err := Decide(Full, Facts{Root: true, Nested: true}); err == nil {
		t.Errorf("--map=full with nothing to map must fail")
	}
	d, _ = Decide(Auto, Facts{Root: true})
	if len(d.UIDRanges) != 1 || d.UIDRanges[0].Start != DefaultRootStart {
		t.Errorf("root of the initial namespace keeps its default range: %+v", d)
	}
	d, _ = Decide(Auto, Facts{Nested: true, HelperErr: errString("newuidmap is not setuid")})
	if d.Mode != Single || !strings.Contains(d.Warning, "not root in this user namespace") {
		t.Errorf("nested non-root: %+v", d)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestSelfMappedReadsWholeMap: a map of the kernel's 340 lines (more than
// one small read) is read to its end; one beyond maxMapText is refused.
func TestSelfMappedReadsWholeMap(t *testing.T) {
	dir := t.TempDir()
	old := selfMaps
	selfMaps = dir
	t.Cleanup(func() { selfMaps = old })
	var b strings.Builder
	for i := 0; i < 340; i++ {
		fmt.Fprintf(&b, "%10d %10d %10d\n", i*10, 1000000+i*10, 5)
	}
	if err := os.WriteFile(dir+"/uid_map", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ranges, nested, err := selfMapped(UID)
	if err != nil || !nested || len(ranges) != 340 || ranges[339].Start != 3390 {
		t.Fatalf("340-line map: %d ranges, nested %v, %v", len(ranges), nested, err)
	}
	if err := os.WriteFile(dir+"/gid_map", []byte(strings.Repeat(" ", maxMapText+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := selfMapped(GID); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a map beyond maxMapText: %v", err)
	}
}
