package idmap

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProc makes dir/1234/{setgroups,uid_map,gid_map}, minus any in skip.
func fakeProc(t *testing.T, skip ...string) (proc, pidDir string) {
	t.Helper()
	proc = t.TempDir()
	pidDir = filepath.Join(proc, "1234")
	if err := os.Mkdir(pidDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"setgroups", "uid_map", "gid_map"} {
		if !strings.Contains(strings.Join(skip, " "), f) {
			writeFile(t, pidDir, f, "")
		}
	}
	return proc, pidDir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyDirect(t *testing.T) {
	single := []Mapping{{0, 1000, 1}}
	full := []Mapping{{0, 0, 1}, {1, DefaultRootStart, DefaultRootCount}}
	tests := []struct {
		name          string
		skip          string
		deny          bool
		uids, gids    []Mapping
		wantSetgroups string
		wantUID       string
		wantGID       string
		wantErr       []string
		wantIs        error
	}{
		{name: "unprivileged single", deny: true, uids: single, gids: []Mapping{{0, 1001, 1}},
			wantSetgroups: "deny", wantUID: "0 1000 1\n", wantGID: "0 1001 1\n"},
		{name: "root full leaves setgroups", uids: full, gids: full,
			wantUID: "0 0 1\n1 1000000000 65536\n", wantGID: "0 0 1\n1 1000000000 65536\n"},
		{name: "old kernel without setgroups", skip: "setgroups", deny: true, uids: single, gids: single,
			wantUID: "0 1000 1\n", wantGID: "0 1000 1\n"},
		{name: "no such process", skip: "uid_map", deny: true, uids: single, gids: single,
			wantErr: []string{"/1234/uid_map \"0 1000 1\": no such file or directory"}, wantIs: fs.ErrNotExist},
		{name: "gid_map fails", skip: "gid_map", uids: full, gids: full,
			wantErr: []string{"/1234/gid_map \"0 0 1\\n1 1000000000 65536\":"}, wantIs: fs.ErrNotExist},
		{name: "empty map", uids: nil, gids: single, wantErr: []string{"empty uid or gid map"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, dir := fakeProc(t, tt.skip)
			a := applier{proc: proc, denySetgroups: tt.deny}
			err := a.apply(context.Background(), 1234, tt.uids, tt.gids, false)
			checkErr(t, err, tt.wantErr)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if err != nil {
				return
			}
			if tt.skip != "setgroups" {
				if got := readFile(t, filepath.Join(dir, "setgroups")); got != tt.wantSetgroups {
					t.Errorf("setgroups = %q, want %q", got, tt.wantSetgroups)
				}
			}
			if got := readFile(t, filepath.Join(dir, "uid_map")); got != tt.wantUID {
				t.Errorf("uid_map = %q, want %q", got, tt.wantUID)
			}
			if got := readFile(t, filepath.Join(dir, "gid_map")); got != tt.wantGID {
				t.Errorf("gid_map = %q, want %q", got, tt.wantGID)
			}
		})
	}
}

func TestWriteOnceTooBig(t *testing.T) {
	var m []Mapping
	for i := range MaxLines {
		m = append(m, Mapping{uint32(4000000000 + i*10), uint32(4100000000 + i*10), 5})
	}
	err := writeOnce(filepath.Join(t.TempDir(), "uid_map"), Format(m))
	checkErr(t, err, []string{"the kernel takes less than", "fix: merge"})
}

// fakeHelper writes a script that records its arguments in NAME.args and
// waits until its sibling has started too, which only works if both run
// at once.
func fakeHelper(t *testing.T, dir, name, sibling, body string) string {
	t.Helper()
	script := `#!/bin/sh
echo "$@" > "` + dir + `/` + name + `.args"
i=0
while [ ! -e "` + dir + `/` + sibling + `.args" ]; do
	i=$((i+1)); [ $i -gt 500 ] && { echo "$0: sibling never started" >&2; exit 9; }
	sleep 0.01
done
` + body + "\n"
	p := writeFile(t, dir, name, script)
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyHelpers(t *testing.T) {
	uids := []Mapping{{0, 1000, 1}, {1, 100000, 65536}}
	gids := []Mapping{{0, 1001, 1}, {1, 200000, 10}}
	fail := `echo "$(basename $0): write to uid_map failed: Operation not permitted" >&2; exit 1`
	tests := []struct {
		name            string
		uidBody, gidBod string
		timeout         time.Duration
		within          time.Duration // bound on apply's time, if any
		wantErr         []string
		wantIs          error
	}{
		{name: "both succeed", uidBody: "exit 0", gidBod: "exit 0"},
		{name: "newuidmap fails", uidBody: fail, gidBod: "exit 0",
			wantErr: []string{"/newuidmap 1234 0 1000 1 1 100000 65536: exit status 1: newuidmap: write to uid_map failed: Operation not permitted"}},
		{name: "both fail", uidBody: fail, gidBod: "echo one >&2; echo two >&2; exit 2",
			wantErr: []string{"/newuidmap 1234 0 1000 1 1 100000 65536: exit status 1: newuidmap: write",
				"/newgidmap 1234 0 1001 1 1 200000 10: exit status 2: one; two"}},
		{name: "silent failure", uidBody: "exit 0", gidBod: "exit 3",
			wantErr: []string{"/newgidmap 1234 0 1001 1 1 200000 10: exit status 3"}},
		{name: "hung helper", uidBody: "exit 0", gidBod: "sleep 10", timeout: 200 * time.Millisecond,
			wantErr: []string{"/newgidmap 1234", "context deadline exceeded"}, wantIs: context.DeadlineExceeded},
		// A helper that succeeds but leaves a child holding its stdout and
		// stderr longer than any I/O grace (Go's WaitDelay was 1 s): its
		// exit status decides, at once (once failed under load: "WaitDelay
		// expired before I/O complete").
		{name: "child keeps stderr open", uidBody: "sleep 3 & exit 0", gidBod: "(sleep 3; echo late >&2) & exit 0", within: 2 * time.Second},
		{name: "failure with a child keeping stderr open", uidBody: "exit 0", gidBod: "sleep 3 & " + fail, within: 2 * time.Second,
			wantErr: []string{"/newgidmap 1234 0 1001 1 1 200000 10: exit status 1: newgidmap: write to uid_map failed: Operation not permitted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a := applier{
				proc:      filepath.Join(dir, "no-proc"), // must not be touched
				newuidmap: fakeHelper(t, dir, "newuidmap", "newgidmap", tt.uidBody),
				newgidmap: fakeHelper(t, dir, "newgidmap", "newuidmap", tt.gidBod),
			}
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			began := time.Now()
			err := a.apply(ctx, 1234, uids, gids, true)
			if d := time.Since(began); tt.within > 0 && d > tt.within {
				t.Errorf("apply took %v, want under %v", d.Round(time.Millisecond), tt.within)
			}
			checkErr(t, err, tt.wantErr)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if got, want := readFile(t, filepath.Join(dir, "newuidmap.args")), "1234 0 1000 1 1 100000 65536\n"; got != want {
				t.Errorf("newuidmap args %q, want %q", got, want)
			}
			if got, want := readFile(t, filepath.Join(dir, "newgidmap.args")), "1234 0 1001 1 1 200000 10\n"; got != want {
				t.Errorf("newgidmap args %q, want %q", got, want)
			}
		})
	}
}
