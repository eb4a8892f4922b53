package holder

import (
	"os"
	"testing"

	"sandbox/internal/memexec"
)

// TestTakeProgram: the holder's copy of init is taken only when it is the
// build the run embeds (its ID) and the sealed size of that init; the
// namespace stays usable either way.
func TestTakeProgram(t *testing.T) {
	const prog = "#!/bin/sh\necho init\n"
	share := func(id string) *NS {
		m, err := memexec.New("sandbox-init", prog)
		if err != nil {
			t.Fatal(err)
		}
		ns, err := os.Open("/proc/self/ns/user")
		if err != nil {
			t.Fatal(err)
		}
		return &NS{File: ns, Program: m.File(), ProgramID: id}
	}
	for _, c := range []struct {
		name, holderID, runID string
		size                  int
		want                  bool
	}{
		{"same build", "abc", "abc", len(prog), true},
		{"another build", "abc", "def", len(prog), false},
		{"a holder that shares no ID", "", "", len(prog), false},
		{"a run without an ID", "abc", "", len(prog), false},
		{"another size", "abc", "abc", len(prog) - 1, false},
	} {
		ns := share(c.holderID)
		m := ns.TakeProgram("sandbox-init", c.runID, c.size)
		if (m != nil) != c.want {
			t.Errorf("%s: taken %v, want %v", c.name, m != nil, c.want)
		}
		if m != nil {
			m.Close()
		}
		if ns.Program != nil {
			t.Errorf("%s: the program fd stays with the NS after TakeProgram", c.name)
		}
		if _, err := ns.File.Stat(); err != nil {
			t.Errorf("%s: the namespace fd is gone: %v", c.name, err)
		}
		ns.Close()
	}
}
