//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpperLock: a persistent --upper serves one sandbox at a time; the
// lock goes with the run that held it.
func TestUpperLock(t *testing.T) {
	t.Parallel()
	upper := filepath.Join(tempDir(t), "layer")
	first := start(t, opts{}, sh([]string{"--net=none", "--upper", upper}, "echo one > /upper-marker; echo ready; exec sleep 60")...)
	if !first.waitStdout("ready", cmdTimeout) {
		t.Fatalf("the first sandbox never became ready: %s", first.wait())
	}
	r := run(t, sh([]string{"--net=none", "--upper", upper}, "echo second-ran")...)
	wantCode(t, r, exitSandbox)
	if strings.Contains(r.stdout, "second-ran") || !strings.Contains(r.stderr, "is in use by another running sandbox") {
		t.Errorf("a second run on a busy --upper must be refused naming the reason: %s", r)
	}
	// Nor one inside it (its upper/, whose changes would show in the
	// first's root), nor one holding it. Before, both ran.
	for dir, want := range map[string]string{
		filepath.Join(upper, "upper"): "is inside " + upper + ", the --upper of another running sandbox",
		filepath.Dir(upper):           "is in use by another running sandbox",
	} {
		r := run(t, sh([]string{"--net=none", "--upper", dir}, "echo nested-ran")...)
		wantCode(t, r, exitSandbox)
		if strings.Contains(r.stdout, "nested-ran") || !strings.Contains(r.stderr, want) {
			t.Errorf("--upper %s while %s is in use: %s", dir, upper, r)
		}
	}
	if err := syscall.Kill(first.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := first.wait(); r.code != 128+15 {
		t.Errorf("the first sandbox: want 143 after SIGTERM, got %s", r)
	}
	r = run(t, sh([]string{"--net=none", "--upper", upper}, "cat /upper-marker")...)
	wantCode(t, r, 0)
	if strings.TrimSpace(r.stdout) != "one" {
		t.Errorf("once the first run ended, --upper must be usable again with its changes: %s", r)
	}
}

// TestLogsFollow: `logs -f` prints a detached sandbox's output as it comes
// and ends when the sandbox ends.
func TestLogsFollow(t *testing.T) {
	l := newLife(t)
	l.detach("follow", []string{"--net=none"}, "sh", "-c",
		`echo first; i=0; while [ ! -e /tmp/go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo second; exit 6`)
	f := start(t, l.o, "logs", "-f", "follow")
	if !f.waitStdout("first", cmdTimeout) {
		t.Fatalf("logs -f never printed the first line: %s", f.wait())
	}
	time.Sleep(500 * time.Millisecond)
	if f.exited() {
		t.Fatalf("logs -f ended while the sandbox runs: %s", f.wait())
	}
	wantCode(t, l.run("exec", "follow", "--", "touch", "/tmp/go"), 0)
	done := make(chan result, 1)
	go func() { done <- f.wait() }()
	select {
	case r := <-done:
		wantCode(t, r, 0)
		if r.stdout != "first\nsecond\n" {
			t.Errorf("logs -f: got %q, want first and second", r.stdout)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("logs -f did not end within 15s of the sandbox's end:\n%s", f.stdout.String())
	}
	if e := l.ps(true)["follow"]; e.Status != "exited" || e.ExitStatus == nil || *e.ExitStatus != 6 {
		t.Errorf("ps -a: %+v, want exited with status 6", e)
	}
}

// TestNetworkHelperDies: when the network helper ends mid-run the sandbox
// goes on without network (its command is not killed for it) and says so on
// stderr; the run's status is the command's own.
func TestNetworkHelperDies(t *testing.T) {
	for _, d := range netDrivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			requireDriver(t, d)
			p := start(t, opts{}, sh([]string{"--net=" + d}, `echo ready; i=0; while [ ! -e /tmp/x ] && [ $i -lt 40 ]; do sleep 0.1; i=$((i+1)); done; echo still-running; exit 5`)...)
			if !p.waitStdout("ready", cmdTimeout) {
				t.Fatalf("the sandbox never became ready: %s", p.wait())
			}
			// The helper is the child of sandbox that has no children
			// (init has the payload).
			var helper []procInfo
			all := descendants(p.pid())
			for _, q := range all {
				if q.ppid != p.pid() {
					continue
				}
				leaf := true
				for _, c := range all {
					if c.ppid == q.pid {
						leaf = false
					}
				}
				if leaf {
					helper = append(helper, q)
				}
			}
			if len(helper) != 1 {
				t.Fatalf("want one network helper among sandbox's children, found %v in %v", helper, all)
			}
			if err := syscall.Kill(helper[0].pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			r := p.wait()
			if r.code != 5 || !strings.Contains(r.stdout, "still-running") {
				t.Errorf("the command must go on when the network helper dies (exit 5): %s", r)
			}
			if !strings.Contains(r.stderr, "network helper") || !strings.Contains(r.stderr, "lost its network") {
				t.Errorf("the run must say that the network helper ended: %s", r)
			}
		})
	}
}

// TestSharedDirsOthersCanChangeWarn: a --upper or --rootfs that another
// user could change (here below a directory writable by all, not sticky)
// runs with one warning naming it: what they put there would run in the
// sandbox. Before, nothing was said.
func TestSharedDirsOthersCanChangeWarn(t *testing.T) {
	t.Parallel()
	open := filepath.Join(tempDir(t), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	r := mustRun(t, opts{}, "run", "--net=none", "--upper", filepath.Join(open, "layer"), "--", "true")
	if !strings.Contains(r.stderr, "--upper "+filepath.Join(open, "layer")+": "+open+" is writable by others (mode 0777, not sticky): another user could change what runs in the sandbox") {
		t.Errorf("--upper below a directory writable by all: %s", r)
	}
	rootfs := makeRootfs(t, "open-"+randHex(8))
	r = mustRun(t, opts{}, "run", "--net=none", "--rootfs", rootfs, "--", "/bin/busybox", "true")
	if strings.Contains(r.stderr, "another user could change") {
		t.Errorf("a --rootfs of the caller's own: %s", r)
	}
	if err := os.Chmod(rootfs, 0o757); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, opts{}, "run", "--net=none", "--rootfs", rootfs, "--", "/bin/busybox", "true")
	if !strings.Contains(r.stderr, "--rootfs "+rootfs+": "+rootfs+" is writable by others") {
		t.Errorf("a --rootfs writable by all: %s", r)
	}
}
