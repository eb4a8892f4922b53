package idmap

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vfsCap builds a security.capability xattr: magic_etc, then u32 words.
func vfsCap(magic uint32, words ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magic)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

func TestParseVFSCap(t *testing.T) {
	const setuid, setgid = 1 << 7, 1 << 6
	tests := []struct {
		name    string
		b       []byte
		want    fileCaps
		wantErr []string
	}{
		{name: "v1", b: vfsCap(0x01000000, setuid, 0), want: fileCaps{Version: 1, Permitted: setuid}},
		{name: "v2 effective", b: vfsCap(0x02000001, setuid|setgid, 0, 0, 0), want: fileCaps{Version: 2, Permitted: setuid | setgid, Effective: true}},
		{name: "v2 high word", b: vfsCap(0x02000000, 0, 0, 1<<(40-32), 0), want: fileCaps{Version: 2, Permitted: 1 << 40}},
		{name: "v2 inheritable is not permitted", b: vfsCap(0x02000000, 0, setuid, 0, setuid), want: fileCaps{Version: 2}},
		{name: "v3 rootid 0", b: vfsCap(0x03000001, setgid, 0, 0, 0, 0), want: fileCaps{Version: 3, Permitted: setgid, Effective: true}},
		{name: "v3 namespaced", b: vfsCap(0x03000000, setuid, 0, 0, 0, 100000), want: fileCaps{Version: 3, Permitted: setuid, RootID: 100000}},
		{name: "empty", b: nil, wantErr: []string{"0 bytes is too short"}},
		{name: "short magic", b: []byte{1, 0}, wantErr: []string{"too short"}},
		{name: "unknown revision", b: vfsCap(0x04000000, 0, 0, 0, 0), wantErr: []string{"unknown revision 0x4000000"}},
		{name: "v2 truncated", b: vfsCap(0x02000000, setuid, 0), wantErr: []string{"revision 2 has 12 bytes, want 20"}},
		{name: "v1 too long", b: vfsCap(0x01000000, setuid, 0, 0, 0), wantErr: []string{"revision 1 has 20 bytes, want 12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVFSCap(tt.b)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPrivileged(t *testing.T) {
	const suid = 0o4755
	tests := []struct {
		name    string
		mode    uint32
		uid     uint32
		xattr   []byte
		bit     uint
		wantErr []string
	}{
		{name: "setuid root", mode: suid, uid: 0, bit: capSetuid},
		{name: "setuid root ignores caps", mode: suid, uid: 0, xattr: []byte{1}, bit: capSetuid},
		{name: "setuid, not root", mode: suid, uid: 1000, bit: capSetuid, wantErr: []string{"no setuid bit, no file capabilities"}},
		{name: "plain", mode: 0o755, uid: 0, bit: capSetuid, wantErr: []string{"no setuid bit"}},
		{name: "cap_setuid+ep", mode: 0o755, xattr: vfsCap(0x02000001, 1<<capSetuid, 0, 0, 0), bit: capSetuid},
		{name: "cap_setgid+ep for newgidmap", mode: 0o755, xattr: vfsCap(0x02000001, 1<<capSetgid, 0, 0, 0), bit: capSetgid},
		{name: "permitted without effective", mode: 0o755, xattr: vfsCap(0x02000000, 1<<capSetuid, 0, 0, 0), bit: capSetuid},
		{name: "wrong cap", mode: 0o755, xattr: vfsCap(0x02000001, 1<<capSetgid, 0, 0, 0), bit: capSetuid, wantErr: []string{"0x40 lack bit 7"}},
		{name: "namespaced caps", mode: 0o755, xattr: vfsCap(0x03000001, 1<<capSetuid, 0, 0, 0, 100000), bit: capSetuid, wantErr: []string{"host uid 100000"}},
		{name: "v3 rootid 0", mode: 0o755, xattr: vfsCap(0x03000001, 1<<capSetuid, 0, 0, 0, 0), bit: capSetuid},
		{name: "broken xattr", mode: 0o755, xattr: []byte{1, 2, 3, 4, 5}, bit: capSetuid, wantErr: []string{"unknown revision"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, privileged(tt.mode, tt.uid, tt.xattr, tt.bit), tt.wantErr)
		})
	}
}

func TestCheckHelper(t *testing.T) {
	dir := t.TempDir()
	plainUID := writeFile(t, dir, "newuidmap", "#!/bin/sh\n")
	plainGID := writeFile(t, dir, "newgidmap", "#!/bin/sh\n")
	for _, p := range []string{plainUID, plainGID} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	tests := []struct {
		name    string
		path    string
		path2   string // PATH for the test; "" keeps it
		wantErr []string
	}{
		{name: "missing path", path: filepath.Join(dir, "nope"), wantErr: []string{"nope is not usable", "fix: `apt-get install uidmap`"}},
		{name: "not in PATH", path: "newuidmap", path2: empty, wantErr: []string{"newuidmap not found in PATH", "fix: `apt-get install uidmap`"}},
		{name: "not setuid", path: plainUID, wantErr: []string{plainUID + " is neither setuid root nor has the cap_setuid file capability", "chmod u+s " + plainUID, "setcap cap_setuid+ep " + plainUID}},
		{name: "newgidmap wants cap_setgid", path: plainGID, wantErr: []string{"cap_setgid file capability", "setcap cap_setgid+ep " + plainGID}},
		{name: "found in PATH, not setuid", path: "newgidmap", path2: dir, wantErr: []string{plainGID + " is neither"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path2 != "" {
				t.Setenv("PATH", tt.path2)
			}
			err := CheckHelper(tt.path)
			checkErr(t, err, tt.wantErr)
			var he *HelperError
			if !errors.As(err, &he) || he.Path != tt.path {
				t.Errorf("error %v is not a *HelperError for %q", err, tt.path)
			}
		})
	}

	t.Run("CheckHelpers names both", func(t *testing.T) {
		t.Setenv("PATH", empty)
		err := CheckHelpers()
		checkErr(t, err, []string{"newuidmap not found", "newgidmap not found"})
		if n := len(flatten(err)); n != 2 {
			t.Errorf("flatten: %d errors, want 2", n)
		}
	})

	// A setuid-root system helper passes, unless this environment disables setuid.
	if st, err := os.Stat("/usr/bin/newuidmap"); err == nil && st.Mode()&os.ModeSetuid != 0 {
		t.Run("system newuidmap", func(t *testing.T) {
			err := CheckHelper("/usr/bin/newuidmap")
			if err != nil && !strings.Contains(err.Error(), "nosuid") && !strings.Contains(err.Error(), "no_new_privs") {
				t.Errorf("CheckHelper(/usr/bin/newuidmap): %v", err)
			}
		})
	}
}
