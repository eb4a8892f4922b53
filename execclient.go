package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"sandbox/internal/proto"

	"golang.org/x/sys/unix"
)

// ExecOptions are the flags of `sandbox exec`.
type ExecOptions struct {
	Name  string
	Args  []string
	Env   []string // KEY=VALUE, or KEY to copy it from the caller
	Chdir string   // "" = the sandbox's working directory
	TTY   string   // auto, always, never
}

// Exec runs a command in the running sandbox o.Name: its init starts it
// beside the payload, so it has every namespace, the root, the cgroup and
// the confinement of the payload. Signals the caller receives are passed
// on; the result is the command's exit status (128+N for signal N).
func Exec(o ExecOptions) (int, error) {
	if len(o.Args) == 0 {
		return StatusError, usagef("no command given (usage: sandbox exec NAME -- CMD [ARG...])")
	}
	switch o.TTY {
	case "", "auto", "always", "never":
	default:
		return StatusError, usagef("--tty=%s: use auto, always or never", o.TTY)
	}
	req := execRequest{Args: o.Args, Chdir: o.Chdir}
	for _, kv := range o.Env {
		k, _, ok := strings.Cut(kv, "=")
		if k == "" || strings.ContainsRune(kv, 0) {
			return StatusError, usagef("--env %q: expected KEY=VALUE or KEY", kv)
		}
		if !ok {
			v, present := os.LookupEnv(k)
			if !present {
				continue
			}
			kv = k + "=" + v
		}
		req.Env = append(req.Env, kv)
	}
	e, err := lookupRunning(o.Name)
	if err != nil {
		return StatusError, err
	}
	fd, err := e.Dial()
	if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
		return StatusError, usagef("sandbox %s is ending: it no longer accepts commands", o.Name)
	}
	if err != nil {
		return StatusError, fmt.Errorf("connecting to sandbox %s: %w", o.Name, err)
	}
	conn := proto.FromFD(fd)
	defer conn.Close()
	req.TTY = wantTTY(o.TTY)
	// Proof that we are not inside a sandbox (see serveExec).
	userNS, err := os.Open("/proc/self/ns/user")
	if err != nil {
		return StatusError, fmt.Errorf("opening our user namespace: %w", err)
	}
	defer userNS.Close()
	fds := []int{int(userNS.Fd())}
	if req.TTY {
		if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
			req.Rows, req.Cols = ws.Row, ws.Col
		}
	} else {
		fds = append(fds, 0, 1, 2)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	if err := conn.Send(proto.KindExec, req, fds...); err != nil {
		return StatusError, fmt.Errorf("sandbox %s: %w", o.Name, err)
	}
	msgs := make(chan message, 4)
	go receive(conn, msgs)
	var relay *ttyRelay
	defer func() {
		if relay != nil {
			relay.restore()
		}
	}()
	for {
		select {
		case sig := <-sigs:
			if relay != nil && sig == syscall.SIGWINCH {
				relay.resize()
				continue
			}
			conn.Send(proto.KindSignal, execSignal{Signal: int(sig.(syscall.Signal))})
		case m, ok := <-msgs:
			if !ok {
				if relay != nil {
					relay.finish()
				}
				return StatusSignalStart + int(unix.SIGKILL),
					fmt.Errorf("sandbox %s ended while the command ran (it was killed with the sandbox)", o.Name)
			}
			switch m.env.Kind {
			case proto.KindPTY:
				if len(m.fds) != 1 || relay != nil {
					closeFDs(m.fds)
					continue
				}
				if relay, err = startRelay(m.fds[0]); err != nil {
					return StatusError, fmt.Errorf("terminal relay: %w", err)
				}
			case proto.KindExit:
				var ex childExit
				if err := m.env.Decode(&ex); err != nil {
					return StatusError, err
				}
				if relay != nil {
					relay.finish()
				}
				return exited{exit: ex}.code(), nil
			case proto.KindError:
				var ce childError
				if err := m.env.Decode(&ce); err != nil {
					return StatusError, err
				}
				if ce.Status == 0 {
					ce.Status = StatusError
				}
				return ce.Status, &childFailure{ce}
			default:
				closeFDs(m.fds)
			}
		}
	}
}
