// Package ttyrelay relays a sandbox's pty to the caller's terminal (raw
// mode, window size, restore), for `sandbox run` and `sandbox exec`.
package ttyrelay

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Relay copies between the caller's terminal and the pty master made
// inside the sandbox. The payload never holds the caller's terminal, so it
// cannot inject input into it (TIOCSTI) or change its settings.
type Relay struct {
	master *os.File
	state  *term.State
	out    sync.WaitGroup
	once   sync.Once
	hangup sync.Once
}

func Start(fd int) (*Relay, error) {
	// Non-blocking, so that the Go runtime polls it and hangUp's Close
	// ends a read that waits on it (a blocking file's close waits for it).
	unix.SetNonblock(fd, true)
	r := &Relay{master: os.NewFile(uintptr(fd), "pty-master")}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		// Raw: every key, Ctrl-C included, goes to the sandbox's pty, whose
		// own line discipline turns it into signals for the payload.
		st, err := term.MakeRaw(int(os.Stdin.Fd()))
		if err != nil {
			r.master.Close()
			return nil, err
		}
		r.state = st
		r.Resize()
	}
	go func() {
		in := &lastByte{r: os.Stdin}
		rerr, werr := relay(r.master, in)
		switch {
		case werr != nil:
			// The master is closed: the sandbox is gone.
		case r.state != nil:
			// The caller's terminal hung up (a closed window: end of
			// file, or EIO): so does the sandbox's.
			r.hangUp()
		case rerr == nil:
			// Input that is not a terminal (--tty=always) ended: say so as
			// a terminal does, with its end-of-file character (^D, the
			// default VEOF), twice after a partial line, which the first
			// only ends. Without it the payload waited forever.
			eof := []byte{veof}
			if in.n > 0 && in.last != '\n' {
				eof = append(eof, veof)
			}
			r.master.Write(eof)
		}
	}()
	r.out.Add(1)
	go func() {
		defer r.out.Done()
		// A read error is EIO once every slave fd is closed: the sandbox
		// is gone. A write error is the caller's terminal (or pipe) gone:
		// the sandbox's terminal hangs up too, so that its writes fail
		// (EIO) rather than block for ever once nobody reads them, and a
		// command that ignores SIGHUP finishes, as under nohup.
		if _, werr := relay(os.Stdout, r.master); werr != nil {
			r.hangUp()
		}
	}()
	return r, nil
}

// relay copies from src to dst until either fails: the read error (nil at
// end of file) or the write error.
func relay(dst io.Writer, src io.Reader) (rerr, werr error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr = dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// hangUp closes the pty master: on the sandbox's side of the terminal
// reads then end and writes fail (EIO), and its session gets SIGHUP, as
// when a terminal hangs up.
func (r *Relay) hangUp() { r.hangup.Do(func() { r.master.Close() }) }

// veof is a terminal's end-of-file character, ^D (VEOF's default).
const veof = 4

// lastByte is a reader that remembers how much it read and its last byte.
type lastByte struct {
	r    io.Reader
	n    int64
	last byte
}

func (l *lastByte) Read(p []byte) (int, error) {
	k, err := l.r.Read(p)
	if k > 0 {
		l.n += int64(k)
		l.last = p[k-1]
	}
	return k, err
}

// Resize copies the caller's window size to the pty; the kernel then sends
// SIGWINCH to the payload's foreground process group.
func (r *Relay) Resize() {
	ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	// Through the raw conn: Fd() would make the master blocking again.
	if rc, err := r.master.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
	}
}

// finish drains what the payload wrote, then releases the terminal.
func (r *Relay) Finish() {
	done := make(chan struct{})
	go func() { r.out.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	r.Restore()
}

func (r *Relay) Restore() {
	r.once.Do(func() {
		if r.state != nil {
			term.Restore(int(os.Stdin.Fd()), r.state)
		}
		r.hangUp()
	})
}

// Background says whether f is the caller's controlling terminal and the
// caller is not in its foreground process group: started with `&` from an
// interactive shell. Job control stops such a process when it reads the
// terminal; a sandbox's command, in a session of its own, would not be
// stopped, and would take what is typed at the shell (a password for
// sudo, say), so it must not get the terminal as its stdin.
func Background(f *os.File) bool {
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp != unix.Getpgrp()
}

// Want says whether a run or exec with --tty=mode relays a pty: always;
// never; auto when stdin and stdout are terminals and the caller is in
// the foreground of stdin's (started with `&`, it gets /dev/null as stdin
// instead: setting the terminal raw would stop it at once, with SIGTTOU).
func Want(mode string) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	return term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())) && !Background(os.Stdin)
}
