package kernel

import (
	"os/exec"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for rel, want := range map[string]Version{
		"6.18.44-fc-v769": {6, 18}, "5.10.0-32-amd64": {5, 10}, "5.11-rc1": {5, 11}, "4.18.0-553.el8": {4, 18},
		"6.1": {6, 1}, "10.0.0": {10, 0}, "3.17+": {3, 17},
	} {
		got, err := Parse(rel)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", rel, got, err, want)
		}
	}
	for _, bad := range []string{"", "linux", "6", "6.", ".18", "6x.18", "6.x", "v6.18", "99999999999999999999.1"} {
		if v, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, no error", bad, v)
		} else if !strings.Contains(err.Error(), "bad kernel version") {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	v := Version{5, 11}
	for _, c := range []struct {
		major, minor int
		want         bool
	}{{5, 10, true}, {5, 11, true}, {5, 12, false}, {4, 99, true}, {6, 0, false}} {
		if got := v.AtLeast(c.major, c.minor); got != c.want {
			t.Errorf("%v.AtLeast(%d, %d) = %v", v, c.major, c.minor, got)
		}
	}
	if !(Version{5, 10}).Less(v) || v.Less(v) || v.Less(Version{4, 20}) {
		t.Error("Less disagrees with AtLeast")
	}
	if v.String() != "5.11" {
		t.Errorf("String() = %q", v.String())
	}
}

// TestRunning: Release is what uname -r says, and AtLeast answers for it.
func TestRunning(t *testing.T) {
	out, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatalf("uname -r: %v", err)
	}
	rel, err := Release()
	if err != nil || rel != strings.TrimSpace(string(out)) {
		t.Fatalf("Release() = %q, %v; uname -r says %q", rel, err, out)
	}
	v, err := Running()
	if err != nil {
		t.Fatalf("Running(): %v", err)
	}
	if !AtLeast(v.Major, v.Minor) || AtLeast(v.Major, v.Minor+1) || AtLeast(v.Major+1, 0) || !AtLeast(3, 0) {
		t.Errorf("AtLeast disagrees with the running kernel %v", v)
	}
}
