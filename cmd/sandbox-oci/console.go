package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// ownConsole is the console socket of `run` in the foreground with
// process.terminal and no --console-socket: run receives the pty master
// itself and joins it to its own stdio, as runc does.
type ownConsole struct {
	dir, path string
	l         *net.UnixListener
	got       chan *os.File
}

func newOwnConsole() (*ownConsole, error) {
	dir, err := os.MkdirTemp("", "sandbox-oci-console-")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	path := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console: %w", err)
	}
	oc := &ownConsole{dir: dir, path: path, l: l, got: make(chan *os.File, 1)}
	go func() {
		_ = l.SetDeadline(time.Now().Add(syncWait))
		c, err := l.AcceptUnix()
		if err != nil {
			oc.got <- nil
			return
		}
		defer c.Close()
		oc.got <- recvFd(c)
	}()
	return oc, nil
}

// recvFd receives one fd (SCM_RIGHTS) from c, nil on any failure.
func recvFd(c *net.UnixConn) *os.File {
	_ = c.SetDeadline(time.Now().Add(syncWait))
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		if r, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, r...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil
	}
	return os.NewFile(uintptr(fds[0]), "pty-master")
}

// master is the pty master the init sent (it has, once created).
func (oc *ownConsole) master() (*os.File, error) {
	select {
	case m := <-oc.got:
		if m == nil {
			return nil, errors.New("console: no pty master came from the init")
		}
		return m, nil
	case <-time.After(5 * time.Second):
		return nil, errors.New("console: no pty master came from the init")
	}
}

func (oc *ownConsole) close() {
	oc.l.Close()
	os.RemoveAll(oc.dir)
}

// joinConsole copies between our stdio and the pty master (our terminal
// raw, its size followed) until done is closed; it returns a function
// that waits (bounded) for the container's last output and restores the
// terminal.
func joinConsole(master *os.File) (finish func()) {
	restore := func() {}
	if term.IsTerminal(0) {
		if st, err := term.MakeRaw(0); err == nil {
			restore = func() { _ = term.Restore(0, st) }
		}
		resize := func() {
			if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
				_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		go func() {
			for range winch {
				resize()
			}
		}()
	}
	go func() { _, _ = io.Copy(master, os.Stdin) }()
	out := make(chan struct{})
	go func() {
		// Ends with EIO once the container's side is closed.
		_, _ = io.Copy(os.Stdout, master)
		close(out)
	}()
	return func() {
		select {
		case <-out:
		case <-time.After(time.Second):
		}
		restore()
	}
}
