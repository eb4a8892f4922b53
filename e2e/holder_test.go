//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The holder (package holder): a run that finds none writes its maps with
// newuidmap/newgidmap and starts one; the next runs have init created in
// the holder's namespace, their maps written by init's stage.

// isHolder tells a user's holder from anything else: argv[0]
// sandbox-holder, run from sandbox-init's memfd, in this test's own user
// and pid namespaces, where no process of any sandbox ever is.
func isHolder(p procInfo) bool {
	if len(p.cmdline) == 0 || p.cmdline[0] != "sandbox-holder" {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	if err != nil || strings.TrimSuffix(exe, " (deleted)") != "/memfd:sandbox-init" {
		return false
	}
	for _, ns := range []string{"user", "pid"} {
		mine, err1 := os.Readlink("/proc/self/ns/" + ns)
		its, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.pid, ns))
		if err1 != nil || err2 != nil || mine != its {
			return false
		}
	}
	return true
}

// pathEnvs is added to the environment of every command of the tests whose
// names start with a key (see TestEscapeViaHelpers).
var pathEnvs sync.Map // name prefix -> []string

func pathEnv(t testing.TB) []string {
	var env []string
	pathEnvs.Range(func(k, v any) bool {
		if strings.HasPrefix(t.Name(), k.(string)+"/") {
			env = append(env, v.([]string)...)
		}
		return true
	})
	return env
}

// holderSetup is a private state directory for one test, so that the test
// has a holder of its own; env runs commands with it.
type holderSetup struct {
	xdg, dir string
	env      []string
}

func newHolderSetup(t *testing.T, extra ...string) holderSetup {
	t.Helper()
	requireFullMap(t)
	xdg := tempDir(t)
	h := holderSetup{xdg: xdg, dir: filepath.Join(xdg, "sandbox", ".holder"),
		env: append([]string{"XDG_RUNTIME_DIR=" + xdg, "SANDBOX_HOLDER_IDLE=2m"}, extra...)}
	t.Cleanup(func() { h.kill() })
	return h
}

// holderWay is a setup whose runs write their maps one way: "holder" (a
// holder of its own, started and answering), or "helpers" (SANDBOX_HOLDER=off).
func holderWay(t *testing.T, way string) holderSetup {
	t.Helper()
	h := newHolderSetup(t)
	if way == "holder" {
		h.mapsRun(t)
		h.waitHolder(t)
	} else {
		h.env = append(h.env, "SANDBOX_HOLDER=off")
	}
	return h
}

// pids are the holders serving this setup's directory.
func (h holderSetup) pids() []int {
	var out []int
	for _, p := range allProcs() {
		if isHolder(p) && environHas(p.pid, "SANDBOX_HOLDER_DIR="+h.dir) && p.state != 'Z' {
			out = append(out, p.pid)
		}
	}
	return out
}

func (h holderSetup) kill() {
	for _, pid := range h.pids() {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// answers tells whether a holder listens on the setup's socket.
func (h holderSetup) answers() bool {
	c, err := net.Dial("unixpacket", filepath.Join(h.dir, "holder.sock"))
	if err == nil {
		c.Close()
	}
	return err == nil
}

// waitHolder waits (bounded) until a holder answers and returns its pid.
func (h holderSetup) waitHolder(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if pids := h.pids(); len(pids) == 1 && h.answers() {
			return pids[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no holder answers in %s within 20 s (holders: %v; holder.log: %s)", h.dir, h.pids(), readOr(filepath.Join(h.dir, "holder.log")))
	return 0
}

func readOr(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// mapsRun runs `run -v --net=none` printing the maps inside; it returns
// the maps and how they were written: "holder" or "helpers".
func (h holderSetup) mapsRun(t *testing.T, flags ...string) (string, string) {
	t.Helper()
	args := append(append([]string{"run", "-v", "--net=none"}, flags...), "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
	r := mustRun(t, opts{env: h.env}, args...)
	return r.stdout, mapsVia(t, r)
}

// mapsVia is how the -v line of r says the maps were written.
func mapsVia(t *testing.T, r result) string {
	t.Helper()
	for _, l := range strings.Split(r.stderr, "\n") {
		if !strings.Contains(l, "wrote uid and gid maps") {
			continue
		}
		switch {
		case strings.Contains(l, "by init's stage in the holder's namespace"):
			return "holder"
		case strings.Contains(l, "written directly, by init's stage"):
			return "stage" // no holder: maps the caller may write itself
		case strings.Contains(l, "newuidmap/newgidmap"):
			return "helpers"
		}
		t.Fatalf("the maps line says neither: %q", l)
	}
	t.Fatalf("no maps line in -v output:\n%s", r)
	return ""
}

// wantMaps checks that out (uid_map then gid_map) is the full mapping, as
// the helpers write it.
func wantMaps(t *testing.T, out string) {
	t.Helper()
	want := ""
	for _, kind := range []string{"/etc/subuid", "/etc/subgid"} {
		own := os.Getuid()
		if kind == "/etc/subgid" {
			own = os.Getgid()
		}
		for _, l := range expectedFullMap(own, expectedRanges(kind)) {
			want += l.String() + "\n"
		}
	}
	got := ""
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			got += strings.Join(f, " ") + "\n"
		}
	}
	if got != want {
		t.Fatalf("maps inside:\n%s\nwant:\n%s", got, want)
	}
}

// TestHolderSecondRun: the first run writes its maps with the helpers and
// starts a holder; the second uses it, and the maps inside read the same;
// its report says so.
func TestHolderSecondRun(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	out, via := h.mapsRun(t)
	if via != "helpers" {
		t.Fatalf("first run: maps by %s, want helpers (no holder yet)", via)
	}
	wantMaps(t, out)
	h.waitHolder(t)
	out2, via := h.mapsRun(t)
	if via != "holder" {
		t.Fatalf("second run: maps by %s, want the holder", via)
	}
	wantMaps(t, out2)
	if out != out2 {
		t.Fatalf("maps differ: helpers\n%s\nholder\n%s", out, out2)
	}
	// setgroups reads as with newgidmap: allowed.
	r := mustRun(t, opts{env: h.env}, "run", "--net=none", "--", "cat", "/proc/self/setgroups")
	if strings.TrimSpace(r.stdout) != "allow" {
		t.Errorf("setgroups inside: %q, want allow (as with the helpers)", r.stdout)
	}
	file := filepath.Join(tempDir(t), "report.json")
	mustRun(t, opts{env: h.env}, "run", "--report", file, "--net=none", "--", "true")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Identity struct{ Via string } `json:"identity"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Identity.Via != "holder" {
		t.Fatalf("report identity.via %q (%v), want holder:\n%s", rep.Identity.Via, err, b)
	}
}

// TestHolderStartsAfterPayload: a run that finds no holder starts one for
// the next runs only once its payload runs (parent.holderDelay after, or at
// the run's end if sooner), so that the holder's start, newuidmap and
// newgidmap for its namespace among it, does not compete with the run's
// own helpers and start (beside them, a first run took ~74 ms on the
// two-core CI machine; ~50 after). A first run that goes on has its
// holder meanwhile.
func TestHolderStartsAfterPayload(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	l := &life{t: t, xdg: h.xdg, o: opts{env: h.env}}
	l.detach("first", []string{"--net=none"}, "sleep", "3600")
	holder := h.waitHolder(t) // while the first run's payload sleeps
	init := l.ps(false)["first"].InitPid
	if init <= 0 {
		t.Fatalf("ps --json gives no init pid for the running sandbox: %v", l.ps(false))
	}
	hp, ok1 := readProc(holder)
	ip, ok2 := readProc(init)
	if !ok1 || !ok2 {
		t.Fatalf("reading /proc of the holder %d (%v) and of init %d (%v)", holder, ok1, init, ok2)
	}
	// Clock ticks (USER_HZ, 100 a second): the payload starts after init,
	// and the holder holderDelay (10 ticks) after the payload at least.
	if hp.start < ip.start+5 {
		t.Fatalf("the holder (pid %d) started %d ticks after the first run's init (pid %d), want 5 or more: beside the run's start, not once its payload ran", holder, int64(hp.start)-int64(ip.start), init)
	}
}

// TestHolderSharesInit: a run that uses the holder starts init from the
// holder's sealed copy of it (no copy of its own); the run that found no
// holder made its own.
func TestHolderSharesInit(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	const shared = "init's program: the holder's sealed copy"
	r := mustRun(t, opts{env: h.env}, "run", "-v", "--net=none", "--", "true")
	if strings.Contains(r.stderr, shared) {
		t.Fatalf("the first run (no holder yet) says it used the holder's copy:\n%s", r.stderr)
	}
	h.waitHolder(t)
	r = mustRun(t, opts{env: h.env}, "run", "-v", "--net=none", "--", "sh", "-c", "echo ran")
	if !strings.Contains(r.stderr, shared) || mapsVia(t, r) != "holder" {
		t.Fatalf("the second run did not start init from the holder's copy:\n%s", r.stderr)
	}
	if strings.TrimSpace(r.stdout) != "ran" {
		t.Fatalf("the payload's output: %q", r.stdout)
	}
}

// TestHolderManyRuns: 20 runs one after another and 8 at once, all through
// the holder, all with the full maps.
func TestHolderManyRuns(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	h.mapsRun(t)
	h.waitHolder(t)
	for i := 0; i < 20; i++ {
		out, via := h.mapsRun(t)
		if via != "holder" {
			t.Fatalf("run %d: maps by %s", i, via)
		}
		wantMaps(t, out)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			r := runOpts(t, opts{env: h.env}, "run", "-v", "--net=none", "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
			if r.code != 0 {
				t.Errorf("parallel run %d: %s", i, r)
				return
			}
			if !strings.Contains(r.stderr, "by init's stage in the holder's namespace") {
				t.Errorf("parallel run %d did not use the holder:\n%s", i, r.stderr)
			}
		})
	}
	wg.Wait()
	if p := h.pids(); len(p) != 1 {
		t.Errorf("holders after the runs: %v, want one", p)
	}
}

// TestHolderKilled: a SIGKILLed holder leaves a dead socket; the next run
// writes its maps with the helpers and starts a new holder.
func TestHolderKilled(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	h.mapsRun(t)
	old := h.waitHolder(t)
	unix.Kill(old, unix.SIGKILL)
	for i := 0; i < 100 && slices.Contains(h.pids(), old); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	out, via := h.mapsRun(t)
	if via != "helpers" {
		t.Fatalf("run after the holder was killed: maps by %s, want helpers", via)
	}
	wantMaps(t, out)
	if pid := h.waitHolder(t); pid == old {
		t.Fatalf("the killed holder %d still serves", old)
	}
	if _, via := h.mapsRun(t); via != "holder" {
		t.Fatalf("run with the new holder: maps by %s", via)
	}
}

// TestHolderStaleSocket: a socket file nobody listens on is replaced.
func TestHolderStaleSocket(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(h.dir, "holder.sock")}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd) // the file stays, nobody listens
	out, via := h.mapsRun(t)
	if via != "helpers" {
		t.Fatalf("maps by %s with a stale socket, want helpers", via)
	}
	wantMaps(t, out)
	h.waitHolder(t)
	if _, via := h.mapsRun(t); via != "holder" {
		t.Fatalf("after the stale socket was replaced: maps by %s", via)
	}
}

// fakeHolder answers every client of dir/holder.sock with msg and the
// namespace ns, as a holder would, until the test ends.
func fakeHolder(t *testing.T, dir string, msg string, ns *os.File) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: filepath.Join(dir, "holder.sock"), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			c.WriteMsgUnix([]byte(msg), unix.UnixRights(int(ns.Fd())), nil)
			c.Close()
		}
	}()
}

// TestHolderNotTrusted: a socket whose namespace is not a child of ours
// owned by us (another uid's holder: here the initial namespace, root's),
// or whose maps are not what it claims, is not used: the run writes its
// maps with the helpers and is correct.
func TestHolderNotTrusted(t *testing.T) {
	t.Parallel()
	requireFullMap(t)
	identity := func(file string, own int) string {
		s := fmt.Sprintf("%d %d 1\n", own, own)
		for _, r := range expectedRanges(file) {
			s += fmt.Sprintf("%d %d %d\n", r.start, r.start, r.count)
		}
		return s
	}
	// uid_map, gid_map, no program, limits no run passes (holder/limits.go).
	claim := "ok\n" + identity("/etc/subuid", os.Getuid()) + "\x00" + identity("/etc/subgid", os.Getgid()) +
		"\x00\x00nproc=unlimited,msgqueue=unlimited,sigpending=unlimited,memlock=unlimited"
	t.Run("another owner", func(t *testing.T) {
		t.Parallel()
		h := newHolderSetup(t)
		initial, err := os.Open("/proc/self/ns/user") // the test's: the initial one, root's
		if err != nil {
			t.Fatal(err)
		}
		defer initial.Close()
		fakeHolder(t, h.dir, claim, initial)
		out, via := h.mapsRun(t)
		if via != "helpers" {
			t.Fatalf("maps by %s from a namespace of uid 0", via)
		}
		wantMaps(t, out)
	})
	t.Run("maps not as claimed", func(t *testing.T) {
		t.Parallel()
		h := newHolderSetup(t)
		// A child namespace of ours, owned by us, mapping only ourselves:
		// the fake holder claims it has the identity map of our ranges.
		pin := exec.Command("unshare", "-U", "-r", "sleep", "60")
		if err := pin.Start(); err != nil {
			t.Fatalf("unshare: %v", err)
		}
		defer func() { pin.Process.Kill(); pin.Wait() }()
		var ns *os.File
		for i := 0; i < 200; i++ {
			// Until unshare has made and mapped its namespace, the
			// process is in ours.
			if m, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pin.Process.Pid)); strings.HasPrefix(strings.Join(strings.Fields(string(m)), " "), "0 "+strconv.Itoa(os.Getuid())+" 1") {
				ns, _ = os.Open(fmt.Sprintf("/proc/%d/ns/user", pin.Process.Pid))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ns == nil {
			t.Fatal("unshare -U -r did not map its namespace")
		}
		defer ns.Close()
		fakeHolder(t, h.dir, claim, ns)
		r := mustRun(t, opts{env: h.env}, "run", "-v", "--net=none", "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
		if via := mapsVia(t, r); via != "helpers" {
			t.Fatalf("maps by %s from a namespace that lied about its maps", via)
		}
		if !strings.Contains(r.stderr, "does not have the maps it claimed") {
			t.Errorf("init's stage did not say why it refused the namespace:\n%s", r.stderr)
		}
		wantMaps(t, r.stdout)
	})
}

// holderClient asks the holder in dir for its namespace, as a client would
// (python3's socket module: recvmsg with SCM_RIGHTS), and prints the
// answer's first line and how many fds came with it.
const holderClient = `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
msg, anc, _, _ = s.recvmsg(16384, socket.CMSG_SPACE(16))
fds = sum(len(d) // 4 for l, t, d in anc if l == socket.SOL_SOCKET and t == socket.SCM_RIGHTS)
print(msg.decode().split("\n")[0], "fds=%d" % fds)
`

// TestHolderPeers: the holder gives its namespace to a process of ours
// outside any sandbox, and refuses one with no_new_privs and one inside a
// sandbox that reached its socket.
func TestHolderPeers(t *testing.T) {
	t.Parallel()
	requireOrSkip(t, findHelper("python3") && findHelper("setpriv"), "python3 and setpriv (util-linux)")
	h := newHolderSetup(t)
	h.mapsRun(t)
	h.waitHolder(t)
	sock := filepath.Join(h.dir, "holder.sock")
	out, err := exec.Command("python3", "-c", holderClient, sock).CombinedOutput()
	// The namespace and the holder's program.
	if err != nil || !strings.HasPrefix(string(out), "ok fds=2") {
		t.Fatalf("a client of ours outside any sandbox: %v: %s", err, out)
	}
	out, err = exec.Command("setpriv", "--no-new-privs", "python3", "-c", holderClient, sock).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused") || !strings.Contains(string(out), "no_new_privs") || !strings.Contains(string(out), "fds=0") {
		t.Fatalf("a client with no_new_privs: %v: %s", err, out)
	}
	// The socket reached from inside a sandbox: through a hard link in a
	// directory of its own, as no share may show the state directory.
	peek := tempDir(t)
	if err := os.Link(sock, filepath.Join(peek, "holder.sock")); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, opts{env: h.env}, "run", "--net=none", "--bind", peek+":/holder", "--", "python3", "-c", holderClient, "/holder/holder.sock")
	if !strings.Contains(r.stdout, "refused") || !strings.Contains(r.stdout, "not in the holder's user namespace") || !strings.Contains(r.stdout, "fds=0") {
		t.Fatalf("a client inside a sandbox was not refused:\n%s", r)
	}
	if _, via := h.mapsRun(t); via != "holder" {
		t.Fatalf("the holder stopped serving after refusing: maps by %s", via)
	}
}

// TestHolderNoNewPrivs: a run under no_new_privs neither uses nor starts a
// holder: as without one, it cannot use the helpers and maps only the
// caller (with its warning).
func TestHolderNoNewPrivs(t *testing.T) {
	t.Parallel()
	requireOrSkip(t, findHelper("setpriv"), "setpriv (util-linux)")
	h := newHolderSetup(t)
	h.mapsRun(t)
	h.waitHolder(t)
	r := mustRun(t, opts{env: h.env, prepare: func(c *exec.Cmd) {
		c.Args = append([]string{"setpriv", "--no-new-privs", c.Path}, c.Args[1:]...)
		c.Path, _ = exec.LookPath("setpriv")
	}}, "run", "-v", "--net=none", "--", "cat", "/proc/self/uid_map")
	if strings.Contains(r.stderr, "holder's namespace") {
		t.Fatalf("a no_new_privs run used the holder:\n%s", r.stderr)
	}
	if f := strings.Fields(r.stdout); len(f) != 3 || f[0] != "0" || f[1] != strconv.Itoa(os.Getuid()) || f[2] != "1" {
		t.Fatalf("uid_map under no_new_privs: %q, want only the caller", r.stdout)
	}
}

// TestHolderIdle: the holder exits after its idle time and removes its
// socket.
func TestHolderIdle(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t, "SANDBOX_HOLDER_IDLE=1s")
	h.mapsRun(t)
	pid := h.waitHolder(t)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && slices.Contains(h.pids(), pid) {
		time.Sleep(50 * time.Millisecond)
	}
	if slices.Contains(h.pids(), pid) {
		t.Fatalf("holder %d still runs 15 s after an idle time of 1 s", pid)
	}
	if _, err := os.Lstat(filepath.Join(h.dir, "holder.sock")); err == nil {
		t.Errorf("the idle holder left its socket")
	}
}

// TestHolderOff: SANDBOX_HOLDER=off writes the maps with the helpers, even
// with a holder running, and starts none.
func TestHolderOff(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t, "SANDBOX_HOLDER=off")
	for i := 0; i < 2; i++ {
		out, via := h.mapsRun(t)
		if via != "helpers" {
			t.Fatalf("SANDBOX_HOLDER=off, run %d: maps by %s", i, via)
		}
		wantMaps(t, out)
	}
	time.Sleep(200 * time.Millisecond)
	if p := h.pids(); len(p) > 0 || h.answers() {
		t.Fatalf("SANDBOX_HOLDER=off started a holder: %v", p)
	}
	on := newHolderSetup(t)
	on.mapsRun(t)
	on.waitHolder(t)
	if _, via := on.mapsRun(t); via != "holder" {
		t.Fatalf("maps by %s", via)
	}
	r := mustRun(t, opts{env: append(on.env, "SANDBOX_HOLDER=off")}, "run", "-v", "--net=none", "--", "true")
	if via := mapsVia(t, r); via != "helpers" {
		t.Fatalf("SANDBOX_HOLDER=off with a holder running: maps by %s", via)
	}
}

// TestHolderProcess: what the holder is: no capability in our namespace,
// no no_new_privs, its own session, and no fd but stdio on /dev/null, its
// socket, the namespace it holds, a read-only fd of its own program (which
// it shares) and the Go runtime's poller.
func TestHolderProcess(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	h.mapsRun(t)
	pid := h.waitHolder(t)
	status := readOr(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(status, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && (f[0] == "CapPrm:" || f[0] == "CapEff:" || f[0] == "CapAmb:") && strings.Trim(f[1], "0") != "" {
			t.Errorf("holder %s %s: it must have no capability in our namespace", f[0], f[1])
		}
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("holder's session %d (%v), want its own", sid, err)
	}
	if bad := holderFDsSettled(t, pid); len(bad) > 0 {
		t.Errorf("the holder keeps more than /dev/null, its socket, its namespace, its program and the runtime's poller: %v", bad)
	}
}

// holderFDsSettled is holderFDs once the holder is between clients,
// retried (bounded): while it answers one (waitHolder's own probe), it has
// that connection and the client's pidfd for a moment.
func holderFDsSettled(t *testing.T, pid int) []string {
	var bad []string
	for try := 0; try < 50; try++ {
		if bad = holderFDs(t, pid); len(bad) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return bad
}

// holderFDs lists what pid has open beyond what a holder may keep: its
// stdio on /dev/null, its socket, its namespace, its program, the Go
// runtime's poller and, once a run gave it one, a copy of the network
// helper's program for the user's runs (holder/share.go).
func holderFDs(t *testing.T, pid int) []string {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	var sockets, userns, programs, kept int
	var exe unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &exe); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		var st unix.Stat_t
		switch {
		case fd <= 2 && target == "/dev/null":
		case strings.HasPrefix(target, "/memfd:") && unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()), &st) == nil &&
			st.Dev == exe.Dev && st.Ino == exe.Ino && readOnlyFD(pid, fd):
			programs++ // its own program, shared with its clients
		case strings.HasPrefix(target, "/memfd:sandbox-netstack") && readOnlyFD(pid, fd):
			kept++
		case strings.HasPrefix(target, "socket:"):
			sockets++
		case strings.HasPrefix(target, "user:"):
			userns++
		case target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]":
		default:
			bad = append(bad, fmt.Sprintf("fd %d -> %s", fd, target))
		}
	}
	if sockets != 1 || userns != 1 || programs != 1 {
		bad = append(bad, fmt.Sprintf("%d sockets, %d namespaces and %d read-only fds of its program, want 1, 1 and 1", sockets, userns, programs))
	}
	if kept > 1 {
		bad = append(bad, fmt.Sprintf("%d copies of the network helper, want one at most", kept))
	}
	return bad
}

// readOnlyFD: pid's fd is open for reading only (its fdinfo's flags).
func readOnlyFD(pid, fd int) bool {
	for _, l := range strings.Split(readOr(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd)), "\n") {
		if v, ok := strings.CutPrefix(l, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return err == nil && flags&unix.O_ACCMODE == unix.O_RDONLY
		}
	}
	return false
}

// TestHolderSharesNetstack: the first run with the builtin network that
// finds the holder gives it its copy of the network helper's program;
// the runs after it start the helper from that copy, so that sandboxes
// running at once share one copy (a memfd's pages stay resident while a
// process runs from it: ~10 MB each before).
func TestHolderSharesNetstack(t *testing.T) {
	t.Parallel()
	requireDriver(t, "builtin")
	h := newHolderSetup(t)
	h.mapsRun(t)
	holder := h.waitHolder(t)
	const given, taken = "a copy of its own, now the holder's", "the network helper's program: the holder's sealed copy"
	r := mustRun(t, opts{env: h.env}, "run", "-v", "--net=builtin", "--", "true")
	if !strings.Contains(r.stderr, given) {
		t.Fatalf("the first builtin run did not give its copy to the holder:\n%s", r.stderr)
	}
	var kept unix.Stat_t
	found := false
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", holder))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := fmt.Sprintf("/proc/%d/fd/%s", holder, e.Name())
		if target, _ := os.Readlink(p); strings.HasPrefix(target, "/memfd:sandbox-netstack") && unix.Stat(p, &kept) == nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("the holder keeps no copy of the network helper after a run gave it one")
	}
	var runs []*proc
	for i := 0; i < 2; i++ {
		runs = append(runs, start(t, opts{env: h.env}, "run", "-v", "--net=builtin", "--", "sh", "-c", "echo up; sleep 60"))
	}
	for i, p := range runs {
		if !p.waitStdout("up", 30*time.Second) {
			t.Fatalf("run %d did not start: %s", i, p.wait())
		}
		var helpers []int
		for _, d := range descendants(p.pid()) {
			if len(d.cmdline) > 0 && d.cmdline[0] == "sandbox-netstack" {
				helpers = append(helpers, d.pid)
			}
		}
		if len(helpers) != 1 {
			t.Fatalf("run %d: network helpers %v, want one", i, helpers)
		}
		var exe unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", helpers[0]), &exe); err != nil {
			t.Fatal(err)
		}
		if exe.Dev != kept.Dev || exe.Ino != kept.Ino {
			t.Errorf("run %d: its network helper runs from a copy of its own, not the holder's", i)
		}
		if !strings.Contains(p.stderr.String(), taken) {
			t.Errorf("run %d does not say it took the holder's copy:\n%s", i, p.stderr.String())
		}
		syscall.Kill(-p.pid(), syscall.SIGTERM)
	}
	for _, p := range runs {
		p.wait()
	}
	if bad := holderFDsSettled(t, holder); len(bad) > 0 {
		t.Errorf("the holder's fds: %v", bad)
	}
}

// TestHolderFeatures: with the holder, the network drivers, exec into a
// detached sandbox and nested user namespaces work as with the helpers
// (the network helpers join a namespace nested in the holder's, where
// the holder's owner, we, keeps every capability).
func TestHolderFeatures(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	h.mapsRun(t)
	h.waitHolder(t)
	for _, net := range []string{"pasta", "slirp4netns", "builtin"} {
		r := mustRun(t, opts{env: h.env}, "run", "-v", "--net="+net, "--", "sh", "-c", "ip -o link | grep -c -v ': lo:'")
		if via := mapsVia(t, r); via != "holder" {
			t.Errorf("--net=%s: maps by %s", net, via)
		}
		if strings.TrimSpace(r.stdout) == "0" {
			t.Errorf("--net=%s: no interface but lo:\n%s", net, r)
		}
	}
	r := mustRun(t, opts{env: h.env}, "run", "-v", "--allow-nested-userns", "--net=none", "--", "unshare", "-U", "-r", "cat", "/proc/self/uid_map")
	if via := mapsVia(t, r); via != "holder" || len(strings.Fields(r.stdout)) != 3 {
		t.Errorf("--allow-nested-userns: maps by %s, nested uid_map %q", via, r.stdout)
	}
	name := "holder-" + randHex(4)
	mustRun(t, opts{env: h.env}, "run", "-d", "--name", name, "--net=none", "--", "sleep", "60")
	// Stopped, not killed: stop waits for the supervisor to end, which
	// writes the record and log in the test's directory to the last (a
	// kill raced TempDir's removal: "directory not empty").
	t.Cleanup(func() { runOpts(t, opts{env: h.env}, "stop", "--time", "1s", name) })
	r = mustRun(t, opts{env: h.env}, "exec", name, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
	wantMaps(t, r.stdout)
}

type escapeCase struct {
	name string
	f    func(*testing.T)
}

// TestEscapeViaHelpers and TestEscapeViaHolder run the escape suite's key
// cases with the maps written each way: SANDBOX_HOLDER=off, and a holder
// of the test's own started first (every run after it uses the holder).
func TestEscapeViaHelpers(t *testing.T) {
	pathEnvs.Store(t.Name(), []string{"SANDBOX_HOLDER=off"})
	for _, c := range []escapeCase{
		{"TestEscapeSetns", TestEscapeSetns}, {"TestEscapeCapabilities", TestEscapeCapabilities},
		{"TestEscapeMount", TestEscapeMount}, {"TestEscapeHostProcess", TestEscapeHostProcess},
	} {
		t.Run(c.name, c.f)
	}
}

func TestEscapeViaHolder(t *testing.T) {
	h := newHolderSetup(t)
	h.mapsRun(t)
	h.waitHolder(t)
	pathEnvs.Store(t.Name(), h.env)
	cases := []escapeCase{
		{"TestEscapeHostProcess", TestEscapeHostProcess}, {"TestEscapePtrace", TestEscapePtrace},
		{"TestEscapeSetns", TestEscapeSetns}, {"TestEscapeReadHostFile", TestEscapeReadHostFile},
		{"TestEscapeWriteReadOnlyPaths", TestEscapeWriteReadOnlyPaths}, {"TestEscapeOldRoot", TestEscapeOldRoot},
		{"TestEscapeMount", TestEscapeMount}, {"TestEscapeProcSysWrite", TestEscapeProcSysWrite},
		{"TestEscapeKernelAddresses", TestEscapeKernelAddresses}, {"TestEscapeMknod", TestEscapeMknod},
		{"TestEscapeTIOCSTI", TestEscapeTIOCSTI}, {"TestEscapeInheritedFD", TestEscapeInheritedFD},
		{"TestEscapeSetuid", TestEscapeSetuid}, {"TestEscapeKeyring", TestEscapeKeyring},
		{"TestEscapeSysVIPC", TestEscapeSysVIPC}, {"TestEscapeUnixSockets", TestEscapeUnixSockets},
		{"TestEscapeHostLoopback", TestEscapeHostLoopback}, {"TestEscapeHostname", TestEscapeHostname},
		{"TestEscapeCgroup", TestEscapeCgroup}, {"TestEscapeBindSymlinks", TestEscapeBindSymlinks},
		{"TestEscapeCapabilities", TestEscapeCapabilities}, {"TestEscapeSeccomp", TestEscapeSeccomp},
		{"TestEscapeLandlock", TestEscapeLandlock}, {"TestEscapeSandboxBinary", TestEscapeSandboxBinary},
		{"TestEscapeConfinementRace", TestEscapeConfinementRace}, {"TestEscapeInitFDs", TestEscapeInitFDs},
	}
	// Every escape test, also one added later.
	src, err := os.ReadFile(filepath.Join(moduleRoot, "e2e", "escape_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(src), "\n") {
		name, ok := strings.CutPrefix(l, "func TestEscape")
		name, _, _ = strings.Cut(name, "(")
		if ok && !slices.ContainsFunc(cases, func(c escapeCase) bool { return c.name == "TestEscape"+name }) {
			t.Errorf("TestEscape%s is not run through the holder here: add it to the list", name)
		}
	}
	for _, c := range cases {
		t.Run(c.name, c.f)
	}
	// After the (parallel) subtests, before the holder is killed.
	t.Cleanup(func() {
		if _, via := h.mapsRun(t); via != "holder" {
			t.Errorf("after the escape suite: maps by %s, want the holder", via)
		}
	})
}

// TestEarlyInit: with a holder, init is started while the run is still
// planned (its stage, namespaces and Go runtime overlap the planning of
// the root), with the full maps, and the run takes it; a run whose
// planning fails after that kills it before it exits (nothing left).
func TestEarlyInit(t *testing.T) {
	t.Parallel()
	h := newHolderSetup(t)
	mustRun(t, opts{env: h.env}, "run", "--net=none", "--", "true")
	h.waitHolder(t)
	r := mustRun(t, opts{env: h.env}, "run", "-v", "--net=none", "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
	early, planned := strings.Index(r.stderr, "starting init while the rest of the run is planned"), strings.Index(r.stderr, "planned the sandbox")
	if early < 0 || planned < early || !strings.Contains(r.stderr, ", early: while the run was planned") {
		t.Fatalf("init was not started before the planning ended, or not taken:\n%s", r.stderr)
	}
	if via := mapsVia(t, r); via != "holder" {
		t.Fatalf("maps written by %s, want holder", via)
	}
	wantMaps(t, r.stdout)

	// --ephemeral-size is checked after init has started.
	r = runOpts(t, opts{env: h.env}, "run", "-v", "--net=none", "--ephemeral-size", "1", "--", "true")
	if r.code != exitSandbox || !strings.Contains(r.stderr, "--ephemeral-size 1") {
		t.Fatalf("want exit %d for --ephemeral-size 1: %s", exitSandbox, r)
	}
	m := regexp.MustCompile(`init started early \(pid ([0-9]+)\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("init was not started early before the planning failed:\n%s", r.stderr)
	}
	// Killed and reaped before sandbox exited: no process, not even a
	// zombie waiting for a reaper.
	if _, err := os.Stat("/proc/" + m[1]); err == nil {
		t.Fatalf("init %s, started early, outlived the run that failed:\n%s", m[1], readOr("/proc/"+m[1]+"/status"))
	}
}

// userTasks counts the tasks (threads) of processes of our uid: what
// RLIMIT_NPROC counts.
func userTasks() int {
	n := 0
	for _, p := range allProcs() {
		if p.uid != os.Getuid() {
			continue
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid)); err == nil {
			n += len(ents)
		}
	}
	return n
}

// TestHolderCallerLimits: a user namespace keeps the soft process limit
// (and three others) of the process that made it, and holds every
// namespace nested in it to them. A holder started by a run under a low
// soft `ulimit -u` capped each later sandbox in its namespace at that many
// processes of the user, whatever the later caller's limit ("Cannot fork"
// in the next build, until the holder went idle). The holder raises its
// soft limits to its hard ones before it makes its namespace; one started
// under a lowered hard limit is not used by a run with a higher one (its
// maps are written by the helpers).
func TestHolderCallerLimits(t *testing.T) {
	// Not parallel: the low limit counts every task of the test user.
	const spawn = 100
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do sleep 3 & i=$((i+1)); done; wait; echo spawned`, spawn)
	prlimit, err := exec.LookPath("prlimit")
	requireOrSkip(t, err == nil, "prlimit (Debian package util-linux)")
	for _, c := range []struct{ name, limit, via string }{
		{"soft", "%d:", "holder"}, // prlimit's SOFT: sets the soft limit only
		{"hard", "%d", "helpers"}, // both
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHolderSetup(t)
			// Room for the first run, its holder and helpers, not for the
			// second run's processes.
			low := userTasks() + spawn*6/10
			nproc := "--nproc=" + fmt.Sprintf(c.limit, low)
			mustRun(t, opts{env: h.env, prepare: func(cmd *exec.Cmd) {
				cmd.Args = append([]string{prlimit, nproc, cmd.Path}, cmd.Args[1:]...)
				cmd.Path = prlimit
			}}, "run", "--net=none", "--", "true")
			h.waitHolder(t)
			r := runOpts(t, opts{env: h.env, timeout: 60 * time.Second}, "run", "-v", "--net=none", "--", "sh", "-c", script)
			if r.code != 0 || !strings.Contains(r.stdout, "spawned") || strings.Contains(r.stderr, "fork") {
				t.Fatalf("after a holder started under prlimit %s, a run with the user's own limit could not start %d processes:\n%s", nproc, spawn, r)
			}
			if via := mapsVia(t, r); via != c.via {
				t.Errorf("maps written by %s, want %s\n%s", via, c.via, r.stderr)
			}
			if c.via == "helpers" && !strings.Contains(r.stderr, "lower nproc limit") {
				t.Errorf("-v does not say why the holder was not used:\n%s", r.stderr)
			}
		})
	}
}
