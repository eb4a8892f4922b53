package parent

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSweepEphemeral: only unlocked directories named as runs name theirs
// go; a live run's, links, files and other names stay. (Files the user
// cannot remove, which need the sandbox-clean helper, are e2e's part.)
func TestSweepEphemeral(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	base := filepath.Join(cache, "sandbox", "ephemeral")
	live, err := makeEphemeralDir(base, "live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.lock.Close()
	if fi, err := os.Stat(live.path); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the run's directory: %v %v", fi, err)
	}
	dead := filepath.Join(base, "dead-0123abcd")
	outside := filepath.Join(cache, "precious")
	for _, d := range []string{filepath.Join(dead, "tmp", "x"), outside, filepath.Join(base, "other")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "f"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{filepath.Join(dead, "tmp", "link"): outside, filepath.Join(base, "link-0123abcd"): outside} {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "file-0123abcd"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SweepEphemeral(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead run's directory stays: %v", err)
	}
	for _, p := range []string{live.path, filepath.Join(outside, "f"), filepath.Join(base, "other"),
		filepath.Join(base, "link-0123abcd"), filepath.Join(base, "file-0123abcd")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if err := live.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(live.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove left %s: %v", live.path, err)
	}
}

// TestEphemeralNameAsRegexp: the hand check accepts what the pattern
// `^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}-[0-9a-f]{8}$` accepts, and nothing else.
func TestEphemeralNameAsRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}-[0-9a-f]{8}$`)
	names := []string{"", "-0123abcd", "a-0123abcd", "a-0123ABCD", "a-0123abc", "a-0123abcde", "a_0123abcd",
		".a-0123abcd", "a.b_c-d-0123abcd", "sandbox-1f2e3d-deadbeef", "a/b-0123abcd", "ä-0123abcd",
		strings.Repeat("x", 63) + "-0123abcd", strings.Repeat("x", 64) + "-0123abcd", "a-0123abcg", "a--0123abcd"}
	for _, n := range names {
		if got, want := ephemeralName(n), re.MatchString(n); got != want {
			t.Errorf("%q: %v, the pattern says %v", n, got, want)
		}
	}
}
