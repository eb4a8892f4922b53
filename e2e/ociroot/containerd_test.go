//go:build ociroot

package ociroot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	ctrTimeout = 60 * time.Second
	ctrImage   = "sandbox.test/busybox:latest"
	ctrNS      = "sandbox-oci-test"
)

// containerd is a containerd of the test's own: config, root, state and
// sockets in a temporary directory, no CRI plugin.
type containerd struct {
	t       *testing.T
	dir     string
	addr    string
	rt      string // the OCI runtime the runc shim calls (BinaryName)
	rtRoot  string // its --root (ctr --runc-root)
	ctrPath string
}

func startContainerd(t *testing.T, rt string) *containerd {
	t.Helper()
	requireRoot(t)
	bin := requireCommand(t, "containerd", "containerd")
	ctrPath := requireCommand(t, "ctr", "containerd")
	requireCommand(t, "containerd-shim-runc-v2", "containerd")
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "ctrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountBelow(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	c := &containerd{t: t, dir: dir, addr: filepath.Join(dir, "c.sock"), rt: rt,
		rtRoot: filepath.Join(dir, "rt"), ctrPath: ctrPath}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.addr, c.addr+".ttrpc",
		filepath.Join(dir, "debug.sock"), filepath.Join(dir, "opt"))
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", confPath, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			if data, err := os.ReadFile(logPath); err == nil {
				t.Logf("containerd log (tail):\n%s", tail(string(data), 40))
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := run(t, ctrTimeout, ctrPath, "--address", c.addr, "version")
		if r.code == 0 {
			break
		}
		select {
		case <-exited:
			data, _ := os.ReadFile(logPath)
			t.Fatalf("containerd exited at start:\n%s", tail(string(data), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer within 30s: %s", r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c
}

// ctr runs ctr against this containerd, in the test's namespace.
func (c *containerd) ctr(args ...string) result {
	c.t.Helper()
	return run(c.t, ctrTimeout, c.ctrPath, append([]string{"--address", c.addr, "--namespace", ctrNS}, args...)...)
}

// runArgs are the `ctr run` flags that select the runtime under test.
// ctr asks for cpu shares 1024 unless told otherwise; where cgroup v2 has
// no cpu controller (a hybrid host: v1 holds it) sandbox-oci, cgroup v2
// only, refuses that as root rather than run without it (TestContainerd
// /cpu-shares checks the refusal), so there the runs ask for none.
func (c *containerd) runArgs() []string {
	a := []string{"--snapshotter", "native", "--runc-binary", c.rt, "--runc-root", c.rtRoot, "--fifo-dir", c.fifoDir()}
	if !v2Controller(c.t, "cpu") {
		a = append(a, "--cpu-shares", "0")
	}
	return a
}

// fifoDir holds ctr's IO FIFOs (not /run/containerd/fifo).
func (c *containerd) fifoDir() string { return filepath.Join(c.dir, "fifo") }

// v2Controller tells whether the cgroup v2 root has controller name.
func v2Controller(t testing.TB, name string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER
		f := strings.Fields(l)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && len(f) > 4 && f[3] == "/" {
				ctl, err := os.ReadFile(filepath.Join(f[4], "cgroup.controllers"))
				if err == nil && slices.Contains(strings.Fields(string(ctl)), name) {
					return true
				}
			}
		}
	}
	return false
}

// forget kills and removes container id (task and record), for t.Cleanup.
func (c *containerd) forget(id string) {
	c.t.Cleanup(func() {
		c.ctr("task", "kill", "--signal", "SIGKILL", id)
		c.waitStopped(id, 10*time.Second)
		c.ctr("task", "delete", "--force", id)
		c.ctr("container", "delete", id)
	})
}

// taskStatus is the STATUS column of `ctr task ls` for id ("" when no task).
func (c *containerd) taskStatus(id string) string {
	c.t.Helper()
	r := c.ctr("task", "ls")
	for _, l := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

func (c *containerd) waitStopped(id string, d time.Duration) bool {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if s := c.taskStatus(id); s == "STOPPED" || s == "" {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// TestContainerd drives the runtime through containerd's runc v2 shim
// (BinaryName = the runtime, set by ctr --runc-binary): run with exit
// status and output, a detached task with exec, kill, delete and a second
// start of the same container, and a run with a terminal.
func TestContainerd(t *testing.T) {
	rt := runtimePath(t)
	c := startContainerd(t, rt)

	tarPath := filepath.Join(c.dir, "busybox.tar")
	busyboxImage(t, tarPath, ctrImage)
	if r := c.ctr("image", "import", "--snapshotter", "native", tarPath); r.code != 0 {
		t.Fatalf("ctr image import: %+v", r)
	}
	t.Cleanup(func() { c.ctr("image", "rm", ctrImage) })

	t.Run("run", func(t *testing.T) {
		c.forget("c-run")
		r := c.ctr(append(append([]string{"run", "--rm"}, c.runArgs()...),
			ctrImage, "c-run", "sh", "-c", "echo hello from $(id -u); exit 7")...)
		if r.code != 7 || !strings.Contains(r.stdout, "hello from 0") {
			t.Fatalf("ctr run: want exit 7 and %q, got %+v", "hello from 0", r)
		}
		c.forget("c-run0")
		r = c.ctr(append(append([]string{"run", "--rm"}, c.runArgs()...), ctrImage, "c-run0", "cat", "/etc/group")...)
		if r.code != 0 || !strings.Contains(r.stdout, "nogroup:x:65534:") {
			t.Fatalf("ctr run cat: want exit 0 and the image's /etc/group, got %+v", r)
		}
	})

	t.Run("detached", func(t *testing.T) {
		const id = "c-detached"
		c.forget(id)
		r := c.ctr(append(append([]string{"run", "-d"}, c.runArgs()...), ctrImage, id,
			// pid 1 ignores signals it has no handler for: trap TERM.
			"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done")...)
		if r.code != 0 {
			t.Fatalf("ctr run -d: %+v", r)
		}
		if s := c.taskStatus(id); s != "RUNNING" {
			t.Fatalf("task status %q, want RUNNING", s)
		}
		// The shim called the runtime with --root (ctr --runc-root): its record is there.
		if _, err := os.Stat(filepath.Join(c.rtRoot, ctrNS, id)); err != nil {
			t.Errorf("no record of the container under the runtime's --root: %v", err)
		}
		r = c.ctr("task", "exec", "--fifo-dir", c.fifoDir(), "--exec-id", "x1", id, "sh", "-c", "echo exec in $(hostname -s 2>/dev/null || echo box); ls /proc/1/exe >/dev/null; exit 3")
		if r.code != 3 || !strings.Contains(r.stdout, "exec in") {
			t.Fatalf("ctr task exec: want exit 3 and output, got %+v", r)
		}
		r = c.ctr("task", "ps", id)
		if r.code != 0 || len(strings.Split(strings.TrimSpace(r.stdout), "\n")) < 2 {
			t.Fatalf("ctr task ps: %+v", r)
		}
		if r = c.ctr("task", "kill", "--signal", "SIGTERM", id); r.code != 0 {
			t.Fatalf("ctr task kill: %+v", r)
		}
		if !c.waitStopped(id, 20*time.Second) {
			t.Fatalf("task still %s 20s after SIGTERM", c.taskStatus(id))
		}
		if r = c.ctr("task", "delete", id); r.code != 0 {
			t.Fatalf("ctr task delete: %+v", r)
		}
		// A new task of the same container: the container record keeps
		// the runtime options, so the shim calls the same binary.
		if r = c.ctr("task", "start", "--fifo-dir", c.fifoDir(), "-d", id); r.code != 0 {
			t.Fatalf("ctr task start -d: %+v", r)
		}
		if s := c.taskStatus(id); s != "RUNNING" {
			t.Fatalf("task status %q after task start -d, want RUNNING", s)
		}
		if r = c.ctr("task", "kill", "--signal", "SIGKILL", id); r.code != 0 {
			t.Fatalf("ctr task kill: %+v", r)
		}
		if !c.waitStopped(id, 20*time.Second) {
			t.Fatalf("task still %s 20s after SIGKILL", c.taskStatus(id))
		}
		if r = c.ctr("task", "delete", id); r.code != 0 {
			t.Fatalf("ctr task delete: %+v", r)
		}
		if r = c.ctr("container", "delete", id); r.code != 0 {
			t.Fatalf("ctr container delete: %+v", r)
		}
		if r = c.ctr("container", "ls", "-q"); strings.Contains(r.stdout, id) {
			t.Fatalf("container still listed after delete: %q", r.stdout)
		}
		if _, err := os.Stat(filepath.Join(c.rtRoot, ctrNS, id)); !os.IsNotExist(err) {
			t.Errorf("the runtime's record of %s is still there after delete (stat: %v)", id, err)
		}
	})

	t.Run("cpu-shares", func(t *testing.T) {
		// ctr's default cpu shares (1024): honoured, or, where the runtime
		// cannot (sandbox-oci as root on a hybrid host), refused with the
		// field named and nothing left behind.
		const id = "c-shares"
		c.forget(id)
		args := []string{"run", "--rm", "--snapshotter", "native", "--runc-binary", c.rt, "--runc-root", c.rtRoot,
			"--fifo-dir", c.fifoDir(), ctrImage, id, "true"}
		r := c.ctr(args...)
		if r.code == 0 {
			return
		}
		if v2Controller(t, "cpu") {
			t.Fatalf("ctr run with cpu shares on a host whose cgroup v2 has the cpu controller: %+v", r)
		}
		if !strings.Contains(r.stderr, "linux.resources.cpu") {
			t.Fatalf("ctr run with cpu shares on a hybrid host: want an error naming linux.resources.cpu, got %+v", r)
		}
		t.Logf("refused here (hybrid host): %s", strings.TrimSpace(r.stderr))
		if r = c.ctr("task", "ls", "-q"); strings.Contains(r.stdout, id) {
			t.Errorf("a task %s is left after the refusal: %q", id, r.stdout)
		}
		if ents, _ := os.ReadDir(filepath.Join(c.rtRoot, ctrNS)); len(ents) != 0 {
			t.Errorf("the runtime left records after the refusal: %v", ents)
		}
	})

	t.Run("tty", func(t *testing.T) {
		script := requireCommand(t, "script", "bsdutils")
		c.forget("c-tty")
		argv := append([]string{c.ctrPath, "--address", c.addr, "--namespace", ctrNS, "run", "--rm", "-t"}, c.runArgs()...)
		argv = append(argv, ctrImage, "c-tty", "sh", "-c", "test -t 0 && test -t 1 && echo tty-yes; exit 5")
		// script gives ctr a terminal of its own (ctr -t needs one on stdin).
		r := run(t, ctrTimeout, script, "-qefc", shellQuote(argv), "/dev/null")
		if r.code != 5 || !strings.Contains(r.stdout, "tty-yes") {
			t.Fatalf("ctr run -t: want exit 5 and tty-yes, got %+v", r)
		}
	})
}

// shellQuote joins argv into one sh command line.
func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// unmountBelow lazily unmounts what a failed run left mounted below dir
// (deepest first), so that removing dir never crosses into a mount.
func unmountBelow(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var below []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			below = append(below, f[4])
		}
	}
	for i := len(below) - 1; i >= 0; i-- {
		if err := unix.Unmount(below[i], unix.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", below[i], err)
		}
	}
}
