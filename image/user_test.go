package image

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// layerTree makes a layer directory from a description: "path" → content
// for a file, "path/" a directory, "path@" → target a symlink, "path!" a
// whiteout, "path/+" an opaque directory.
func layerTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for spec, body := range files {
		switch {
		case strings.HasSuffix(spec, "/+"):
			p := filepath.Join(dir, strings.TrimSuffix(spec, "/+"))
			mustDo(t, os.MkdirAll(p, 0o755))
			mustDo(t, unix.Lsetxattr(p, opaqueXattr, []byte("y"), 0))
		case strings.HasSuffix(spec, "/"):
			mustDo(t, os.MkdirAll(filepath.Join(dir, spec), 0o755))
		case strings.HasSuffix(spec, "@"):
			p := filepath.Join(dir, strings.TrimSuffix(spec, "@"))
			mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
			mustDo(t, os.Symlink(body, p))
		case strings.HasSuffix(spec, "!"):
			p := filepath.Join(dir, strings.TrimSuffix(spec, "!"))
			mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
			mustDo(t, unix.Mknod(p, unix.S_IFCHR, 0))
		default:
			p := filepath.Join(dir, spec)
			mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
			mustDo(t, os.WriteFile(p, []byte(body), 0o644))
		}
	}
	return dir
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const (
	basePasswd = "root:x:0:0:root:/root:/bin/sh\n# a comment\nbroken line\napp:x:1000:1001:App:/home/app:/bin/sh\n"
	baseGroup  = "root:x:0:\nstaff:x:50:app\napp:x:1001:\n"
)

func TestLookupUser(t *testing.T) {
	base := layerTree(t, map[string]string{"etc/passwd": basePasswd, "etc/group": baseGroup})
	layers := []string{base}
	for _, c := range []struct {
		user, group string
		want        User
	}{
		{"", "", User{}},
		{"1000", "", User{1000, 1001, "/home/app"}},
		{"4242", "", User{4242, 0, ""}}, // numeric, no entry: group 0
		{"app", "", User{1000, 1001, "/home/app"}},
		{"app", "staff", User{1000, 50, "/home/app"}},
		{"app", "77", User{1000, 77, "/home/app"}},
		{"1000", "staff", User{1000, 50, "/home/app"}},
		{"root", "", User{0, 0, "/root"}},
		{"", "staff", User{0, 50, ""}},
	} {
		got, err := LookupUser(layers, c.user, c.group)
		if err != nil || got != c.want {
			t.Errorf("LookupUser(%q, %q) = %+v, %v; want %+v", c.user, c.group, got, err, c.want)
		}
	}
	for _, c := range []struct{ user, group, want string }{
		{"nosuch", "", `user "nosuch": not in the image's /etc/passwd`},
		{"app", "nogroup", `group "nogroup": not in the image's /etc/group`},
		{"4294967295", "", `user "4294967295": not in the image's /etc/passwd`}, // -1 is no id
	} {
		_, err := LookupUser(layers, c.user, c.group)
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrNoUser) {
			t.Errorf("LookupUser(%q, %q): got %v, want %q", c.user, c.group, err, c.want)
		}
	}
	// An image with no /etc/passwd: numeric ids work, names do not.
	empty := []string{t.TempDir()}
	if u, err := LookupUser(empty, "1234", "5"); err != nil || u != (User{1234, 5, ""}) {
		t.Errorf("numeric user without /etc/passwd: %+v, %v", u, err)
	}
	if _, err := LookupUser(empty, "app", ""); !errors.Is(err, ErrNoUser) {
		t.Errorf("a name without /etc/passwd: %v", err)
	}
}

// TestLookupUserLayers: the files are read as the overlay shows them.
func TestLookupUserLayers(t *testing.T) {
	base := layerTree(t, map[string]string{"etc/passwd": basePasswd, "etc/group": baseGroup})
	newer := "root:x:0:0:root:/root:/bin/sh\napp:x:2000:2000::/srv/app:/bin/sh\n"
	for name, c := range map[string]struct {
		upper   map[string]string
		wantUID uint32
		wantErr error
	}{
		"replaced":         {map[string]string{"etc/passwd": newer}, 2000, nil},
		"untouched":        {map[string]string{"etc/other": "x"}, 1000, nil},
		"whiteout":         {map[string]string{"etc/passwd!": ""}, 0, ErrNoUser},
		"dir whiteout":     {map[string]string{"etc!": ""}, 0, ErrNoUser},
		"opaque empty etc": {map[string]string{"etc/+": ""}, 0, ErrNoUser},
		"opaque with it":   {map[string]string{"etc/+": "", "etc/passwd": newer}, 2000, nil},
		"etc a file":       {map[string]string{"etc": "not a dir"}, 0, ErrNoUser},
		"relative link":    {map[string]string{"etc/passwd@": "../srv/pw", "srv/pw": newer}, 2000, nil},
		// An absolute link resolves inside the image, never on the host.
		"absolute link": {map[string]string{"etc/passwd@": "/srv/pw", "srv/pw": newer}, 2000, nil},
		"escaping link": {map[string]string{"etc/passwd@": "../../../../../etc/shadow-nope"}, 0, ErrNoUser},
		"etc link":      {map[string]string{"etc@": "/srv/etc", "srv/etc/passwd": newer}, 2000, nil},
		"loop":          {map[string]string{"etc/passwd@": "/etc/passwd"}, 0, unix.ELOOP},
		"dir":           {map[string]string{"etc/passwd/": ""}, 0, unix.EISDIR},
		"device":        {map[string]string{"etc/passwd@": "/dev/zero"}, 0, ErrNoUser},
	} {
		t.Run(name, func(t *testing.T) {
			upper := layerTree(t, c.upper)
			u, err := LookupUser([]string{base, upper}, "app", "")
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("got %+v, %v; want %v", u, err, c.wantErr)
				}
				return
			}
			if err != nil || u.UID != c.wantUID {
				t.Fatalf("got %+v, %v; want uid %d", u, err, c.wantUID)
			}
		})
	}
	// A numeric user needs no readable /etc/passwd (as runc).
	loop := layerTree(t, map[string]string{"etc/passwd@": "/etc/passwd"})
	if u, err := LookupUser([]string{base, loop}, "1000", "5"); err != nil || u != (User{1000, 5, ""}) {
		t.Errorf("a numeric user over an unreadable /etc/passwd: %+v, %v", u, err)
	}
	// A lower layer's file below an upper directory that is not opaque
	// shows through; a middle layer's whiteout hides the base's.
	mid := layerTree(t, map[string]string{"etc/group!": ""})
	top := layerTree(t, map[string]string{"etc/x": ""})
	if u, err := LookupUser([]string{base, mid, top}, "app", ""); err != nil || u.UID != 1000 {
		t.Errorf("through two layers: %+v, %v", u, err)
	}
	if _, err := LookupUser([]string{base, mid, top}, "app", "staff"); !errors.Is(err, ErrNoUser) {
		t.Errorf("the middle layer's whiteout of /etc/group: %v", err)
	}
}

func TestReadInLayersBounded(t *testing.T) {
	big := layerTree(t, map[string]string{"etc/passwd": strings.Repeat("x", 100)})
	if _, err := readInLayers([]string{big}, "/etc/passwd", 99); err == nil || !strings.Contains(err.Error(), "over 99 bytes") {
		t.Errorf("a file over the bound: %v", err)
	}
	if b, err := readInLayers([]string{big}, "/etc/passwd", 100); err != nil || len(b) != 100 {
		t.Errorf("a file at the bound: %d bytes, %v", len(b), err)
	}
	if _, err := readInLayers([]string{big}, "/", 100); !errors.Is(err, unix.EISDIR) {
		t.Errorf("the root: %v", err)
	}
	if _, err := readInLayers([]string{big}, "/nope/x", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing directory: %v", err)
	}
}
