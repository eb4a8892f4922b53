package parent

import (
	"testing"

	"sandbox/cgroupdelegate"
	"sandbox/spec"
)

func TestProcLimit(t *testing.T) {
	for _, c := range []struct {
		pids    string
		parsed  int64
		applied []string
		want    uint64
	}{
		{"", 0, nil, spec.DefaultNProc},                         // no flag: the default, cgroup or not
		{"", 0, []string{"memory.max=1"}, spec.DefaultNProc},    // other limits do not change it
		{"max", 0, nil, 0},                                      // --pids max: inherited
		{"50", 50, []string{"pids.max=50"}, 0},                  // pids.max refuses, not the rlimit
		{"50", 50, nil, spec.DefaultNProc},                      // pids.max skipped (best-effort): the default still bounds
		{"9000", 9000, nil, 9000},                               // or N if higher
		{"50", 50, []string{"memory.max=1"}, spec.DefaultNProc}, // likewise
	} {
		r := spec.Resources{Limits: cgroupdelegate.Limits{Pids: c.parsed}, NProc: spec.NprocLimit(c.pids, c.parsed)}
		if got := procLimit(r, c.applied); got != c.want {
			t.Errorf("--pids %q with %v applied: RLIMIT_NPROC %d, want %d", c.pids, c.applied, got, c.want)
		}
	}
}

func TestAllProcsLimit(t *testing.T) {
	for _, c := range []struct{ cur, pidMax, n, want uint64 }{
		{96367, 32768, 4096, 16384},       // this CI host: half of pid_max
		{96367, 4194304, 4096, 96367},     // a big pid_max: the caller's own
		{1000, 32768, 4096, 1000},         // never raised
		{96367, 4096, 4096, 4096},         // never under the per-user limit
		{1 << 62, 4194304, 9000, 2097152}, // unlimited caller
	} {
		if got := allProcsLimit(c.cur, c.pidMax, c.n); got != c.want {
			t.Errorf("allProcsLimit(%d, %d, %d) = %d, want %d", c.cur, c.pidMax, c.n, got, c.want)
		}
	}
}
