package e2e

import (
	"archive/tar"
	"path/filepath"
	"strings"
	"testing"
)

// usersLayer holds the image's own users: app (1000, group 1001) and the
// group staff (50), which the host has not (and its root's passwd differs).
func usersLayer(t testing.TB) []byte {
	return layerTar(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n"},
		{name: "etc/group", body: "root:x:0:\nstaff:x:50:app\napp:x:1001:\n"},
	})
}

// TestImageUser: run --image applies the image's User (uid, name,
// name:group), names looked up in the image's own /etc/passwd and
// /etc/group; an explicit --uid/--gid (or SANDBOX_UID) wins; a user the
// image does not have stops the run with 125 naming the image and the user.
func TestImageUser(t *testing.T) {
	full, why := fullMapPossible()
	requireOrSkip(t, full, why)
	o, _ := imageStore(t)
	dir := tempDir(t)
	users := usersLayer(t)
	base := baseLayer(t)
	for _, im := range []testImage{
		{name: "u/num", user: "1000"},
		{name: "u/numgroup", user: "4242:77"},
		{name: "u/name", user: "app"},
		{name: "u/namegroup", user: "app:staff"},
		{name: "u/missing", user: "nosuch"},
		{name: "u/missinggroup", user: "app:nogroup"},
		{name: "u/relwd", user: "app", wd: "etc"},
	} {
		im.layers, im.env = [][]byte{base, users}, []string{"PATH=/bin"}
		p := filepath.Join(dir, strings.ReplaceAll(im.name, "/", "-")+".tar")
		dockerSave(t, p, im)
		mustRun(t, o, "image", "import", p)
	}
	id := func(o opts, img string, flags ...string) string {
		t.Helper()
		args := append([]string{"run", "--image", img, "--cwd=none"}, flags...)
		r := mustRun(t, o, append(args, "--", "sh", "-c", `echo $(id -u) $(id -g) $HOME`)...)
		return strings.TrimSpace(r.stdout)
	}
	for img, want := range map[string]string{
		"u/num":       "1000 1001 /home/app", // its group and home from the image's passwd
		"u/numgroup":  "4242 77 /",           // no entry: ids as given, home /
		"u/name":      "1000 1001 /home/app",
		"u/namegroup": "1000 50 /home/app",
	} {
		if got := id(o, img); got != want {
			t.Errorf("run --image %s (User %q): id -u, id -g, $HOME = %q, want %q", img, img, got, want)
		}
	}
	// Explicit ids win: --uid replaces the user (its group from the image's
	// passwd), --gid the group; from a variable as from the command line.
	for _, c := range []struct {
		env   []string
		flags []string
		want  string
	}{
		{nil, []string{"--uid", "0"}, "0 0 /root"},
		{nil, []string{"--gid", "7"}, "1000 7 /home/app"},
		{nil, []string{"--uid", "5", "--gid", "6"}, "5 6 /"},
		{[]string{"SANDBOX_UID=0"}, nil, "0 0 /root"},
	} {
		o2 := o
		o2.env = append(append([]string{}, o.env...), c.env...)
		if got := id(o2, "u/namegroup", c.flags...); got != c.want {
			t.Errorf("run --image u/namegroup %v %v: got %q, want %q", c.env, c.flags, got, c.want)
		}
	}
	for img, names := range map[string][]string{
		"u/missing":      {"u/missing:latest", `"nosuch"`, "/etc/passwd", "--uid"},
		"u/missinggroup": {"u/missinggroup:latest", `"nogroup"`, "/etc/group"},
	} {
		r := runOpts(t, o, "run", "--image", img, "--cwd=none", "--", "true")
		wantCode(t, r, 125)
		for _, n := range names {
			if !strings.Contains(r.stderr, n) {
				t.Errorf("run --image %s: want %s in the error, got %s", img, n, r)
			}
		}
	}
	// A relative WorkingDir is taken from / (before: "--chdir etc: ... must
	// be absolute", a flag never given); --uid 4294967295 ((uid_t)-1) is
	// refused as such, not blamed on the image's User.
	r := mustRun(t, o, "run", "--image", "u/relwd", "--cwd=none", "--", "pwd")
	if strings.TrimSpace(r.stdout) != "/etc" {
		t.Errorf("run --image u/relwd (WorkingDir etc): pwd %q, want /etc", r.stdout)
	}
	r = runOpts(t, o, "run", "--image", "u/name", "--cwd=none", "--uid", "4294967295", "--", "true")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "4294967295: the kernel reserves it") || strings.Contains(r.stderr, "its User") {
		t.Errorf("--uid 4294967295 with --image: %s", r)
	}
	// The missing user does not matter when both ids are given.
	if got := id(o, "u/missing", "--uid", "3", "--gid", "4"); got != "3 4 /" {
		t.Errorf("--uid/--gid over a missing user: %q", got)
	}
}
