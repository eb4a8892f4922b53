package oci

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// containerID is a valid id made of the test's name.
func containerID(t *testing.T) string {
	return strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
}

// running creates and starts a container whose process sleeps, with edit
// applied to its spec; it returns the state root, the id and the
// container's host pid. Cleanup kills and deletes it.
func running(t *testing.T, edit func(s *specs.Spec, rootfs string)) (root, id string, pid int) {
	t.Helper()
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, dir)
	s := rootlessSpec(t, rootfs, "sleep", "60")
	if edit != nil {
		edit(s, rootfs)
	}
	bundle(t, dir, s)
	root, id = filepath.Join(dir, "state"), containerID(t)
	if r := oci(t, root, "create", "--bundle", dir, id); r.code != 0 {
		t.Fatalf("create: %s", r)
	}
	t.Cleanup(func() {
		oci(t, root, "kill", id, "KILL")
		oci(t, root, "delete", "--force", id)
	})
	if r := oci(t, root, "start", id); r.code != 0 {
		t.Fatalf("start: %s", r)
	}
	r := oci(t, root, "state", id)
	var st specs.State
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Pid <= 0 {
		t.Fatalf("state: %v\n%s", err, r)
	}
	return root, id, st.Pid
}

// TestOCIExecJoinsContainer: an exec'd process sees the container's
// hostname, pid namespace (PID 1 is the container's process), root.
func TestOCIExecJoinsContainer(t *testing.T) {
	root, id, _ := running(t, func(s *specs.Spec, rootfs string) {
		if err := os.WriteFile(filepath.Join(rootfs, "marker"), []byte("in-the-root\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	r := oci(t, root, "exec", id, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /marker; echo $$")
	if r.code != 0 {
		t.Fatalf("exec: %s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || lines[0] != "oci-test" || strings.TrimSpace(lines[1]) != "sleep 60" || lines[2] != "in-the-root" || lines[3] == "1" {
		t.Fatalf("exec output not the container's view:\n%s", r)
	}
	// busybox ps, inside: PID 1 is the container's process.
	r = oci(t, root, "exec", id, "ps", "-o", "pid,args")
	if r.code != 0 || !regexp.MustCompile(`(?m)^\s*1\s+sleep 60$`).MatchString(r.stdout) {
		t.Fatalf("ps in the container:\n%s", r)
	}
}

// TestOCIExecExitStatus: exec returns the process's own status; a missing
// program is 127 and the error names process.args[0].
func TestOCIExecExitStatus(t *testing.T) {
	root, id, _ := running(t, nil)
	if r := oci(t, root, "exec", id, "sh", "-c", "exit 7"); r.code != 7 {
		t.Fatalf("want status 7: %s", r)
	}
	r := oci(t, root, "exec", id, "no-such-program")
	if r.code != 127 || !strings.Contains(r.stderr, `process.args[0]: "no-such-program"`) {
		t.Fatalf("want status 127 and the program named: %s", r)
	}
}

// TestOCIExecProcessFile: --process gives user, caps and environment.
func TestOCIExecProcessFile(t *testing.T) {
	root, id, _ := running(t, nil)
	caps := []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"}
	p := specs.Process{
		Args: []string{"sh", "-c", "id -u; id -g; echo $GREETING; grep -E '^Cap(Eff|Amb|Bnd)' /proc/self/status; grep NoNewPrivs /proc/self/status"},
		Env:  []string{"PATH=/bin", "GREETING=hello"},
		Cwd:  "/",
		User: specs.User{UID: 1000, GID: 1000},
		Capabilities: &specs.LinuxCapabilities{
			Bounding: caps, Effective: caps, Permitted: caps, Inheritable: caps, Ambient: caps,
		},
		NoNewPrivileges: true,
	}
	r := oci(t, root, "exec", "--process", writeJSON(t, p), id)
	if r.code != 0 {
		t.Fatalf("exec: %s", r)
	}
	want := "1000\n1000\nhello\nCapEff:\t0000000000000420\nCapBnd:\t0000000000000420\nCapAmb:\t0000000000000420\nNoNewPrivs:\t1\n"
	if r.stdout != want {
		t.Fatalf("got %q, want %q", r.stdout, want)
	}
}

// TestOCIExecDetachPidFile: -d returns at once; the pid file names the
// process, which is in the container's namespaces and cgroup.
func TestOCIExecDetachPidFile(t *testing.T) {
	root, id, initPid := running(t, nil)
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	start := time.Now()
	r := oci(t, root, "exec", "-d", "--pid-file", pidFile, id, "sleep", "30")
	if r.code != 0 {
		t.Fatalf("exec -d: %s", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("exec -d took %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	t.Cleanup(func() { _ = killPid(pid) })
	for _, ns := range []string{"pid", "mnt", "uts", "ipc", "net", "user"} {
		a, err1 := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", ns))
		b, err2 := os.Readlink(filepath.Join("/proc", strconv.Itoa(initPid), "ns", ns))
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("%s namespace: exec'd %s (%v), container %s (%v)", ns, a, err1, b, err2)
		}
	}
	a, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	c, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(initPid), "cgroup"))
	if len(a) == 0 || string(a) != string(c) {
		t.Errorf("cgroup: exec'd %q, container %q", a, c)
	}
}

// TestOCIExecHostileProcess: a --process with an unknown capability is
// refused with one line naming the field, and nothing is started.
func TestOCIExecHostileProcess(t *testing.T) {
	root, id, _ := running(t, nil)
	before := oci(t, root, "ps", id)
	marker := "/tmp/started"
	p := specs.Process{
		Args:         []string{"touch", marker},
		Cwd:          "/",
		Capabilities: &specs.LinuxCapabilities{Effective: []string{"CAP_FOO"}},
	}
	r := oci(t, root, "exec", "--process", writeJSON(t, p), id)
	if r.code != 125 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, `process.capabilities.effective[0]: unknown capability "CAP_FOO"`) {
		t.Fatalf("want status 125 and one line naming the field: %s", r)
	}
	if r := oci(t, root, "exec", id, "test", "-e", marker); r.code == 0 {
		t.Fatal("the refused process ran")
	}
	if after := oci(t, root, "ps", id); after.stdout != before.stdout {
		t.Fatalf("processes changed:\nbefore %s\nafter %s", before, after)
	}
	// Malformed JSON and a terminal without a socket: refused too.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"bogus":1}`), 0o644)
	if r := oci(t, root, "exec", "--process", bad, id); r.code != 125 || !strings.Contains(r.stderr, "bogus") {
		t.Fatalf("unknown field: %s", r)
	}
	if r := oci(t, root, "exec", "-t", id, "sh"); r.code != 125 || !strings.Contains(r.stderr, "--console-socket") {
		t.Fatalf("-t without --console-socket: %s", r)
	}
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func killPid(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// TestOCIExecTty: with -t the process's stdio is a new pty whose master
// goes to --console-socket (runc's protocol, as conmon and containerd's
// shim receive it); the exec waits for the process and returns its status.
func TestOCIExecTty(t *testing.T) {
	root, id, _ := running(t, nil)
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan result, 1)
	go func() {
		done <- oci(t, root, "exec", "-t", "--console-socket", sock, id, "sh", "-c", "tty; test -t 0 && echo stdin-is-a-tty; exit 5")
	}()
	l.SetDeadline(time.Now().Add(cmdTimeout))
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer c.Close()
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(make([]byte, 256), oob)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v: %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v: %v", fds, err)
	}
	master := os.NewFile(uintptr(fds[0]), "pty-master")
	defer master.Close()
	master.SetReadDeadline(time.Now().Add(cmdTimeout))
	var out []byte
	for !strings.Contains(string(out), "stdin-is-a-tty") {
		b := make([]byte, 512)
		n, err := master.Read(b)
		if err != nil {
			t.Fatalf("reading the pty: %v (so far %q)", err, out)
		}
		out = append(out, b[:n]...)
	}
	if !strings.Contains(string(out), "/dev/pts/") {
		t.Errorf("tty says %q", out)
	}
	if r := <-done; r.code != 5 {
		t.Fatalf("want status 5: %s", r)
	}
}

// TestOCIExecForwardsSignals: a signal to exec (not detached) reaches the
// process, whose status exec returns.
func TestOCIExecForwardsSignals(t *testing.T) {
	root, id, _ := running(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociBin(t), "--root", root, "exec", id, "sh", "-c", "trap 'exit 9' TERM; echo ready; while :; do sleep 0.1; done")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("process said %q: %v", line, err)
	}
	if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatal("exec did not end within its timeout after SIGTERM")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 9 {
		t.Fatalf("want status 9 (the process's trap), got %v", err)
	}
}

// TestOCIExecPreserveFds: --preserve-fds N passes fds 3..3+N-1 on to the
// process; no other fd of exec's reaches it.
func TestOCIExecPreserveFds(t *testing.T) {
	root, id, _ := running(t, nil)
	f, err := os.CreateTemp(t.TempDir(), "fd3")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("through fd 3\n"); err != nil {
		t.Fatal(err)
	}
	f.Seek(0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociBin(t), "--root", root, "exec", "--preserve-fds", "1", id, "sh", "-c", "cat <&3; ls /proc/self/fd")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("exec: %v\n%s", err, out)
	}
	// ls's own fds: 0-2, 3 and the directory it reads (4).
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "through fd 3 0 1 2 3 4" {
		t.Fatalf("got %q", out)
	}
}
