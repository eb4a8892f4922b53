package idmap

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

func TestDecide(t *testing.T) {
	uids := []Range{{Start: 100000, Count: 65536, File: "/etc/subuid", Line: 1}}
	gids := []Range{{Start: 100000, Count: 65536, File: "/etc/subgid", Line: 1}}
	rootDefault := []Range{defaultRootRange()}
	notFound := func(name string) error {
		return &HelperError{Path: name, Problem: name + " not found in PATH", Fix: installFix}
	}
	noSetuid := &HelperError{Path: "newuidmap", Problem: "/usr/bin/newuidmap is neither setuid root nor has the cap_setuid file capability",
		Fix: "`chmod u+s /usr/bin/newuidmap` or `setcap cap_setuid+ep /usr/bin/newuidmap`"}
	ok := Facts{User: "alice", UIDRanges: uids, GIDRanges: gids, UIDSource: "/etc/subuid", GIDSource: "/etc/subgid"}
	with := func(f Facts, edit func(*Facts)) Facts { edit(&f); return f }

	tests := []struct {
		name    string
		mode    Mode
		facts   Facts
		want    Decision
		wantErr []string
	}{
		{name: "single", mode: Single, facts: ok, want: Decision{Mode: Single}},
		{name: "single needs nothing", mode: Single, facts: Facts{User: "alice", HelperErr: notFound("newuidmap")}, want: Decision{Mode: Single}},
		{
			name: "auto, all there", mode: Auto, facts: ok,
			want: Decision{Mode: Full, ViaHelpers: true, UIDRanges: uids, GIDRanges: gids},
		},
		{
			name: "full, all there", mode: Full, facts: ok,
			want: Decision{Mode: Full, ViaHelpers: true, UIDRanges: uids, GIDRanges: gids},
		},
		{
			name: "auto, no entries", mode: Auto,
			facts: with(ok, func(f *Facts) { f.UIDRanges, f.GIDRanges = nil, nil }),
			want: Decision{Mode: Single, Warning: "no /etc/subuid or /etc/subgid entry for alice; mapping only your own uid and gid " +
				"(fix: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice`)"},
		},
		{
			name: "auto, no entries, others own 100000 on", mode: Auto,
			facts: with(ok, func(f *Facts) { f.UIDRanges, f.GIDRanges, f.FreeUID, f.FreeGID = nil, nil, 296608, 165536 }),
			want: Decision{Mode: Single, Warning: "no /etc/subuid or /etc/subgid entry for alice; mapping only your own uid and gid " +
				"(fix: `usermod --add-subuids 296608-362143 --add-subgids 165536-231071 alice`)"},
		},
		{
			name: "auto, no subuid entry", mode: Auto,
			facts: with(ok, func(f *Facts) { f.UIDRanges = nil }),
			want: Decision{Mode: Single, Warning: "no /etc/subuid entry for alice; mapping only your own uid and gid " +
				"(fix: `usermod --add-subuids 100000-165535 alice`)"},
		},
		{
			name: "auto, no subgid entry, unnamed user, other file", mode: Auto,
			facts: with(ok, func(f *Facts) { f.User, f.GIDRanges, f.GIDSource = "", nil, "/tmp/subgid" }),
			want: Decision{Mode: Single, Warning: "no /tmp/subgid entry for USER; mapping only your own uid and gid " +
				"(fix: `usermod --add-subgids 100000-165535 USER`)"},
		},
		{
			name: "auto, helpers missing", mode: Auto,
			facts: with(ok, func(f *Facts) { f.HelperErr = errors.Join(notFound("newuidmap"), notFound("newgidmap")) }),
			want: Decision{Mode: Single, Warning: "newuidmap not found in PATH; newgidmap not found in PATH; " +
				"mapping only your own uid and gid (fix: `apt-get install uidmap`, or your distribution's shadow-utils package)"},
		},
		{
			name: "auto, helper not setuid and no entries", mode: Auto,
			facts: with(ok, func(f *Facts) { f.UIDRanges, f.GIDRanges, f.HelperErr = nil, nil, noSetuid }),
			want: Decision{Mode: Single, Warning: "no /etc/subuid or /etc/subgid entry for alice; " +
				"/usr/bin/newuidmap is neither setuid root nor has the cap_setuid file capability; mapping only your own uid and gid " +
				"(fix: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice` and " +
				"`chmod u+s /usr/bin/newuidmap` or `setcap cap_setuid+ep /usr/bin/newuidmap`)"},
		},
		{
			name: "auto, plain helper error", mode: Auto,
			facts: with(ok, func(f *Facts) { f.HelperErr = errors.New("helpers broken") }),
			want:  Decision{Mode: Single, Warning: "helpers broken; mapping only your own uid and gid"},
		},
		{
			name: "full, no entries", mode: Full,
			facts:   with(ok, func(f *Facts) { f.UIDRanges = nil }),
			wantErr: []string{"--map=full is not possible: no /etc/subuid entry for alice", "fix: `usermod --add-subuids 100000-165535 alice`", "--map=single"},
		},
		{
			name: "full, helpers missing", mode: Full,
			facts:   with(ok, func(f *Facts) { f.HelperErr = notFound("newgidmap") }),
			wantErr: []string{"--map=full is not possible: newgidmap not found in PATH", "apt-get install uidmap"},
		},
		{
			name: "root, no entries: default range, no helpers", mode: Auto,
			facts: Facts{User: "root", Root: true, HelperErr: notFound("newuidmap")},
			want:  Decision{Mode: Full, UIDRanges: rootDefault, GIDRanges: rootDefault},
		},
		{
			name: "root full with own entries", mode: Full,
			facts: Facts{User: "root", Root: true, UIDRanges: uids},
			want:  Decision{Mode: Full, UIDRanges: uids, GIDRanges: rootDefault},
		},
		{name: "root single", mode: Single, facts: Facts{User: "root", Root: true}, want: Decision{Mode: Single}},
		{name: "bad mode", mode: "keep-id", facts: ok, wantErr: []string{"--map=keep-id", "want auto, full or single"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(tt.mode, tt.facts)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	src := Source{SubuidPath: dir + "/subuid", SubgidPath: dir + "/subgid"} // missing: no entries

	p, err := src.Prepare(Single, "alice", 1000, 1001, 0, 0)
	checkErr(t, err, nil)
	want := Prepared{UIDs: []Mapping{{0, 1000, 1}}, GIDs: []Mapping{{0, 1001, 1}}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("single: got %+v, want %+v", p, want)
	}

	// Auto depends on who runs the test: root maps the default range itself,
	// anyone else falls back to single (no entries, and no helpers in PATH).
	t.Setenv("PATH", dir)
	p, err = src.Prepare(Auto, "alice", 1000, 1001, 1000, 1001)
	checkErr(t, err, nil)
	if os.Geteuid() == 0 {
		want = Prepared{
			UIDs: []Mapping{{0, DefaultRootStart, 1000}, {1000, 1000, 1}, {1001, DefaultRootStart + 1000, DefaultRootCount - 1000}},
			GIDs: []Mapping{{0, DefaultRootStart, 1001}, {1001, 1001, 1}, {1002, DefaultRootStart + 1001, DefaultRootCount - 1001}},
		}
	} else {
		want = Prepared{UIDs: []Mapping{{1000, 1000, 1}}, GIDs: []Mapping{{1001, 1001, 1}}, Warning: p.Warning}
		if p.Warning == "" {
			t.Error("no warning for the fallback to single")
		}
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("auto: got %+v, want %+v", p, want)
	}

	writeFile(t, dir, "subuid", "alice:oops:1\n")
	_, err = src.Prepare(Full, "alice", 1000, 1001, 0, 0)
	checkErr(t, err, []string{"subuid line 1"})
}
