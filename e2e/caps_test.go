package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// capField returns a Cap* line's value from /proc/self/status text.
func capField(t *testing.T, status, name string) uint64 {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("parsing %s %q: %v", name, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in:\n%s", name, status)
	return 0
}

// A payload running as a non-root identity inside must hold no capability:
// init's own (ambient, inheritable) must not leak into it.
func TestNonRootIdentityHasNoCapabilities(t *testing.T) {
	t.Parallel()
	r := mustRun(t, opts{}, "run", "--uid", "1000", "--gid", "1000", "--", "cat", "/proc/self/status")
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if v := capField(t, r.stdout, f); v != 0 {
			t.Errorf("%s = %x for uid 1000 inside, want 0", f, v)
		}
	}
	// Root inside gets capabilities (in its user namespace only), but none
	// ambient or inheritable that could pass to a later non-root exec.
	r = mustRun(t, opts{}, "run", "--", "cat", "/proc/self/status")
	if capField(t, r.stdout, "CapEff") == 0 {
		t.Error("root inside has no effective capabilities")
	}
	for _, f := range []string{"CapInh", "CapAmb"} {
		if v := capField(t, r.stdout, f); v != 0 {
			t.Errorf("%s = %x for root inside, want 0", f, v)
		}
	}
}

// TestInitThreadsNoNewPrivs: every thread of init has no_new_privs once
// the payload runs, and the filter where there is one. With a filter,
// init sets no_new_privs on its own thread only and the filter's TSYNC
// gives it to the others (confine.NoNewPrivs); without one, or with
// Landlock, it is set on each thread. A thread without it could exec a
// setuid program of the sandbox's root with privileges.
func TestInitThreadsNoNewPrivs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		flags  []string
		filter bool
	}{
		{"default", nil, true},
		{"unconfined", []string{"--seccomp=unconfined"}, false},
		{"landlock", []string{"--landlock"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newLife(t)
			l.detach("nnp", append([]string{"--net=none"}, c.flags...), "sleep", "3600")
			init := l.ps(false)["nnp"].InitPid
			if init <= 0 {
				t.Fatalf("ps --json gives no init pid: %v", l.ps(false))
			}
			tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", init))
			if err != nil || len(tasks) < 2 {
				// Init runs several threads (the Go runtime's, its spares):
				// one alone would not test the others.
				t.Fatalf("init (pid %d) has %d threads (%v), want several", init, len(tasks), err)
			}
			for _, f := range tasks {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatalf("reading %s: %v", f, err)
				}
				s := string(b)
				if v, _ := escField(s, "NoNewPrivs"); v != "1" {
					t.Errorf("%s: NoNewPrivs %q, want 1", f, v)
				}
				want := map[bool]string{true: "2", false: "0"}[c.filter]
				if v, _ := escField(s, "Seccomp"); v != want {
					t.Errorf("%s: Seccomp %q, want %s", f, v, want)
				}
			}
		})
	}
}
