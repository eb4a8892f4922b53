package control

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"sandbox/internal/callersig"
	_ "sandbox/internal/execstart" // exec's JSON warmed during initialisation
	"sandbox/internal/proto"

	"sandbox/internal/ttyrelay"
	"sandbox/internal/wire"
	"sandbox/journal"

	"golang.org/x/sys/unix"
)

// startGrace is how long a signal that comes before the command's
// Started waits for it (see Exec).
const startGrace = time.Second

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
// on (and stay caught after: the process is to exit with Exec's result);
// the result is the command's exit status (128+N for signal N).
func Exec(o ExecOptions) (int, error) {
	if len(o.Args) == 0 {
		return wire.StatusError, journal.Usagef("no command given (usage: sandbox exec NAME -- CMD [ARG...])")
	}
	switch o.TTY {
	case "", "auto", "always", "never":
	default:
		return wire.StatusError, journal.Usagef("--tty=%s: use auto, always or never", o.TTY)
	}
	if o.Chdir != "" && !path.IsAbs(o.Chdir) {
		// As run's --chdir: relative to what would be a guess.
		return wire.StatusError, journal.Usagef("--chdir %s: the path inside the sandbox must be absolute", o.Chdir)
	}
	req := wire.ExecRequest{Args: o.Args, Chdir: o.Chdir}
	for _, kv := range o.Env {
		k, _, ok := strings.Cut(kv, "=")
		if k == "" || strings.ContainsRune(kv, 0) {
			return wire.StatusError, journal.Usagef("--env %q: expected KEY=VALUE or KEY", kv)
		}
		if wire.BadEnvName(k) {
			return wire.StatusError, journal.Usagef("--env %q: a variable's name cannot hold a control character (a newline would read as a second variable)", kv)
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
	// Signals are caught (to be passed on) from before the request is
	// sent. Never stopped: the caller exits with Exec's status.
	sigs := make(chan os.Signal, 16)
	callersig.Notify(sigs, callersig.ForwardedByCaller()...)
	tty := ttyrelay.Want(o.TTY)
	if !tty {
		// Ctrl-Z stops the command's group with us (see run).
		callersig.Notify(sigs, callersig.JobControl...)
	}
	e, err := lookupRunning(o.Name)
	if err != nil {
		return wire.StatusError, err
	}
	fd, err := e.Dial()
	if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
		return wire.StatusError, journal.Usagef("sandbox %s is ending: it no longer accepts commands", o.Name)
	}
	if err != nil {
		return wire.StatusError, fmt.Errorf("connecting to sandbox %s: %w", o.Name, err)
	}
	conn := proto.FromFD(fd)
	defer conn.Close()
	req.TTY = tty
	// Proof that we are not inside a sandbox (see serveExec).
	userNS, err := os.Open("/proc/self/ns/user")
	if err != nil {
		return wire.StatusError, fmt.Errorf("opening our user namespace: %w", err)
	}
	defer userNS.Close()
	fds := []int{int(userNS.Fd())}
	if req.TTY {
		if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
			req.Rows, req.Cols = ws.Row, ws.Col
		}
	} else if ttyrelay.Background(os.Stdin) {
		// In the background of a terminal: its input is the shell's.
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return wire.StatusError, fmt.Errorf("opening /dev/null: %w", err)
		}
		defer devnull.Close()
		fds = append(fds, int(devnull.Fd()), 1, 2)
	} else {
		fds = append(fds, 0, 1, 2)
	}
	if err := conn.Send(proto.KindExec, req, fds...); err != nil {
		return wire.StatusError, fmt.Errorf("sandbox %s: %w", o.Name, err)
	}
	msgs := make(chan wire.Message, 4)
	go wire.Receive(conn, &wire.FromExecServer, msgs)
	var relay *ttyrelay.Relay
	defer func() {
		if relay != nil {
			relay.Restore()
		}
	}()
	started := false
	// A signal before the command started waits for it at most
	// startGrace: the command may run already, its Started still on the
	// way (it is passed on then); a sandbox that does not answer (its
	// init stopped) must not hold us, so then, or at a second signal, we
	// end as the signal would (init ends a command whose client has gone).
	var early syscall.Signal
	var giveUp <-chan time.Time
	interrupted := func(sig syscall.Signal) (int, error) {
		return wire.StatusSignalStart + int(sig),
			fmt.Errorf("sandbox %s: interrupted (%v) before the command started", o.Name, sig)
	}
	for {
		select {
		case <-giveUp:
			return interrupted(early)
		case sig := <-sigs:
			if relay != nil && sig == syscall.SIGWINCH {
				relay.Resize()
				continue
			}
			if !started && sig != syscall.SIGWINCH && sig != syscall.SIGTSTP && sig != syscall.SIGCONT {
				if early != 0 {
					return interrupted(sig.(syscall.Signal))
				}
				early, giveUp = sig.(syscall.Signal), time.After(startGrace)
				continue
			}
			conn.Send(proto.KindSignal, wire.Signal{Signal: int(sig.(syscall.Signal))})
			if sig == syscall.SIGTSTP {
				unix.Kill(os.Getpid(), unix.SIGSTOP) // as the rest of the job did
			}
		case m, ok := <-msgs:
			if !ok {
				if relay != nil {
					relay.Finish()
				}
				return wire.StatusSignalStart + int(unix.SIGKILL),
					fmt.Errorf("sandbox %s ended while the command ran (it was killed with the sandbox)", o.Name)
			}
			if m.Err != nil {
				return wire.StatusError, fmt.Errorf("sandbox %s: %w", o.Name, m.Err)
			}
			switch m.Env.Kind {
			case proto.KindPTY:
				if len(m.Fds) != 1 || relay != nil {
					proto.CloseFDs(m.Fds)
					continue
				}
				if relay, err = ttyrelay.Start(m.Fds[0]); err != nil {
					return wire.StatusError, fmt.Errorf("terminal relay: %w", err)
				}
			case proto.KindStarted:
				started = true
				if early != 0 {
					conn.Send(proto.KindSignal, wire.Signal{Signal: int(early)})
					early, giveUp = 0, nil
				}
			case proto.KindExit:
				var ex wire.ChildExit
				if err := m.Env.Decode(&ex); err != nil {
					return wire.StatusError, err
				}
				if relay != nil {
					relay.Finish()
				}
				return ex.Status(), nil
			case proto.KindError:
				var ce wire.ChildError
				if err := m.Env.Decode(&ce); err != nil {
					return wire.StatusError, err
				}
				if ce.Status == 0 {
					ce.Status = wire.StatusError
				}
				return ce.Status, &wire.ChildFailure{E: ce}
			default:
				proto.CloseFDs(m.Fds)
			}
		}
	}
}
