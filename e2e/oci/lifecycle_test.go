package oci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// lcBundle makes a rootless busybox bundle running args, tweaked by edit.
func lcBundle(t *testing.T, edit func(*specs.Spec), args ...string) string {
	t.Helper()
	dir := t.TempDir()
	s := rootlessSpec(t, busyboxRootfs(t, dir), args...)
	if edit != nil {
		edit(s)
	}
	return bundle(t, dir, s)
}

// lcRoot is a --root of the test's own; every container left in it is
// deleted with --force at the end, pass or fail.
func lcRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "state")
	t.Cleanup(func() {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			oci(t, root, "delete", "--force", e.Name())
		}
	})
	return root
}

func mustOK(t *testing.T, r result, what string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: %s", what, r)
	}
}

func ociState(t *testing.T, root, id string) specs.State {
	t.Helper()
	r := oci(t, root, "state", id)
	mustOK(t, r, "state "+id)
	var s specs.State
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("state %s: %v\n%s", id, err, r)
	}
	return s
}

// waitStatus polls state until id has status want (bounded).
func waitStatus(t *testing.T, root, id string, want specs.ContainerState) specs.State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := ociState(t, root, id)
		if s.Status == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: status %s after 10s, want %s", id, s.Status, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processGone waits (bounded) until pid no longer runs (or is a zombie).
func processGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(data, ')'); i > 0 && i+2 < len(data) && data[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs 10s on: %s", pid, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// initProcs are the pids of this user's sandbox-oci-init processes (a
// container created but not started).
func initProcs(t *testing.T) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.HasPrefix(b, []byte("sandbox-oci-init\x00")) {
			out[pid] = true
		}
	}
	return out
}

func TestOCILifecycle(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sleep", "300")
	pidFile := filepath.Join(t.TempDir(), "pid")
	mustOK(t, oci(t, root, "create", "--bundle", b, "--pid-file", pidFile, "lc1"), "create")
	s := ociState(t, root, "lc1")
	if s.Status != specs.StateCreated || s.ID != "lc1" || s.Bundle != b || s.Version != specs.Version {
		t.Fatalf("after create: %+v", s)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := strconv.Atoi(string(data)); err != nil || pid != s.Pid || pid <= 0 {
		t.Fatalf("pid file %q, state pid %d", data, s.Pid)
	}
	// The init runs from a sealed memfd, never from a host file of ours.
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.Pid)); err != nil || !strings.HasPrefix(exe, "/memfd:") {
		t.Errorf("init's exe: %q %v, want a memfd", exe, err)
	}
	if r := oci(t, root, "create", "--bundle", b, "lc1"); r.code != 125 || !strings.Contains(r.stderr, `container "lc1" already exists`) {
		t.Errorf("second create with the same id: %s", r)
	}
	mustOK(t, oci(t, root, "start", "lc1"), "start")
	s = ociState(t, root, "lc1")
	if s.Status != specs.StateRunning {
		t.Fatalf("after start: %+v", s)
	}
	if r := oci(t, root, "start", "lc1"); r.code != 125 || !strings.Contains(r.stderr, "running") {
		t.Errorf("start of a running container: %s", r)
	}
	if r := oci(t, root, "delete", "lc1"); r.code != 125 || !strings.Contains(r.stderr, "running") {
		t.Errorf("delete of a running container: %s", r)
	}
	r := oci(t, root, "ps", "--format", "json", "lc1")
	mustOK(t, r, "ps")
	var pids []int
	if err := json.Unmarshal([]byte(r.stdout), &pids); err != nil || len(pids) == 0 {
		t.Errorf("ps --format json: %v %s", err, r)
	}
	mustOK(t, oci(t, root, "kill", "lc1", "KILL"), "kill")
	waitStatus(t, root, "lc1", specs.StateStopped)
	if s := ociState(t, root, "lc1"); s.Pid != 0 {
		t.Errorf("stopped container's pid: %d, want 0", s.Pid)
	}
	if r := oci(t, root, "kill", "lc1"); r.code != 125 || !strings.Contains(r.stderr, "container not running") {
		t.Errorf("kill of a stopped container: %s", r)
	}
	mustOK(t, oci(t, root, "delete", "lc1"), "delete")
	if r := oci(t, root, "state", "lc1"); r.code != 125 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("state after delete: %s", r)
	}
	if _, err := os.Stat(filepath.Join(root, "lc1")); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
	// As runc: delete --force of what does not exist is no error.
	mustOK(t, oci(t, root, "delete", "--force", "lc1"), "delete --force of a deleted container")
}

func TestOCIRunExitCode(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sh", "-c", "echo out-$(hostname); exit 7")
	r := oci(t, root, "run", "--bundle", b, "ex7")
	if r.code != 7 || !strings.Contains(r.stdout, "out-oci-test") {
		t.Fatalf("run: %s", r)
	}
	// run removes the container once its process ends.
	if _, err := os.Stat(filepath.Join(root, "ex7")); !os.IsNotExist(err) {
		t.Errorf("state left after run: %v", err)
	}
}

func TestOCIRunDetachAndDeleteForce(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sleep", "300")
	mustOK(t, oci(t, root, "run", "-d", "--bundle", b, "det"), "run -d")
	s := ociState(t, root, "det")
	if s.Status != specs.StateRunning {
		t.Fatalf("after run -d: %+v", s)
	}
	mustOK(t, oci(t, root, "delete", "--force", "det"), "delete --force")
	processGone(t, s.Pid)
	if _, err := os.Stat(filepath.Join(root, "det")); !os.IsNotExist(err) {
		t.Errorf("state left: %v", err)
	}
}

func TestOCIKillCreated(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sleep", "300")
	mustOK(t, oci(t, root, "create", "--bundle", b, "kc"), "create")
	s := ociState(t, root, "kc")
	mustOK(t, oci(t, root, "kill", "kc", "SIGKILL"), "kill")
	waitStatus(t, root, "kc", specs.StateStopped)
	processGone(t, s.Pid)
	mustOK(t, oci(t, root, "delete", "kc"), "delete")
	// A created container is deleted without --force: it never ran.
	mustOK(t, oci(t, root, "create", "--bundle", b, "kc2"), "create")
	s = ociState(t, root, "kc2")
	mustOK(t, oci(t, root, "delete", "kc2"), "delete of a created container")
	processGone(t, s.Pid)
}

func TestOCIList(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sleep", "300")
	mustOK(t, oci(t, root, "create", "--bundle", b, "la"), "create la")
	mustOK(t, oci(t, root, "create", "--bundle", b, "lb"), "create lb")
	mustOK(t, oci(t, root, "start", "lb"), "start lb")
	r := oci(t, root, "list")
	mustOK(t, r, "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "OWNER") ||
		!strings.Contains(lines[1], "la") || !strings.Contains(lines[1], "created") ||
		!strings.Contains(lines[2], "lb") || !strings.Contains(lines[2], "running") {
		t.Errorf("list:\n%s", r.stdout)
	}
	r = oci(t, root, "list", "--format", "json")
	mustOK(t, r, "list --format json")
	var l []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Pid    int    `json:"pid"`
		Bundle string `json:"bundle"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l) != 2 || l[0].ID != "la" || l[1].Status != "running" || l[1].Bundle != b {
		t.Errorf("list --format json: %v %+v\n%s", err, l, r.stdout)
	}
	r = oci(t, root, "list", "-q")
	if r.code != 0 || r.stdout != "la\nlb\n" {
		t.Errorf("list -q: %s", r)
	}
}

func TestOCIFeatures(t *testing.T) {
	r := oci(t, t.TempDir(), "features")
	mustOK(t, r, "features")
	var f features.Features
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("features: %v\n%s", err, r.stdout)
	}
	if f.OCIVersionMax != specs.Version || f.Linux == nil || f.Linux.Cgroup == nil || f.Linux.Cgroup.V2 == nil || !*f.Linux.Cgroup.V2 ||
		len(f.Linux.Namespaces) != 8 || len(f.Hooks) != 6 || f.Linux.Seccomp == nil || len(f.Linux.Seccomp.Actions) == 0 {
		t.Errorf("features: %+v", f)
	}
	caps := strings.Join(f.Linux.Capabilities, ",")
	if !strings.Contains(caps, "CAP_SYS_ADMIN") || !strings.Contains(caps, "CAP_CHOWN") {
		t.Errorf("features capabilities: %s", caps)
	}
	for k := range f.Annotations {
		if !strings.HasPrefix(k, "org.sandbox.") {
			t.Errorf("features annotation %q: not ours", k)
		}
	}
}

func TestOCISpecRootless(t *testing.T) {
	dir := t.TempDir()
	r := oci(t, t.TempDir(), "spec", "--rootless", "--bundle", dir)
	mustOK(t, r, "spec --rootless")
	if r := oci(t, t.TempDir(), "spec", "--bundle", dir); r.code != 125 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("spec over an existing config.json: %s", r)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	hasUser := false
	for _, ns := range s.Linux.Namespaces {
		hasUser = hasUser || ns.Type == specs.UserNamespace
	}
	if !hasUser || len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0].HostID != uint32(os.Geteuid()) {
		t.Fatalf("rootless spec: namespaces %v, uid maps %v", s.Linux.Namespaces, s.Linux.UIDMappings)
	}
	// Run it as written, but for the root (our busybox), no terminal and
	// a command that ends.
	busyboxRootfs(t, dir)
	s.Root.Readonly = false
	s.Process.Terminal = false
	s.Process.Args = []string{"sh", "-c", "echo spec-ok"}
	bundle(t, dir, &s)
	root := lcRoot(t)
	r = oci(t, root, "run", "--bundle", dir, "sp")
	if r.code != 0 || !strings.Contains(r.stdout, "spec-ok") {
		t.Fatalf("run of the rootless spec: %s", r)
	}
}

// TestOCIHooks: every kind of hook runs, in the spec's order, with the
// state on its stdin; all append to one file in the rootfs, which the
// startContainer hook (run inside, after pivot_root) sees at /hooks.log.
func TestOCIHooks(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, dir)
	hostLog := filepath.Join(rootfs, "hooks.log")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	host := func(kind string) specs.Hook {
		// The state document's id and status follow the kind's name.
		return specs.Hook{Path: sh, Args: []string{"sh", "-c",
			`read -r s; id=$(echo "$s" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p'); st=$(echo "$s" | sed -n 's/.*"status":"\([^"]*\)".*/\1/p'); echo "` + kind + ` $id $st" >> ` + hostLog}}
	}
	s := rootlessSpec(t, rootfs, "sleep", "300")
	s.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{host("prestart")}, //nolint:staticcheck // deprecated, still honoured
		CreateRuntime:   []specs.Hook{host("createRuntime")},
		CreateContainer: []specs.Hook{host("createContainer")},
		StartContainer:  []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo startContainer >> /hooks.log"}}},
		Poststart:       []specs.Hook{host("poststart")},
		Poststop:        []specs.Hook{host("poststop")},
	}
	b := bundle(t, dir, s)
	root := lcRoot(t)
	mustOK(t, oci(t, root, "create", "--bundle", b, "hk"), "create")
	mustOK(t, oci(t, root, "start", "hk"), "start")
	mustOK(t, oci(t, root, "delete", "--force", "hk"), "delete --force")
	data, err := os.ReadFile(hostLog)
	if err != nil {
		t.Fatal(err)
	}
	want := "prestart hk creating\ncreateRuntime hk creating\ncreateContainer hk creating\nstartContainer\n" +
		"poststart hk running\npoststop hk stopped\n"
	if string(data) != want {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", data, want)
	}
}

// TestOCIBadHook: a failing createRuntime hook fails create, leaving no
// process and no state; a failing startContainer hook fails start and
// the container does not run.
func TestOCIBadHook(t *testing.T) {
	root := lcRoot(t)
	before := initProcs(t)
	b := lcBundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo hook-says-no >&2; exit 3"}}}}
	}, "sleep", "300")
	r := oci(t, root, "create", "--bundle", b, "bh")
	if r.code != 125 || !strings.Contains(r.stderr, "hooks.createRuntime[0]") || !strings.Contains(r.stderr, "hook-says-no") ||
		strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("create with a failing hook: %s", r)
	}
	if _, err := os.Stat(filepath.Join(root, "bh")); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pid := range initProcs(t) {
		if before[pid] {
			continue
		}
		for time.Now().Before(deadline) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("an init (pid %d) is left after the failed create", pid)
		}
	}

	b = lcBundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/false"}}}
	}, "sleep", "300")
	mustOK(t, oci(t, root, "create", "--bundle", b, "bs"), "create")
	st := ociState(t, root, "bs")
	r = oci(t, root, "start", "bs")
	if r.code != 125 || !strings.Contains(r.stderr, "hooks.startContainer[0]") {
		t.Errorf("start with a failing startContainer hook: %s", r)
	}
	processGone(t, st.Pid)
	waitStatus(t, root, "bs", specs.StateStopped)
	mustOK(t, oci(t, root, "delete", "bs"), "delete")
}

// TestOCIRunKilled: SIGKILL of `sandbox-oci run` leaves no container
// process; the init of `create` (below) outlives its create.
func TestOCIRunKilled(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sleep", "300")
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociBin(t), "--root", root, "run", "--bundle", b, "--pid-file", pidFile, "rk")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(string(data))
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("run wrote no pid file in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Started (state running) before the kill.
	waitStatus(t, root, "rk", specs.StateRunning)
	cmd.Process.Kill()
	cmd.Wait()
	processGone(t, pid)

	mustOK(t, oci(t, root, "create", "--bundle", b, "ck"), "create")
	s := ociState(t, root, "ck")
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.Pid)); err != nil {
		t.Errorf("create's init died with create: %v", err)
	}
}

// TestOCIConsoleSocket: with process.terminal, create sends the pty
// master over --console-socket; the container's output comes through it.
func TestOCIConsoleSocket(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, func(s *specs.Spec) { s.Process.Terminal = true }, "sh", "-c", "tty; echo console-ok; sleep 300")
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan *os.File, 1)
	go func() {
		_ = l.SetDeadline(time.Now().Add(cmdTimeout))
		c, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(cmdTimeout))
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			got <- nil
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			got <- nil
			return
		}
		got <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	// An engine's id (64 hex digits, as podman's) puts the container's
	// directory beyond what a socket address holds.
	id := strings.Repeat("c0ffee", 10) + "c0de"
	mustOK(t, oci(t, root, "create", "--bundle", b, "--console-socket", sock, id), "create")
	var master *os.File
	select {
	case master = <-got:
	case <-time.After(cmdTimeout):
	}
	if master == nil {
		t.Fatal("no pty master came over the console socket")
	}
	defer master.Close()
	mustOK(t, oci(t, root, "start", id), "start")
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(master)
		for sc.Scan() {
			lines <- strings.TrimSpace(sc.Text())
		}
		close(lines)
	}()
	var seen []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("pty closed; read %q", seen)
			}
			seen = append(seen, l)
			if l == "console-ok" {
				if !strings.HasPrefix(seen[0], "/dev/pts/") {
					t.Errorf("tty in the container: %q, want /dev/pts/N", seen[0])
				}
				return
			}
		case <-timeout:
			t.Fatalf("no console-ok through the pty in 10s; read %q", seen)
		}
	}
}

// TestOCIPreserveFds: --preserve-fds 1 hands fd 3 to the container's process.
func TestOCIPreserveFds(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sh", "-c", "echo preserved >&3; ls /proc/self/fd")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociBin(t), "--root", root, "run", "--preserve-fds", "1", "--bundle", b, "pf")
	cmd.ExtraFiles = []*os.File{pw}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	pw.Close()
	if err != nil {
		t.Fatalf("run --preserve-fds 1: %v\n%s", err, out.String())
	}
	buf := make([]byte, 64)
	_ = pr.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := pr.Read(buf)
	if string(buf[:n]) != "preserved\n" {
		t.Errorf("fd 3 carried %q", buf[:n])
	}
	// Only stdio and the preserved fd (and ls's own directory fd).
	if fds := strings.Fields(out.String()); len(fds) > 5 {
		t.Errorf("the container's process has fds %v", fds)
	}
}

// TestOCIErrorsLogJSON: an error is one stderr line and exit 125, and with
// --log-format json a runc-style record in the log.
func TestOCIErrorsLogJSON(t *testing.T) {
	root := t.TempDir()
	logf := filepath.Join(t.TempDir(), "log.json")
	r := oci(t, root, "--log", logf, "--log-format", "json", "state", "nope")
	if r.code != 125 || strings.TrimSpace(r.stderr) != `sandbox-oci: container "nope" does not exist` {
		t.Errorf("state of an unknown container: %s", r)
	}
	data, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Level, Msg, Time string }
	if err := json.Unmarshal(bytes.TrimSpace(data), &rec); err != nil || rec.Level != "error" ||
		rec.Msg != `container "nope" does not exist` || rec.Time == "" {
		t.Errorf("log record %q: %v", data, err)
	}
	for _, args := range [][]string{{"frobnicate"}, {"create"}, {"kill", "x", "SIGNOPE"}, {"create", "bad/id"}} {
		if r := oci(t, root, args...); r.code != 125 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: %s", args, r)
		}
	}
	r = oci(t, root, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "sandbox-oci version ") || !strings.Contains(r.stdout, "spec: "+specs.Version) {
		t.Errorf("--version: %s", r)
	}
	// Rootless without a user namespace: refused, as runc does.
	b := lcBundle(t, func(s *specs.Spec) {
		var ns []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.UserNamespace {
				ns = append(ns, n)
			}
		}
		s.Linux.Namespaces, s.Linux.UIDMappings, s.Linux.GIDMappings = ns, nil, nil
	}, "true")
	if r := oci(t, root, "create", "--bundle", b, "nouser"); r.code != 125 || !strings.Contains(r.stderr, "user namespace") {
		t.Errorf("rootless create without a user namespace: %s", r)
	}
	if _, err := os.Stat(filepath.Join(root, "nouser")); !os.IsNotExist(err) {
		t.Errorf("state left: %v", err)
	}
}

// TestOCIRunForwardsSignals: SIGTERM to `sandbox-oci run` reaches the
// container's process, whose status run returns.
func TestOCIRunForwardsSignals(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sh", "-c", `trap "exit 9" TERM; echo ready > /ready; sleep 300 & wait`)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociBin(t), "--root", root, "run", "--bundle", b, "sig")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(b, "rootfs", "ready")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the container did not get ready in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 9 {
		t.Errorf("run after SIGTERM: %v, want exit status 9", err)
	}
}

// TestOCISysctlHostname: linux.sysctl (namespaced) and hostname are set
// inside; a sysctl that is not namespaced is refused, naming it.
func TestOCISysctlHostname(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, func(s *specs.Spec) {
		s.Hostname = "sysctl-host"
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
	}, "sh", "-c", "hostname; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni")
	r := oci(t, root, "run", "--bundle", b, "sc")
	if r.code != 0 || r.stdout != "sysctl-host\n1\n1234\n" {
		t.Errorf("run: %s", r)
	}
	b = lcBundle(t, func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.pid_max": "100000"} }, "true")
	r = oci(t, root, "run", "--bundle", b, "sc2")
	if r.code != 125 || !strings.Contains(r.stderr, "linux.sysctl.kernel.pid_max") {
		t.Errorf("run with a host sysctl: %s", r)
	}
}

// TestOCIStateWhileCreating: during create (here from its createRuntime
// hook) the container is "creating", not yet "created".
func TestOCIStateWhileCreating(t *testing.T) {
	root := lcRoot(t)
	out := filepath.Join(t.TempDir(), "state.json")
	b := lcBundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c",
			ociBin(t) + " --root " + root + " state wc > " + out}}}}
	}, "sleep", "300")
	mustOK(t, oci(t, root, "create", "--bundle", b, "wc"), "create")
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var s specs.State
	if err := json.Unmarshal(data, &s); err != nil || s.Status != specs.StateCreating || s.Pid <= 0 {
		t.Errorf("state from the createRuntime hook: %v %s", err, data)
	}
	if s := ociState(t, root, "wc"); s.Status != specs.StateCreated {
		t.Errorf("after create: %+v", s)
	}
}

// TestOCIRunTerminal: run in the foreground with process.terminal and no
// --console-socket holds the pty itself, as runc does (`spec` writes
// terminal: true).
func TestOCIRunTerminal(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, func(s *specs.Spec) { s.Process.Terminal = true }, "sh", "-c", "tty; echo term-ok; exit 3")
	r := oci(t, root, "run", "--bundle", b, "tt")
	if r.code != 3 || !strings.Contains(r.stdout, "/dev/pts/") || !strings.Contains(r.stdout, "term-ok") {
		t.Errorf("run with a terminal: %s", r)
	}
	if r := oci(t, root, "run", "-d", "--bundle", b, "tt2"); r.code != 125 || !strings.Contains(r.stderr, "process.terminal: needs --console-socket") {
		t.Errorf("run -d with a terminal, no console socket: %s", r)
	}
}

// TestOCIPauseResume: in the test's delegated cgroup (v2) the container
// has a cgroup of its own: pause freezes it (state paused), resume thaws
// it, ps lists its process, delete --force removes a paused one.
func TestOCIPauseResume(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, nil, "sleep", "300")
	mustOK(t, oci(t, root, "run", "-d", "--bundle", b, "pr"), "run -d")
	s := ociState(t, root, "pr")
	mustOK(t, oci(t, root, "pause", "pr"), "pause")
	if s := ociState(t, root, "pr"); s.Status != "paused" {
		t.Errorf("after pause: %+v", s)
	}
	if r := oci(t, root, "pause", "pr"); r.code != 125 {
		t.Errorf("pause of a paused container: %s", r)
	}
	mustOK(t, oci(t, root, "resume", "pr"), "resume")
	if s := ociState(t, root, "pr"); s.Status != specs.StateRunning {
		t.Errorf("after resume: %+v", s)
	}
	if r := oci(t, root, "resume", "pr"); r.code != 125 || !strings.Contains(r.stderr, "not paused") {
		t.Errorf("resume of a running container: %s", r)
	}
	r := oci(t, root, "ps", "pr")
	if r.code != 0 || !strings.Contains(r.stdout, strconv.Itoa(s.Pid)) || !strings.Contains(r.stdout, "sleep 300") {
		t.Errorf("ps: %s", r)
	}
	mustOK(t, oci(t, root, "pause", "pr"), "pause")
	mustOK(t, oci(t, root, "delete", "--force", "pr"), "delete --force of a paused container")
	processGone(t, s.Pid)
}

// TestOCITimeNamespace: a new time namespace with linux.timeOffsets is
// what the container's process runs in (rootless too: the init makes it
// in its own user namespace).
func TestOCITimeNamespace(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 10 * 365 * 86400}}
	}, "cat", "/proc/uptime")
	r := oci(t, root, "run", "--bundle", b, "tn")
	f := strings.Fields(r.stdout)
	if r.code != 0 || len(f) != 2 {
		t.Fatalf("run: %s", r)
	}
	if up, err := strconv.ParseFloat(f[0], 64); err != nil || up < 10*365*86400 {
		t.Errorf("uptime inside %q, want 10 years on", f[0])
	}
}

// TestOCICgroupNamespace: a new cgroup namespace is rooted at the
// container's own cgroup (made after the init was placed in it).
func TestOCICgroupNamespace(t *testing.T) {
	root := lcRoot(t)
	b := lcBundle(t, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}, "cat", "/proc/self/cgroup")
	r := oci(t, root, "run", "--bundle", b, "cn")
	if r.code != 0 || !strings.Contains(r.stdout, "0::/\n") {
		t.Errorf("run: %s", r)
	}
}
