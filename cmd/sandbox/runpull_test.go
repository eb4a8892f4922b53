package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeSource is a store holding some names and a registry that counts pulls.
type fakeSource struct {
	stored  []string
	pulls   []string
	pullErr error
}

func (f *fakeSource) Has(name string) (bool, error) { return slices.Contains(f.stored, name), nil }

func (f *fakeSource) Normalize(ref string) (string, error) {
	if strings.Contains(ref, " ") {
		return "", errors.New("reference malformed")
	}
	if !strings.Contains(ref, "/") {
		ref = "docker.io/library/" + ref
	}
	return ref, nil
}

func (f *fakeSource) Pull(ref string) (string, error) {
	f.pulls = append(f.pulls, ref)
	if f.pullErr != nil {
		return "", f.pullErr
	}
	full, _ := f.Normalize(ref)
	f.stored = append(f.stored, full)
	return full, nil
}

func TestResolveImage(t *testing.T) {
	for _, c := range []struct {
		ref, policy string
		stored      []string
		want        string
		pulled      bool
		errs        []string
	}{
		// An image imported under the name as typed wins, but not over always.
		{"alpine", "missing", []string{"alpine", "docker.io/library/alpine"}, "alpine", false, nil},
		{"alpine", "never", []string{"alpine"}, "alpine", false, nil},
		{"alpine", "always", []string{"alpine"}, "docker.io/library/alpine", true, nil},
		// Then the one stored under the normalized reference.
		{"alpine", "missing", []string{"docker.io/library/alpine"}, "docker.io/library/alpine", false, nil},
		{"alpine", "never", []string{"docker.io/library/alpine"}, "docker.io/library/alpine", false, nil},
		// Missing: pulled, unless never.
		{"alpine", "missing", nil, "docker.io/library/alpine", true, nil},
		{"alpine", "never", nil, "", false, []string{"--image alpine", "--pull=never", "sandbox image pull alpine"}},
		{"bad ref", "missing", nil, "", false, []string{"--image", "malformed"}},
	} {
		src := &fakeSource{stored: c.stored}
		got, err := resolveImage(c.ref, c.policy, src)
		name := c.ref + " --pull=" + c.policy
		if c.errs != nil {
			if err == nil {
				t.Errorf("%s: got %q, want an error", name, got)
				continue
			}
			for _, e := range c.errs {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("%s: error %q does not say %q", name, err, e)
				}
			}
		} else if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, c.want)
		}
		if pulled := len(src.pulls) > 0; pulled != c.pulled {
			t.Errorf("%s: pulled %v, want %v", name, src.pulls, c.pulled)
		}
	}
	src := &fakeSource{pullErr: errors.New("pulling 127.0.0.1:1/x: connection refused")}
	if _, err := resolveImage("127.0.0.1:1/x", "missing", src); err == nil ||
		err.Error() != "--image: pulling 127.0.0.1:1/x: connection refused" {
		t.Errorf("a failed pull: %v", err)
	}
}

func TestCheckPlatform(t *testing.T) {
	for _, ok := range []string{"linux/amd64", "linux/arm/v7", "linux/arm64/v8"} {
		if err := checkPlatform(ok); err != nil {
			t.Errorf("checkPlatform(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/amd 64", "linux//arm"} {
		if err := checkPlatform(bad); err == nil || !strings.Contains(err.Error(), "use OS/ARCH[/VARIANT]") {
			t.Errorf("checkPlatform(%q): %v", bad, err)
		}
	}
}

func TestDockerHubName(t *testing.T) {
	for _, c := range []struct{ ref, def, want string }{
		{"alpine", "", "docker.io/library/alpine:latest"},
		{"alpine:3.20", "docker.io", "docker.io/library/alpine:3.20"},
		{"golang@sha256:0123", "", "docker.io/library/golang@sha256:0123"},
		{"org/app", "", "docker.io/org/app:latest"},
		{"org/team/app:1", "", "docker.io/org/team/app:1"},
		{"alpine", "reg.corp", ""}, // another default registry: ask the registry code
		{"ghcr.io/org/app", "", ""},
		{"127.0.0.1:5000/x", "", ""},
		{"localhost/x", "", ""},
		{"/x", "", ""},
	} {
		got, ok := dockerHubName(c.ref, c.def)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("dockerHubName(%q, %q) = %q, %v; want %q", c.ref, c.def, got, ok, c.want)
		}
	}
}

// TestRunImageFlags: --uid/--gid count as given from the command line, a
// profile or a variable (then they win over the image's User); --pull and
// its variable and profile key are checked as any run flag's.
func TestRunImageFlags(t *testing.T) {
	given := func(env map[string]string, args ...string) (*cli, bool, bool, error) {
		t.Helper()
		c, _, ctx, err := parseContext(t, env, args...)
		if err != nil {
			return c, false, false, err
		}
		return c, flagGiven(ctx, "uid"), flagGiven(ctx, "gid"), nil
	}
	prof := writeFile(t, "p.toml", "uid = 3\npull = \"never\"\n")
	for _, c := range []struct {
		env        map[string]string
		args       []string
		uid, gid   bool
		wantPolicy string
	}{
		{nil, []string{"run", "--", "true"}, false, false, "missing"},
		{nil, []string{"run", "--uid", "0", "--", "true"}, true, false, "missing"},
		{map[string]string{"SANDBOX_GID": "5", "SANDBOX_PULL": "always"}, []string{"run", "--", "true"}, false, true, "always"},
		{nil, []string{"run", "--profile", prof, "--", "true"}, true, false, "never"},
		{nil, []string{"run", "--profile", prof, "--pull=missing", "--", "true"}, true, false, "missing"},
	} {
		cl, uid, gid, err := given(c.env, c.args...)
		if err != nil || uid != c.uid || gid != c.gid || cl.Run.Pull != c.wantPolicy {
			t.Errorf("%v %q: uid given %v, gid given %v, --pull %q, %v; want %v, %v, %q", c.env, c.args, uid, gid, cl.Run.Pull, err, c.uid, c.gid, c.wantPolicy)
		}
	}
	if _, _, _, err := given(map[string]string{"SANDBOX_PULL": "sometimes"}, "run", "--", "true"); err == nil || !strings.Contains(err.Error(), "SANDBOX_PULL") {
		t.Errorf("a bad SANDBOX_PULL: %v", err)
	}
}
