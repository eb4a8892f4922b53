//go:build linux

package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPty opens a new pty pair with the given window size.
func openPty(t *testing.T, rows, cols uint16) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	requireOrSkip(t, err == nil, "a usable /dev/ptmx: "+errString(err))
	var n int
	var ioErr error
	rc, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	}); err != nil || ioErr != nil {
		master.Close()
		t.Fatalf("unlockpt/ptsname: %v %v", err, ioErr)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		t.Fatalf("opening the pty slave: %v", err)
	}
	ws := &unix.Winsize{Row: rows, Col: cols}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		t.Fatalf("TIOCSWINSZ: %v", err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave
}

// runPty runs the sandbox with the slave of a new pty as its controlling
// terminal and stdin/stdout/stderr; it returns everything read from the master.
func runPty(t *testing.T, args ...string) (string, result) {
	t.Helper()
	master, slave := openPty(t, 33, 111)
	p := start(t, opts{prepare: func(c *exec.Cmd) {
		c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}}, args...)
	slave.Close() // only the sandbox holds it now, so reads end with EIO
	var out syncBuffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	r := p.wait()
	select {
	case <-readDone:
	case <-time.After(3 * time.Second):
		// Something still holds the slave; stop reading.
		_ = master.SetReadDeadline(time.Now())
		select {
		case <-readDone:
		case <-time.After(2 * time.Second):
		}
	}
	s := strings.ReplaceAll(out.String(), "\r\n", "\n")
	r.stdout = s
	return s, r
}

func hasLine(s, want string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	t.Run("isatty", func(t *testing.T) {
		t.Parallel()
		out, r := runPty(t, sh(nil, "test -t 0 && echo tty0 || echo notty0; test -t 1 && echo tty1 || echo notty1")...)
		wantCode(t, r, 0)
		if !hasLine(out, "tty0") || !hasLine(out, "tty1") {
			t.Errorf("under a terminal stdin and stdout should be ttys inside: %q", out)
		}
	})
	t.Run("tty path", func(t *testing.T) {
		t.Parallel()
		out, r := runPty(t, sh(nil, `p=$(tty); echo "path=$p"; test -e "$p" && echo exists`)...)
		wantCode(t, r, 0)
		if !strings.Contains(out, "path=/dev/pts/") || !hasLine(out, "exists") {
			t.Errorf("`tty` inside should print an existing /dev/pts/N: %q", out)
		}
	})
	t.Run("window size", func(t *testing.T) {
		t.Parallel()
		out, r := runPty(t, "run", "--", "stty", "size")
		wantCode(t, r, 0)
		if !hasLine(out, "33 111") {
			t.Errorf("stty size inside: want \"33 111\" (the outer terminal's), got %q", out)
		}
	})
	t.Run("TIOCSTI with --tty=never", func(t *testing.T) {
		t.Parallel()
		python := ""
		for _, p := range []string{"/usr/bin/python3", "/bin/python3", "/usr/local/bin/python3"} {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				python = p
				break
			}
		}
		requireOrSkip(t, python != "", "python3 in /usr/bin, /bin or /usr/local/bin (to issue TIOCSTI)")
		script := `import fcntl, termios
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"\x01")
except OSError as e:
    print("TIOCSTI-FAILED", e.strerror)
    raise SystemExit(3)
print("TIOCSTI-INJECTED")
`
		out, r := runPty(t, "run", "--tty=never", "--", python, "-c", script)
		if r.code != 3 || !strings.Contains(out, "TIOCSTI-FAILED") {
			t.Errorf("TIOCSTI on the host terminal must fail inside (the payload must not have it as controlling tty); got exit %d: %q", r.code, out)
		}
		if !strings.Contains(out, "Operation not permitted") && !strings.Contains(out, "Input/output error") {
			t.Errorf("want EPERM (or EIO with dev.tty.legacy_tiocsti=0): %q", out)
		}
	})
}

func TestPipedStdio(t *testing.T) {
	t.Parallel()
	t.Run("50MB through cat", func(t *testing.T) {
		t.Parallel()
		data := make([]byte, 50<<20)
		rng := rand.NewChaCha8([32]byte{1, 2, 3})
		_, _ = rng.Read(data)
		want := sha256.Sum256(data)
		h := sha256.New()
		cw := &countWriter{w: h}
		r := runOpts(t, opts{stdin: bytes.NewReader(data), stdout: cw, timeout: 90 * time.Second}, "run", "--", "cat")
		wantCode(t, r, 0)
		if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
			t.Errorf("50 MB through `run -- cat`: got %d bytes with sha256 %x, want %d bytes with %x", cw.n, got, len(data), want)
		}
	})
	t.Run("not a tty", func(t *testing.T) {
		t.Parallel()
		r := mustRun(t, opts{stdin: strings.NewReader("input\n")}, sh(nil, "test -t 0 && echo tty0 || echo notty0; test -t 1 && echo tty1 || echo notty1; cat")...)
		if got := lines(r.stdout); len(got) != 3 || got[0] != "notty0" || got[1] != "notty1" || got[2] != "input" {
			t.Errorf("with pipes, stdin/stdout should not be ttys and stdin should pass: %s", r)
		}
	})
}

// TestPipedStdinToTTY: with --tty=always and input that is not a
// terminal, the input's end reaches the command as a terminal's end of
// file (before, `echo hi | sandbox run --tty=always -- cat` never ended).
func TestPipedStdinToTTY(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("eof", []string{"--net=none"}, "sleep", "3600")
	for _, tc := range []struct{ name, input string }{
		{"line", "hi\n"}, {"partial line", "hi"}, {"empty", ""},
	} {
		for _, cmd := range [][]string{{"run", "--net=none", "--tty=always"}, {"exec", "--tty=always", "eof"}} {
			t.Run(tc.name+"/"+cmd[0], func(t *testing.T) {
				t.Parallel()
				o := l.o
				o.stdin, o.timeout = strings.NewReader(tc.input), 30*time.Second
				r := runOpts(t, o, append(cmd, "--", "sh", "-c", "cat; echo END")...)
				if r.timedOut {
					t.Fatalf("%s --tty=always with piped input did not end\n%s", cmd[0], r)
				}
				wantCode(t, r, 0)
				if !strings.Contains(r.stdout, "END") || tc.input != "" && !strings.Contains(r.stdout, "hi") {
					t.Errorf("want the input and END through the terminal\n%s", r)
				}
			})
		}
	}
}

// inBackground runs the command in a process group of its own on a new
// pty's session: as `CMD &` from an interactive shell, not the terminal's
// foreground group. The pty's master is returned.
func inBackground(t *testing.T) (*os.File, func(*exec.Cmd)) {
	t.Helper()
	escRequirePython(t)
	master, slave := openPty(t, 24, 80)
	const bg = `import os, sys
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.execv(sys.argv[1], sys.argv[1:])
_, st = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))`
	return master, func(c *exec.Cmd) {
		c.Args = append([]string{escPy, "-c", bg, c.Path}, c.Args[1:]...)
		c.Path = escPy
		c.Stdin = slave
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
}

// TestBackgroundDoesNotReadTheTerminal: a command of `sandbox run` or
// `sandbox exec` started in the background of a terminal does not get the
// terminal as its stdin: in a session of its own, job control would not
// stop it when it reads, and it would take what is typed at the shell (a
// password for sudo, say). Before, it read the line typed here.
func TestBackgroundDoesNotReadTheTerminal(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("bgread", []string{"--net=none"}, "sleep", "3600")
	script := `echo ready; if read -r x; then echo "read:$x"; else echo eof; fi`
	for _, cmd := range [][]string{{"run", "--net=none"}, {"exec", "bgread"}} {
		t.Run(cmd[0], func(t *testing.T) {
			t.Parallel()
			master, bg := inBackground(t)
			o := l.o
			o.prepare = bg
			p := start(t, o, append(cmd, "--", "sh", "-c", script)...)
			if !p.waitStdout("ready", 15*time.Second) {
				t.Fatalf("the command never said it was ready\n%s", p.wait())
			}
			master.Write([]byte("typed-at-the-shell\n"))
			r := p.wait()
			wantCode(t, r, 0)
			if strings.Contains(r.stdout, "typed-at-the-shell") || !strings.Contains(r.stdout, "eof") {
				t.Errorf("%s in the background of a terminal: its command read the terminal's input\n%s", cmd[0], r)
			}
		})
	}
}

// TestBackgroundWithTerminalOutput: the same with stdout on the terminal
// too, where --tty=auto would relay a pty: started with `&`, sandbox runs
// the command with stdin /dev/null and its output on the terminal, as
// documented. Before, it set the terminal raw from the background and was
// stopped at once (SIGTTOU), the job "Stopped" until fg.
func TestBackgroundWithTerminalOutput(t *testing.T) {
	t.Parallel()
	l := newLife(t)
	l.detach("bgout", []string{"--net=none"}, "sleep", "3600")
	script := `if read -r x; then echo "read:$x"; else echo eof-seen; fi`
	for _, cmd := range [][]string{{"run", "--net=none"}, {"exec", "bgout"}} {
		t.Run(cmd[0], func(t *testing.T) {
			t.Parallel()
			master, bg := inBackground(t)
			var out syncBuffer
			go io.Copy(&out, master)
			o := l.o
			o.timeout = 20 * time.Second
			o.prepare = func(c *exec.Cmd) {
				bg(c)
				slave := c.Stdin.(*os.File) // the terminal's
				c.Stdout, c.Stderr = slave, slave
			}
			r := runOpts(t, o, append(cmd, "--", "sh", "-c", script)...)
			if r.timedOut {
				t.Fatalf("%s in the background with its output on the terminal never ended (stopped?)\n%s", cmd[0], out.String())
			}
			wantCode(t, r, 0)
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(out.String(), "eof-seen") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(out.String(), "eof-seen") {
				t.Errorf("%s: want the command's stdin at its end (/dev/null) and its output on the terminal; the terminal shows %q", cmd[0], out.String())
			}
		})
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}
