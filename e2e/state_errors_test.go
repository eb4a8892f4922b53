//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStateLeftoversSwept: a sandbox directory a killed command left half
// removed (only exec.sock, no lock) and a .rm- directory of a killed
// removal are removed by the next command.
func TestStateLeftoversSwept(t *testing.T) {
	l := newLife(t)
	wantCode(t, l.run("ps"), 0) // makes the state directory
	ghost := l.stateDir("ghost")
	half := filepath.Join(l.xdg, "sandbox", ".rm-old-1-2")
	for _, d := range []string{ghost, half} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("unix", filepath.Join(d, "exec.sock"))
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		old := time.Now().Add(-time.Minute)
		os.Chtimes(d, old, old)
	}
	if _, ok := l.ps(true)["ghost"]; ok {
		t.Errorf("ps -a lists a directory without a lock")
	}
	for _, d := range []string{ghost, half} {
		if exists(d) {
			t.Errorf("%s was not removed by the next command", d)
		}
	}
	wantCode(t, l.run("run", "--name", "ghost", "--net=none", "--", "true"), 0)
}

// TestStateDirMustBePrivate: a runtime directory others can write, or a
// state directory opened to them, is refused with one line and the fix.
func TestStateDirMustBePrivate(t *testing.T) {
	xdg := tempDir(t)
	o := opts{env: []string{"XDG_RUNTIME_DIR=" + xdg}}
	wantCode(t, runOpts(t, o, "ps"), 0)
	for _, c := range []struct {
		dir  string
		want string
	}{{xdg, "XDG_RUNTIME_DIR"}, {filepath.Join(xdg, "sandbox"), "chmod go-w"}} {
		if err := os.Chmod(c.dir, 0o777); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"ps"}, {"run", "--name", "x", "--net=none", "--", "true"}} {
			r := runOpts(t, o, args...)
			wantCode(t, r, exitSandbox)
			if !strings.Contains(r.stderr, c.dir) || !strings.Contains(r.stderr, c.want) || len(lines(r.stderr)) != 1 {
				t.Errorf("%s of mode 0777: want one line naming it and %q: %s", c.dir, c.want, r)
			}
		}
		os.Chmod(c.dir, 0o700)
	}
}

// TestStopWhileStarting: stop of a sandbox still starting (its network
// helper hangs) ends it, instead of "try again" while it goes on.
func TestStopWhileStarting(t *testing.T) {
	l := newLife(t)
	bin := tempDir(t)
	writeFile(t, filepath.Join(bin, "slirp4netns"), "#!/bin/sh\nexec sleep 60\n", 0o755)
	o := l.o
	o.env = append(o.env, "PATH="+bin+":"+os.Getenv("PATH"))
	since := bootTicks()
	p := start(t, o, "run", "--name", "slow", "--net=slirp4netns", "--", "sh", "-c", "echo up; sleep 60")
	deadline := time.Now().Add(cmdTimeout)
	for !exists(filepath.Join(l.stateDir("slow"), "state.json")) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e := l.ps(false)["slow"]; e.Status != "starting" {
		t.Fatalf("want the sandbox starting, ps says %+v", e)
	}
	began := time.Now()
	r := l.run("stop", "--time", "1s", "slow")
	wantCode(t, r, 0)
	took := time.Since(began)
	res := p.wait()
	if res.code == 0 || strings.Contains(res.stdout, "up") {
		t.Errorf("the stopped run: %s", res)
	}
	if took > 15*time.Second {
		t.Errorf("stop took %v", took)
	}
	if _, ok := l.ps(true)["slow"]; ok {
		t.Errorf("ps still lists the stopped sandbox")
	}
	// Detached: `run -d` says why it failed, and points to a log only if
	// there is one (the record of a run that never started is swept).
	p = start(t, o, "run", "-d", "--name", "slowd", "--net=slirp4netns", "--", "sh", "-c", "echo up; sleep 60")
	for i := 0; i < 500 && l.ps(false)["slowd"].Status != "starting"; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	wantCode(t, l.run("stop", "--time", "1s", "slowd"), 0)
	res = p.wait()
	wantCode(t, res, exitSandbox)
	if strings.Contains(res.stderr, "sandbox logs slowd") {
		if r := l.run("logs", "slowd"); r.code != 0 {
			t.Errorf("run -d points to a log that is not there: %s\n%s", res, r)
		}
	}
	requireNoLeftovers(t, since, false, 5*time.Second)
}

// TestErrorsSaidOnce: an error's text is not repeated by its wrapping.
func TestErrorsSaidOnce(t *testing.T) {
	cwd := tempDir(t)
	for _, c := range []struct {
		cmd, text string
		code      int
	}{{"/etc", "is a directory", 126}, {"/nonexistent-e2e", "no such file or directory", 127}} {
		r := runOpts(t, opts{dir: cwd}, "run", "--net=none", "--", c.cmd)
		wantCode(t, r, c.code)
		if n := strings.Count(r.stderr, c.text); n != 1 {
			t.Errorf("run -- %s: %q said %d times: %s", c.cmd, c.text, n, r)
		}
	}
}

// TestPublishIPv6Refused: an IPv6 host address is refused with the reason
// (no driver publishes on one), not the helper's raw error and a wrong
// "port in use" hint; a held IPv4 port says it is in use.
func TestPublishIPv6Refused(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("an IPv6 loopback listener: %v", err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for _, p := range []string{"[::1]:" + port + ":80", "::1:" + port + ":80", "[::]:" + port + ":80"} {
		r := run(t, "run", "-p", p, "--", "true")
		wantCode(t, r, exitSandbox)
		if !strings.Contains(r.stderr, "IPv6") || strings.Contains(r.stderr, "in use") || len(lines(r.stderr)) != 1 {
			t.Errorf("-p %s: want one line saying IPv6 host addresses are not supported: %s", p, r)
		}
	}
	ln4, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	port4 := strconv.Itoa(ln4.Addr().(*net.TCPAddr).Port)
	r := run(t, "run", "--net=builtin", "-p", port4+":80", "--", "true")
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "in use") {
		t.Errorf("-p %s:80 with the port held: want the in-use hint: %s", port4, r)
	}
}

// TestForkBombBounded: without --pids every user inside is bounded
// (RLIMIT_NPROC 4096), which the payload cannot raise even with every
// capability: a thread bomb stops there and the run ends.
func TestForkBombBounded(t *testing.T) {
	cwd := tempDir(t)
	r := runOpts(t, opts{dir: cwd}, "run", "--net=none", "--", "sh", "-c", "grep 'Max processes' /proc/self/limits")
	wantCode(t, r, 0)
	if f := strings.Fields(r.stdout); len(f) < 4 || f[2] != "4096" || f[3] != "4096" {
		t.Errorf("default RLIMIT_NPROC: %s", r)
	}
	r = runOpts(t, opts{dir: cwd}, "run", "--net=none", "--pids", "max", "--", "sh", "-c", "grep 'Max processes' /proc/self/limits")
	if f := strings.Fields(r.stdout); len(f) < 4 || f[2] == "4096" {
		t.Errorf("--pids max keeps the inherited limit: %s", r)
	}
	r = runOpts(t, opts{dir: cwd}, "run", "--net=none", "--cap-add", "ALL", "--seccomp=unconfined", "--", "python3", "-c",
		"import resource\ntry:\n resource.setrlimit(resource.RLIMIT_NPROC, (100000, 100000)); print('raised')\nexcept (ValueError, OSError) as e: print('refused')")
	if r.stdout != "refused\n" {
		t.Errorf("raising RLIMIT_NPROC inside with every capability: %s", r)
	}
	bomb := `import threading, time
n = 0
try:
    while n < 6000:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        n += 1
except RuntimeError:
    pass
print(n)`
	began := time.Now()
	r = runOpts(t, opts{dir: cwd, timeout: 2 * time.Minute}, "run", "--net=none", "--", "python3", "-c", bomb)
	wantCode(t, r, 0)
	n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
	if err != nil || n >= 4096 || n < 1000 {
		t.Errorf("a thread bomb started %q threads, want fewer than 4096: %s", strings.TrimSpace(r.stdout), r)
	}
	t.Logf("the bomb stopped at %d threads after %v", n, time.Since(began).Round(time.Millisecond))
}

// bombImage writes an OCI layout whose one layer is size bytes of zeros
// (gzip'd: a decompression bomb) with a correct diff_id; with badName its
// blob is stored under another digest than its own.
func bombImage(t *testing.T, p string, size int, badName bool) {
	layer := layerTar(t, []tarEntry{{name: "zeros", body: string(make([]byte, size))}})
	o := newOuter(t, p)
	o.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	blob := func(b []byte, name string) string {
		o.add("blobs/sha256/"+strings.TrimPrefix(name, "sha256:"), b)
		return name
	}
	z := gzipped(t, layer)
	name := digest(z)
	if badName {
		name = digest([]byte("another blob"))
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}}})
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2,
		"config": map[string]any{"digest": blob(cfg, digest(cfg)), "size": len(cfg)},
		"layers": []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(z, name), "size": len(z)}}})
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"digest": blob(man, digest(man)), "size": len(man), "annotations": map[string]string{"org.opencontainers.image.ref.name": "bomb"}}}})
	o.add("index.json", idx)
	o.close()
}

// TestImageBombBounded: a 64 MiB layer of zeros (~100 KiB gzip'd) unpacks
// to at most its bound (100× or 16 MiB) and is refused, with nothing left
// in the store; --max-expansion raises the bound; a blob whose content is
// not its digest is refused before anything is unpacked; and `image ls`
// removes what a killed import left.
func TestImageBombBounded(t *testing.T) {
	o, store := imageStore(t)
	dir := tempDir(t)
	bomb := filepath.Join(dir, "bomb.tar")
	bombImage(t, bomb, 64<<20, false)
	r := runOpts(t, o, "image", "import", bomb)
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "--max-expansion") || len(lines(r.stderr)) != 1 {
		t.Errorf("importing a gzip bomb: want one line naming --max-expansion: %s", r)
	}
	layers := filepath.Join(store, "layers", "sha256")
	if ents, _ := os.ReadDir(layers); len(ents) != 0 {
		t.Errorf("the refused import left %d entries in %s", len(ents), layers)
	}
	r = runOpts(t, o, "image", "import", "--max-expansion", "100000", bomb)
	wantCode(t, r, 0)
	mustRun(t, o, "image", "rm", "bomb")

	bad := filepath.Join(dir, "bad.tar")
	bombImage(t, bad, 1<<20, true)
	r = runOpts(t, o, "image", "import", bad)
	wantCode(t, r, exitSandbox)
	if !strings.Contains(r.stderr, "digest") || !strings.Contains(r.stderr, "nothing was unpacked") {
		t.Errorf("a blob under a wrong digest: %s", r)
	}

	// What a SIGKILLed import leaves: a .tmp- layer and a .tmp- record.
	tmp := filepath.Join(layers, ".tmp-0123456789ab-deadbeef")
	writeFile(t, filepath.Join(tmp, "etc", "f"), "x", 0o644)
	writeFile(t, filepath.Join(store, "images", ".tmp-123"), "{", 0o644)
	mustRun(t, o, "image", "ls")
	for _, p := range []string{tmp, filepath.Join(store, "images", ".tmp-123")} {
		if exists(p) {
			t.Errorf("image ls left %s", p)
		}
	}
}

// TestAllProcsBounded: a run lowers its own soft RLIMIT_NPROC to half of
// kernel.pid_max (never under 4096, never raised) before it makes the
// sandbox's user namespace, which takes its creator's soft limit as the
// bound of all its tasks together, whatever their uids. Before, root
// inside, switching among the mapped users (each held to 4096 alone), had
// the caller's own limit (96367 on the CI host, over its pid_max of
// 32768): 8197 tasks with two uids, the host's every pid with eight.
func TestAllProcsBounded(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &own); err != nil {
		t.Fatal(err)
	}
	want := min(own.Cur, max(pidMax/2, 4096))
	p := start(t, opts{dir: tempDir(t)}, "run", "--net=none", "--", "sh", "-c", "echo up; sleep 30")
	if !p.waitStdout("up", cmdTimeout) {
		t.Fatalf("never started: %s", p.wait())
	}
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(limits), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "Max" && f[1] == "processes" {
			if f[2] != strconv.FormatUint(want, 10) {
				t.Errorf("sandbox's soft RLIMIT_NPROC while it runs: %s, want %d (pid_max %d, the caller's %d)", f[2], want, pidMax, own.Cur)
			}
			return
		}
	}
	t.Fatalf("no Max processes in\n%s", limits)
}
