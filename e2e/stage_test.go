//go:build linux

package e2e

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The holder stage (cmd/sandbox-stage) is a C program of its own, so that
// sandbox-init is pure Go; nothing of the stage reaches init, and the
// holder (sandbox-init run as sandbox-holder) keeps nothing of its starter.

// TestInitPureGo: the sandbox-init that sandbox embeds is built without
// cgo (its Go build information says CGO_ENABLED=0). The holder runs from
// init's memfd, so its /proc/PID/exe is that very program.
func TestInitPureGo(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	h.mapsRun(t)
	pid := h.waitHolder(t)
	info, err := buildinfo.ReadFile(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatalf("reading the Go build information of sandbox-init (the holder's executable): %v", err)
	}
	cgo := "(not recorded)"
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			cgo = s.Value
		}
	}
	if cgo != "0" {
		t.Errorf("sandbox-init is built with CGO_ENABLED=%s, want 0 (the holder stage is cmd/sandbox-stage)", cgo)
	}
}

// initFDScript lists init's fds ("N -> target") and environment, once
// init waits for the payload (it has no transient fd then).
const initFDScript = `sleep 0.3; for f in /proc/1/fd/*; do printf '%s -> %s\n' "${f##*/}" "$(readlink "$f")"; done; tr '\0' '\n' </proc/1/environ`

// initFDs runs initFDScript with env (and run's flags) and returns init's
// fds above stdio as "N kind" (the target without its inode number), its
// environment and how the maps were written.
func initFDs(t *testing.T, env []string, flags ...string) (fds, environ []string, via string) {
	t.Helper()
	args := append(append([]string{"run", "-v", "--net=none", "--cap-add", "ALL", "--seccomp=unconfined"}, flags...), "--",
		"sh", "-c", initFDScript)
	r := mustRun(t, opts{env: env}, args...)
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		n, target, ok := strings.Cut(l, " -> ")
		if !ok {
			environ = append(environ, l)
			continue
		}
		if n == "0" || n == "1" || n == "2" || target == "" {
			continue // stdio, or closed while listed
		}
		kind, _, _ := strings.Cut(target, "[")
		if strings.HasPrefix(target, "anon_inode:") {
			kind = target
		}
		fds = append(fds, n+" "+kind)
	}
	if len(environ) == 0 {
		t.Fatalf("init's environment not listed (the payload could not look into init):\n%s", r)
	}
	return fds, environ, mapsVia(t, r)
}

// TestStageNothingReachesInit: an init created by the stage holds the fds
// an init started directly holds, and none of the stage's (the holder's
// namespace, the report pipe, its own or init's memfd); its environment
// has none of the stage's variables.
func TestStageNothingReachesInit(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	h.mapsRun(t)
	h.waitHolder(t)
	staged, environ, via := initFDs(t, h.env)
	if via != "holder" {
		t.Fatalf("maps by %s, want the holder", via)
	}
	for _, fd := range staged {
		_, kind, _ := strings.Cut(fd, " ")
		if !strings.HasPrefix(kind, "socket:") && !strings.HasPrefix(kind, "anon_inode:") {
			t.Errorf("init created by the stage holds fd %s", fd)
		}
	}
	direct, _, via := initFDs(t, append(slices.Clone(h.env), "SANDBOX_HOLDER=off"))
	if via != "helpers" {
		t.Fatalf("with SANDBOX_HOLDER=off: maps by %s, want the helpers", via)
	}
	wantLikeDirect(t, staged, environ, direct)
}

// wantLikeDirect checks an init created by the stage (its fds above stdio
// as initFDs lists them, its environment) against one started directly:
// the same fds, and none of the stage's variables.
func wantLikeDirect(t *testing.T, staged, environ, direct []string) {
	t.Helper()
	for _, e := range environ {
		if strings.HasPrefix(e, "SANDBOX_STAGE") {
			t.Errorf("init's environment has the stage's %s", e)
		}
	}
	if !slices.Equal(staged, direct) {
		t.Errorf("init's fds above stdio: created by the stage %v, started directly %v", staged, direct)
	}
}

// TestStageFirstRun: a user's first run, which finds no holder and whose
// maps only newuidmap and newgidmap may write, has init created by the
// stage too, started while the run is planned, rather than by a fork of
// the whole of sandbox after it; the helpers write the full maps once the
// stage has reported init's pid, setgroups stays allowed as newgidmap
// leaves it, and init holds the fds of an init started directly and
// nothing of the stage.
func TestStageFirstRun(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	r := mustRun(t, opts{env: h.env}, "run", "-v", "--net=none", "--",
		"sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups")
	if via := mapsVia(t, r); via != "helpers" {
		t.Fatalf("first run: maps by %s, want the helpers (no holder yet)", via)
	}
	if !strings.Contains(r.stderr, ", early: while the run was planned") {
		t.Fatalf("a first run's init was not started while the run was planned:\n%s", r.stderr)
	}
	wantMaps(t, r.stdout)
	if !strings.HasSuffix(strings.TrimSpace(r.stdout), "allow") {
		t.Errorf("setgroups inside: want allow (as newgidmap leaves it):\n%s", r.stdout)
	}
	h = newHolderSetup(t)
	staged, environ, via := initFDs(t, h.env)
	if via != "helpers" {
		t.Fatalf("first run: maps by %s, want the helpers", via)
	}
	direct, _, _ := initFDs(t, append(slices.Clone(h.env), "SANDBOX_HOLDER=off"))
	wantLikeDirect(t, staged, environ, direct)
}

// TestStageWithoutHolder: maps the caller writes itself (--map=single:
// its own uid and gid alone) are written by init's stage too, without a
// holder: init is started while the run is planned, by the stage's
// clone rather than a fork of the whole of sandbox, with setgroups denied
// before the gid map (the kernel's rule for a writer without CAP_SETGID),
// the same fds as an init started directly, and nothing of the stage.
func TestStageWithoutHolder(t *testing.T) {
	t.Parallel()
	h := holderWay(t, "helpers") // no holder: none is used for one id
	r := mustRun(t, opts{env: h.env}, "run", "-v", "--map=single", "--net=none", "--",
		"cat", "/proc/self/uid_map", "/proc/self/gid_map", "/proc/self/setgroups")
	if via := mapsVia(t, r); via != "stage" {
		t.Fatalf("--map=single: maps written by %s, want init's stage\n%s", via, r)
	}
	if !strings.Contains(r.stderr, ", early: while the run was planned") {
		t.Errorf("--map=single: init not started while the run was planned:\n%s", r.stderr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	if want := []string{fmt.Sprintf("0 %d 1", os.Getuid()), fmt.Sprintf("0 %d 1", os.Getgid()), "deny"}; !slices.Equal(lines, want) {
		t.Errorf("uid_map, gid_map, setgroups inside: got %q, want %q", lines, want)
	}
	staged, environ, via := initFDs(t, h.env, "--map=single")
	if via != "stage" {
		t.Fatalf("--map=single: maps by %s, want init's stage", via)
	}
	direct, _, via := initFDs(t, h.env)
	if via != "helpers" {
		t.Fatalf("with SANDBOX_HOLDER=off: maps by %s, want the helpers", via)
	}
	wantLikeDirect(t, staged, environ, direct)
}

// TestHolderClosesInherited: the holder keeps no fd that the run which
// started it inherited without close-on-exec.
func TestHolderClosesInherited(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	f, err := os.Create(filepath.Join(tempDir(t), "inherited"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustRun(t, opts{env: h.env, extra: []*os.File{f}}, "run", "--net=none", "--", "true")
	if bad := holderFDsSettled(t, h.waitHolder(t)); len(bad) > 0 {
		t.Errorf("the holder keeps fds of its starter: %v", bad)
	}
}
