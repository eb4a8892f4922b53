package idmap

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const subuidFixture = `# /etc/subuid
alice:100000:65536
bob:165536:65536

   # indented comment
1000:300000:10
bob:abc:1
carol:0:0
 alice : 231072 : 65536 
`

func TestParseSubids(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		user    string
		uid     uint32
		want    []Range
		wantErr []string // substrings of the error; nil means no error
	}{
		{
			name: "name and numeric uid keys, file order, others' bad lines ignored",
			text: subuidFixture, user: "alice", uid: 1000,
			want: []Range{
				{Start: 100000, Count: 65536, File: "/etc/subuid", Line: 2},
				{Start: 300000, Count: 10, File: "/etc/subuid", Line: 6},
				{Start: 231072, Count: 65536, File: "/etc/subuid", Line: 9},
			},
		},
		{
			name: "no login name: uid key only",
			text: subuidFixture, user: "", uid: 1000,
			want: []Range{{Start: 300000, Count: 10, File: "/etc/subuid", Line: 6}},
		},
		{name: "no entry", text: subuidFixture, user: "dave", uid: 1003},
		{name: "empty file", text: "", user: "alice", uid: 1000},
		{
			name: "highest valid range end",
			text: "alice:4294967294:1\nalice:0:4294967295\n", user: "alice", uid: 1000,
			want: []Range{
				{Start: 4294967294, Count: 1, File: "/etc/subuid", Line: 1},
				{Start: 0, Count: 4294967295, File: "/etc/subuid", Line: 2},
			},
		},
		{
			name: "non-numeric start", text: "# c\nalice:abc:65536\n", user: "alice", uid: 1000,
			wantErr: []string{`/etc/subuid line 2 "alice:abc:65536"`, `start "abc" is not a decimal number`, "fix: make it read alice:START:COUNT"},
		},
		{
			name: "negative count", text: "1000:100000:-1\n", user: "alice", uid: 1000,
			wantErr: []string{"line 1", `count "-1" is not a decimal number`, "fix: make it read 1000:START:COUNT"},
		},
		{
			name: "count 0", text: "alice:100000:0\n", user: "alice", uid: 1000,
			wantErr: []string{"line 1", "count is 0", "fix:"},
		},
		{
			name: "past the highest id", text: "alice:4294967295:1\n", user: "alice", uid: 1000,
			wantErr: []string{"line 1", "range 4294967295:1 goes past 4294967294", "fix:"},
		},
		{
			name: "overflow", text: "alice:4294967290:10\n", user: "alice", uid: 1000,
			wantErr: []string{"goes past 4294967294"},
		},
		{
			name: "number too large", text: "alice:5000000000:1\n", user: "alice", uid: 1000,
			wantErr: []string{"start 5000000000 is larger than 4294967295"},
		},
		{
			name: "too few fields", text: "alice:100000\n", user: "alice", uid: 1000,
			wantErr: []string{"line 1", "want 3 colon-separated fields, got 2"},
		},
		{
			name: "too many fields", text: "alice:1:2:3\n", user: "alice", uid: 1000,
			wantErr: []string{"want 3 colon-separated fields, got 4"},
		},
		{
			name: "empty field", text: "alice::65536\n", user: "alice", uid: 1000,
			wantErr: []string{`start "" is not a decimal number`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubids(strings.NewReader(tt.text), "/etc/subuid", tt.user, tt.uid)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseGetsubids(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []Range
		wantErr []string
	}{
		{
			name: "two ranges",
			text: "0: alice 100000 65536\n1: alice 200000 10\n",
			want: []Range{
				{Start: 100000, Count: 65536, File: "getsubids", Line: 1},
				{Start: 200000, Count: 10, File: "getsubids", Line: 2},
			},
		},
		{name: "nothing", text: "\n"},
		{name: "garbage", text: "Error fetching ranges\n", wantErr: []string{"`getsubids alice` output line 1", "fix:"}},
		{name: "bad number", text: "0: alice 100000 x\n", wantErr: []string{`count "x" is not a decimal number`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGetsubids(strings.NewReader(tt.text), "getsubids alice")
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// fakeGetsubids behaves like shadow's: exit 1 for users without ranges.
const fakeGetsubids = `#!/bin/sh
if [ "$1" = -g ]; then echo "0: $2 500000 100"; exit 0; fi
if [ "$1" = nobody ]; then echo "Error fetching ranges" >&2; exit 1; fi
if [ "$1" = garbage ]; then echo "what"; exit 0; fi
echo "0: $1 400000 100"
echo "1: $1 600000 5"
`

func TestSourceSubids(t *testing.T) {
	dir := t.TempDir()
	subuid := writeFile(t, dir, "subuid", "alice:100000:65536\nbob:x:y\n")
	subgid := writeFile(t, dir, "subgid", "alice:100000:65536\nmallory:1:0\nmallory:2\n")
	gs := writeFile(t, dir, "getsubids", fakeGetsubids)
	if err := os.Chmod(gs, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name       string
		src        Source
		kind       Kind
		user       string
		uid        uint32
		want       []Range
		wantSource string
		wantErr    []string
	}{
		{
			name: "file entry wins", src: Source{subuid, subgid, gs}, kind: UID, user: "alice", uid: 1000,
			want:       []Range{{Start: 100000, Count: 65536, File: subuid, Line: 1}},
			wantSource: subuid,
		},
		{
			name: "subgid keyed by user", src: Source{subuid, subgid, gs}, kind: GID, user: "alice", uid: 1000,
			want:       []Range{{Start: 100000, Count: 65536, File: subgid, Line: 1}},
			wantSource: subgid,
		},
		{
			name: "no file entry: getsubids", src: Source{subuid, subgid, gs}, kind: UID, user: "carol", uid: 1002,
			want: []Range{
				{Start: 400000, Count: 100, File: "getsubids", Line: 1},
				{Start: 600000, Count: 5, File: "getsubids", Line: 2},
			},
			wantSource: "getsubids",
		},
		{
			name: "getsubids -g for groups", src: Source{subuid, subgid, gs}, kind: GID, user: "carol", uid: 1002,
			want:       []Range{{Start: 500000, Count: 100, File: "getsubids", Line: 1}},
			wantSource: "getsubids",
		},
		{
			name: "getsubids asked by uid without a login name", src: Source{missing, missing, gs}, kind: UID, uid: 1002,
			want: []Range{
				{Start: 400000, Count: 100, File: "getsubids", Line: 1},
				{Start: 600000, Count: 5, File: "getsubids", Line: 2},
			},
			wantSource: "getsubids",
		},
		{name: "getsubids has none either", src: Source{subuid, subgid, gs}, kind: UID, user: "nobody", uid: 65534, wantSource: subuid},
		{name: "getsubids disabled", src: Source{subuid, subgid, ""}, kind: UID, user: "carol", uid: 1002, wantSource: subuid},
		{name: "getsubids not installed", src: Source{subuid, subgid, filepath.Join(dir, "nope")}, kind: UID, user: "carol", uid: 1002, wantSource: subuid},
		{name: "missing file is no entry", src: Source{missing, missing, ""}, kind: GID, user: "alice", uid: 1000, wantSource: missing},
		{
			name: "getsubids garbage", src: Source{subuid, subgid, gs}, kind: UID, user: "garbage", uid: 7,
			wantErr: []string{"`getsubids garbage` output line 1"},
		},
		{
			name: "malformed own line", src: Source{subuid, subgid, gs}, kind: GID, user: "mallory", uid: 1005,
			wantErr: []string{subgid + " line 2", "count is 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, source, err := tt.src.Subids(tt.kind, tt.user, tt.uid)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			if !reflect.DeepEqual(got, tt.want) || source != tt.wantSource {
				t.Errorf("got %+v from %q\nwant %+v from %q", got, source, tt.want, tt.wantSource)
			}
		})
	}
}

func TestDefaultSource(t *testing.T) {
	want := Source{SubuidPath: "/etc/subuid", SubgidPath: "/etc/subgid", Getsubids: "getsubids"}
	if got := DefaultSource(); got != want {
		t.Errorf("DefaultSource() = %+v, want %+v", got, want)
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkErr fails unless err contains all of want (or is nil when want is nil).
func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q spans lines; callers print it after \"sandbox: \"", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
