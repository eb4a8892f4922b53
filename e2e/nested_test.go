//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nestedBin binds the binary under test into an outer sandbox.
const nestedBin = "/opt/sandbox-under-test"

func bindNested(t *testing.T) []string {
	return []string{"--bind", binary(t) + ":" + nestedBin + ":ro"}
}

// innerMaps splits `cat /proc/self/uid_map /proc/self/gid_map` output
// (before a line "---") and checks that both maps are the outer namespace's
// ids only: total count want, nothing from root's built-in 1000000000 range.
func checkInnerMaps(t *testing.T, out string, want int64) {
	t.Helper()
	m, err := parseIDMap(sections(out)[0])
	if err != nil {
		t.Fatalf("inner maps: %v\n%s", err, out)
	}
	var total int64
	for _, l := range m {
		total += l.count
		if l.outside >= 1000000000 {
			t.Errorf("inner map line %v uses root's built-in range, which this namespace does not map", l)
		}
	}
	if total != 2*want { // uid_map and gid_map
		t.Errorf("inner maps %v: want %d uids and %d gids, the outer namespace's", m, want, want)
	}
}

// outerCount is how many ids the caller's outer sandbox maps: itself and its
// /etc/subuid ranges.
func outerCount(t *testing.T) int64 {
	n := int64(1)
	for _, r := range expectedRanges("/etc/subuid") {
		n += r.count
	}
	return n
}

// TestNestedSandbox: `sandbox run --allow-nested-userns -- sandbox run …`.
// Inside, the caller is root of a user namespace mapping a limited range.
func TestNestedSandbox(t *testing.T) {
	t.Parallel()
	requireFullMap(t)
	t.Run("in itself", func(t *testing.T) {
		t.Parallel()
		args := append(append([]string{"run", "--net=none", "--cwd=none", "--allow-nested-userns", "--unmask-proc"}, bindNested(t)...),
			"--", nestedBin, "run", "--net=none", "--cwd=none", "--", "sh", "-c",
			`cat /proc/self/uid_map /proc/self/gid_map; echo ---; grep -c ' /proc/' /proc/self/mountinfo; echo inner-ok`)
		r := run(t, args...)
		wantCode(t, r, 0)
		if !strings.Contains(r.stdout, "inner-ok") {
			t.Fatalf("the nested sandbox did not run its command: %s", r)
		}
		checkInnerMaps(t, r.stdout, outerCount(t))
	})
	t.Run("masked proc is a clear 125", func(t *testing.T) {
		t.Parallel()
		// Without --unmask-proc /proc keeps its masks.
		args := append(append([]string{"run", "--net=none", "--cwd=none", "--allow-nested-userns"}, bindNested(t)...),
			"--", nestedBin, "run", "--net=none", "--cwd=none", "--", "echo", "inner-ran")
		r := run(t, args...)
		wantCode(t, r, exitSandbox)
		for _, s := range []string{"proc on /proc", "masked", "unmask=ALL", "procMount: Unmasked", "--unmask-proc"} {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("the error should say %q: %s", s, r)
			}
		}
		if strings.Contains(r.stdout, "inner-ran") {
			t.Errorf("the inner command ran without a /proc of its own")
		}
	})
	t.Run("without --allow-nested-userns the fix is named", func(t *testing.T) {
		t.Parallel()
		// The outer filter refuses the user namespace: its flag is the
		// fix, not the host's sysctls (named before).
		args := append(append([]string{"run", "--net=none", "--cwd=none"}, bindNested(t)...),
			"--", nestedBin, "run", "--net=none", "--cwd=none", "--", "echo", "inner-ran")
		r := run(t, args...)
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "--allow-nested-userns") || strings.Contains(r.stderr, "unprivileged_userns_clone") {
			t.Errorf("the error should name --allow-nested-userns, not the host's sysctls: %s", r)
		}
	})
	t.Run("no /etc/passwd", func(t *testing.T) {
		t.Parallel()
		root := makeRootfs(t, "nopasswd")
		args := append(append([]string{"run", "--net=none", "--cwd=none", "--allow-nested-userns", "--unmask-proc", "--rootfs", root}, bindNested(t)...),
			"--", nestedBin, "run", "--map=single", "--net=none", "--cwd=none", "--", "sh", "-c", "test -e /etc/passwd || echo inner-ok")
		r := run(t, args...)
		wantCode(t, r, 0)
		if !strings.Contains(r.stdout, "inner-ok") || strings.Contains(r.stderr, "user database") {
			t.Errorf("a uid without a user database entry must run: %s", r)
		}
	})
	t.Run("unshare -r: only itself mapped", func(t *testing.T) {
		t.Parallel()
		requireOrSkip(t, findHelper("unshare"), "unshare (package util-linux)")
		xdg := tempDir(t) // /tmp/sandbox-0 would be every such root's
		p := start(t, opts{prepare: func(c *exec.Cmd) {
			c.Path, _ = exec.LookPath("unshare")
			c.Args = append([]string{"unshare", "-U", "-r", binary(t)}, c.Args[1:]...)
			c.Env = append(c.Env, "XDG_RUNTIME_DIR="+xdg)
		}}, "run", "--net=none", "--cwd=none", "--", "cat", "/proc/self/uid_map")
		r := p.wait()
		wantCode(t, r, 0)
		m, err := parseIDMap(r.stdout)
		if err != nil || len(m) != 1 || m[0] != (idMapLine{0, 0, 1}) {
			t.Errorf("under unshare -r only root itself can be mapped: %v %v\n%s", m, err, r)
		}
		if !strings.Contains(r.stderr, "maps no uid or gid but your own") {
			t.Errorf("the warning should say why only one id is mapped: %s", r)
		}
	})
	t.Run("not root inside", func(t *testing.T) {
		t.Parallel()
		args := append(append([]string{"run", "--net=none", "--cwd=none", "--allow-nested-userns", "--unmask-proc", "--uid", "1000", "--gid", "1000"}, bindNested(t)...),
			"--", nestedBin, "run", "--net=none", "--cwd=none", "--", "cat", "/proc/self/uid_map")
		r := run(t, args...)
		wantCode(t, r, 0)
		m, err := parseIDMap(r.stdout)
		if err != nil || len(m) != 1 || m[0].count != 1 {
			t.Errorf("a non-root caller inside maps only itself: %v %v\n%s", m, err, r)
		}
		if !strings.Contains(r.stderr, "not root in this user namespace") {
			t.Errorf("the warning should say why only one id is mapped: %s", r)
		}
	})
	t.Run("check says nested", func(t *testing.T) {
		t.Parallel()
		args := append(append([]string{"run", "--net=none", "--cwd=none", "--allow-nested-userns", "--unmask-proc"}, bindNested(t)...),
			"--", nestedBin, "check", "--json")
		r := run(t, args...)
		_, byID := parseCheck(t, r.stdout)
		n := strconv.FormatInt(outerCount(t), 10)
		want(t, byID, "nested", "WARN", false, []string{"nested: this user namespace", "maps " + n + " uids", "run maps only those ids"}, nil)
		if res := byID["run"]; res.Status == "FAIL" { // WARN: no /dev/net/tun inside
			t.Errorf("a nested `sandbox run -- true` should work: %+v", res)
		}

		args = append(append([]string{"run", "--net=none", "--cwd=none", "--allow-nested-userns"}, bindNested(t)...),
			"--", nestedBin, "check", "--json")
		r = run(t, args...)
		_, byID = parseCheck(t, r.stdout)
		want(t, byID, "nested", "FAIL", true, []string{"masked", "run stops with 125"}, []string{"unmask=ALL"})
		if r.code != 1 {
			t.Errorf("check with a masked /proc: want exit status 1, got %s", r)
		}
	})
	t.Run("not nested on the host", func(t *testing.T) {
		t.Parallel()
		r := run(t, "check", "--json")
		_, byID := parseCheck(t, r.stdout)
		want(t, byID, "nested", "OK", false, []string{"not nested"}, nil)
	})
}

// TestNestedInPodman: the binary in a rootless podman container whose
// root has no /etc/passwd (a minimal image), as CI container jobs run it.
func TestNestedInPodman(t *testing.T) {
	t.Parallel()
	requireOrSkip(t, findHelper("podman") && findHelper("runc"), "podman and runc (Debian packages podman, runc; scripts/setup-host.sh installs them)")
	requireFullMap(t)
	root := makeRootfs(t, "podman")
	if exists(filepath.Join(root, "etc/passwd")) {
		t.Fatalf("the test root must have no /etc/passwd")
	}
	// podman's own state, private to the test.
	state := tempDir(t)
	xdg := filepath.Join(state, "xdg")
	if err := os.Mkdir(xdg, 0o700); err != nil {
		t.Fatal(err)
	}
	env := mergeEnv(os.Environ(), []string{"XDG_RUNTIME_DIR=" + xdg, "XDG_CONFIG_HOME=" + filepath.Join(state, "config"),
		"XDG_DATA_HOME=" + filepath.Join(state, "data"), "TMPDIR=" + state})
	global := []string{"--root", filepath.Join(state, "root"), "--runroot", filepath.Join(state, "runroot"), "--storage-driver=vfs"}
	t.Cleanup(func() {
		// Files of the container's other ids: removable only from inside its namespace.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "podman", append(global, "unshare", "rm", "-rf", filepath.Join(state, "root"), filepath.Join(state, "runroot"))...)
		cmd.Env = env
		cmd.Run()
		// Rootless podman leaves a pause process holding its namespaces.
		if b, err := os.ReadFile(filepath.Join(xdg, "libpod/tmp/pause.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	podman := func(extra []string, script string) result {
		t.Helper()
		args := append(append(append([]string{"--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend=none"}, global...),
			"run", "--rm", "--net=none", "-v", binary(t)+":/sb:ro"), extra...)
		args = append(args, "--rootfs", root, "/bin/sh", "-c", script)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "podman", args...)
		cmd.Env = env
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{args: append([]string{"(podman)"}, args...), stdout: stdout.String(), stderr: stderr.String(), timedOut: ctx.Err() != nil}
		r.code = -1
		if cmd.ProcessState != nil {
			r.code = cmd.ProcessState.ExitCode()
		} else {
			r.startErr = err
		}
		return r
	}
	const inner = `/sb run --net=none --cwd=none -- sh -c 'cat /proc/self/uid_map /proc/self/gid_map; echo ---; echo inner-ok'; echo "inner-status=$?"`
	t.Run("proc unmasked", func(t *testing.T) {
		r := podman([]string{"--security-opt", "unmask=ALL"}, inner)
		if r.code != 0 || !strings.Contains(r.stdout, "inner-status=0") || !strings.Contains(r.stdout, "inner-ok") {
			t.Fatalf("sandbox in rootless podman with /proc unmasked should work: %s", r)
		}
		// podman maps root to the caller and the caller's subordinate ids above it.
		checkInnerMaps(t, r.stdout, outerCount(t))
	})
	t.Run("proc masked", func(t *testing.T) {
		r := podman(nil, inner)
		if !strings.Contains(r.stdout, "inner-status=125") || strings.Contains(r.stdout, "inner-ok") {
			t.Errorf("under podman's default /proc masks the sandbox must stop with 125: %s", r)
		}
		if !strings.Contains(r.stderr, "unmask=ALL") || strings.Contains(r.stderr, "user database") || strings.Contains(r.stderr, "writing the id maps") {
			t.Errorf("the error should name podman's unmask option (and nothing before /proc may fail): %s", r)
		}
	})
}
