package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/rootfs"
)

func TestParseBind(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		spec, target string
		ro           bool
		err          string
	}{
		{dir, dir, false, ""},
		{dir + ":/data", "/data", false, ""},
		{dir + ":/data:ro", "/data", true, ""},
		{dir + ":ro", dir, true, ""},
		{dir + ":/data:rw", "/data", false, ""},
		{dir + ":data", "", false, "must be absolute"},
		{dir + ":/a/../b", "", false, "'..'"},
		{dir + ":/", "", false, "cannot mount over /"},
		{"/nonexistent-e2e:/x", "", false, "no such file"},
		{":/x", "", false, "empty source"},
		{"a:b:c:d", "", false, "expected SRC[:DST][:ro]"},
		// Before: accepted, then "bind / on /host: invalid argument".
		{"/:/host", "", false, "the host's root cannot be bound"},
		{"/.:/host:ro", "", false, "the host's root cannot be bound"},
	}
	for _, c := range cases {
		b, err := ParseBind(c.spec)
		if c.err != "" {
			var ue *journal.UsageError
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &ue) {
				t.Errorf("%q: err = %v, want a usage error with %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if b.Target != c.target || b.ReadOnly != c.ro || b.Source != dir {
			t.Errorf("%q: got %+v", c.spec, b)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	t.Setenv("FROM_HOST", "h")
	host := []string{"PATH=/bin", "SSH_AUTH_SOCK=/run/agent", "DBUS_SESSION_BUS_ADDRESS=unix:x", "KEEP=1", "XDG_RUNTIME_DIR=/run/user/1"}
	env, err := buildEnv(host, []string{"A=1", "KEEP=2", "FROM_HOST", "ABSENT"}, false, "/home/a")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(env, " ")
	if got != "PATH=/bin KEEP=2 A=1 FROM_HOST=h" {
		t.Errorf("env = %q", got)
	}
	env, err = buildEnv(host, nil, true, "/home/a")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(env, " ")
	if strings.Contains(joined, "KEEP") || !strings.Contains(joined, "PATH="+wire.DefaultPath) || !strings.Contains(joined, "HOME=/home/a") {
		t.Errorf("clearenv: %q", joined)
	}
	if _, err := buildEnv(nil, []string{"=x"}, false, ""); err == nil {
		t.Error("--env =x accepted")
	}
	// A name with a newline read as two variables in env's output (before:
	// passed as it was, or, without '=', silently dropped).
	for _, kv := range []string{"N\nL=w", "N\nL", "A\tB=1"} {
		if _, err := buildEnv(nil, []string{kv}, false, ""); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("--env %q: %v, want refused", kv, err)
		}
	}
}

func TestUnsafeCwd(t *testing.T) {
	homes := []string{"/home", "/home/alice", "/srv/homes/bob"}
	for wd, unsafe := range map[string]bool{
		"/": true, "/home": true, "/srv": true, "/srv/homes": true, "/proc/1": true,
		// A home itself (inside /home too) is not shared: before, only
		// the outermost hidden directories were checked.
		"/home/alice": true, "/srv/homes/bob": true,
		"/home/alice/src": false, "/work/x": false, "/srv/data": false, "/tmp/proj": false,
		// Where services keep their sockets (tmux's in /tmp let a
		// sandbox run commands on the host): before, all shared.
		"/tmp": true, "/var/tmp": true, "/run": true, "/run/user/1000": true, "/run/user/1000/x": true,
		"/var/xdg": true, "/var/xdg/bus": true, "/var": true, "/var/tmp/proj": false, "/var/lib": false,
	} {
		if got := unsafeCwd(wd, homes, "/var/xdg") != ""; got != unsafe {
			t.Errorf("unsafeCwd(%q) = %v, want %v", wd, got, unsafe)
		}
	}
}

func TestValidHostname(t *testing.T) {
	for h, ok := range map[string]bool{"box": true, "a-b.c9": true, "bad host": false, "x/y": false, strings.Repeat("a", 65): false,
		// Before: all taken, though no resolver takes them.
		".": false, "-": false, "a..b": false, ".a": false, "a-": false, "-a": false, "a.": false, "9": true} {
		if got := validHostname(h) == nil; got != ok {
			t.Errorf("validHostname(%q) ok = %v, want %v", h, got, ok)
		}
	}
}

// TestSeccompUnsupportedArch: on an architecture without system-call
// tables, run stops with one line naming --seccomp=unconfined and its cost;
// --seccomp=unconfined then runs.
func TestSeccompUnsupportedArch(t *testing.T) {
	defer func(a string) { seccompArch = a }(seccompArch)
	seccompArch = "mips64le"
	err := confined(Options{}, &Spec{})
	var ue *journal.UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want a usage error", err)
	}
	for _, want := range []string{`unsupported architecture "mips64le"`, "arm64", "--seccomp=unconfined runs without one", "no system-call filter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("not one line: %q", err)
	}
	if err := confined(Options{Seccomp: "unconfined"}, &Spec{}); err != nil {
		t.Errorf("--seccomp=unconfined: %v", err)
	}
}

// confined runs confinement and waits for its filter.
func confined(opts Options, s *Spec) error {
	if err := initStart(opts, s); err != nil {
		return err
	}
	done, err := confinement(opts, rootfs.Config{}, s)
	if err != nil {
		return err
	}
	return done()
}

// TestSeccompCompiledInBackground: the filter compiled while the rest is
// planned is in the spec once waited for, and a bad profile's error is
// the one Prepare returns even when a later step fails too (as when it
// was compiled in line).
func TestSeccompCompiledInBackground(t *testing.T) {
	s := &Spec{}
	if err := confined(Options{}, s); err != nil {
		t.Fatal(err)
	}
	if s.Seccomp == nil || len(s.Seccomp.Instructions) == 0 || s.SeccompFile {
		t.Fatalf("default profile: Seccomp = %v, SeccompFile = %v", s.Seccomp, s.SeccompFile)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	// --ephemeral-size is refused after the filter is compiled (ephemeralConfig).
	_, err := Prepare(Options{Args: []string{"true"}, Seccomp: bad, EphemeralSize: "1"})
	if err == nil || !strings.Contains(err.Error(), "--seccomp") {
		t.Fatalf("Prepare = %v, want the --seccomp error first", err)
	}
}

// TestFutureDir: a missing --upper resolves through its nearest existing
// ancestor and is not created (Prepare changes nothing).
func TestFutureDir(t *testing.T) {
	base := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(base)
	got, err := futureDir("--upper", filepath.Join(link, "a", "b"))
	if err != nil || got != filepath.Join(real, "a", "b") {
		t.Fatalf("futureDir: %q %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(base, "a")); !os.IsNotExist(err) {
		t.Errorf("futureDir created %s: %v", filepath.Join(base, "a"), err)
	}
	file := filepath.Join(base, "f")
	os.WriteFile(file, nil, 0o600)
	if _, err := futureDir("--upper", filepath.Join(file, "x")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("below a file: %v", err)
	}
}

// TestStateMasksEveryBase: the state a session without XDG_RUNTIME_DIR
// keeps in /tmp/sandbox-UID is masked from a run that uses
// $XDG_RUNTIME_DIR/sandbox, and the reverse (before, only this run's was:
// a sandbox given the other could hide or replace another's records and
// exec socket); an --upper inside either is refused (before, taken, and
// `sandbox ps` removed its directories as a killed run's).
func TestStateMasksEveryBase(t *testing.T) {
	bases := []string{"/nonexistent/xdg/sandbox", "/nonexistent/tmp/sandbox-7"}
	cfg := rootfs.Config{Binds: []rootfs.Bind{{Source: "/nonexistent/tmp", Target: "/mnt/t"}}}
	got, err := stateMasks(cfg, bases)
	if err != nil || !slices.Equal(got, []string{"/nonexistent/xdg/sandbox", "/mnt/t/sandbox-7"}) {
		t.Errorf("stateMasks = %q, %v; want this run's base and the bind's view of the other", got, err)
	}
	for _, upper := range []string{"/nonexistent/tmp/sandbox-7", "/nonexistent/tmp/sandbox-7/up", "/nonexistent/xdg/sandbox/up"} {
		cfg := rootfs.Config{Upper: upper}
		if _, err := stateMasks(cfg, bases); err == nil || !strings.Contains(err.Error(), "--upper "+upper+" is inside") {
			t.Errorf("--upper %s: %v, want refused", upper, err)
		}
	}
	if _, err := stateMasks(rootfs.Config{Upper: "/nonexistent/tmp/up"}, bases); err != nil {
		t.Errorf("--upper beside the state: %v", err)
	}
}

// TestHostRootNotARoot: --rootfs / (or /., or --layer /) showed the whole
// host, homes included, which the host mode hides and --bind / is refused
// for; now 125 naming the flag.
func TestHostRootNotARoot(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{
		{Args: []string{"true"}, Rootfs: "/"},
		{Args: []string{"true"}, Rootfs: "/."},
		{Args: []string{"true"}, Rootfs: dir, Layers: []string{"/"}},
	} {
		_, err := Prepare(o)
		var ue *journal.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "the host's root cannot be a sandbox's root or layer") {
			t.Errorf("--rootfs %q --layer %q: %v, want refused", o.Rootfs, o.Layers, err)
		}
	}
}

// TestTmpfsOptionsRefused: Docker's --tmpfs /scratch:noexec was taken as a
// path, and a tmpfs mounted at "/scratch:noexec", without the options and
// without a word.
func TestTmpfsOptionsRefused(t *testing.T) {
	_, err := Prepare(Options{Args: []string{"true"}, Tmpfs: []string{"/scratch:noexec"}})
	var ue *journal.UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--tmpfs /scratch:noexec: no options after ':'") {
		t.Errorf("--tmpfs /scratch:noexec: %v, want refused", err)
	}
}

// TestHostEmpty: the planner's look at whether a host directory is empty
// stops at the first entry; "." and ".." are no entries; a file, a
// directory gone or one that cannot be read is not called empty.
func TestHostEmpty(t *testing.T) {
	base := t.TempDir()
	mk := func(p string) string {
		p = filepath.Join(base, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty, many, closed := mk("empty"), mk("many"), mk("closed")
	for i := range 2000 {
		if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("entry-with-a-long-name-%04d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{empty: true, many: false} {
		if got, err := (osHost{}).Empty(d); err != nil || got != want {
			t.Errorf("Empty(%s) = %v, %v; want %v", d, got, err, want)
		}
	}
	if err := os.Chmod(closed, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(closed, 0o755)
	if os.Geteuid() == 0 {
		closed = "" // root reads it anyway
	}
	for _, d := range []string{file, filepath.Join(base, "gone"), closed} {
		if d == "" {
			continue
		}
		if got, err := (osHost{}).Empty(d); err == nil || got {
			t.Errorf("Empty(%s) = %v, %v; want an error", d, got, err)
		}
	}
	if _, err := (osHost{}).Empty(filepath.Join(base, "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a directory gone: %v, want ErrNotExist", err)
	}
}
