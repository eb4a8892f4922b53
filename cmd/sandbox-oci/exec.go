package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/internal/memexec"
	"sandbox/internal/userfile"
	"sandbox/oci/process"
	"sandbox/oci/state"
)

// The environment of exec's stage (nsenter.c reads the same names).
const (
	nsenterEnv = "_SANDBOX_OCI_NSENTER" // PID:START of the container's init
	syncEnv    = "_SANDBOX_OCI_SYNC"    // fd of the sync socket
	oomEnv     = "_SANDBOX_OCI_OOM"     // oom_score_adj, set by the stage
)

// execSetupTimeout bounds entering the container and executing the
// process (not the process's run).
const execSetupTimeout = 30 * time.Second

type execCmd struct {
	Process        string   `help:"JSON file of the process (a runtime-spec process); replaces the container's." placeholder:"FILE"`
	Tty            bool     `short:"t" help:"Give the process a terminal (its master goes to --console-socket)."`
	Detach         bool     `short:"d" help:"Return once the process runs."`
	PidFile        string   `name:"pid-file" help:"Write the process's pid (as the host sees it) here." placeholder:"FILE"`
	ConsoleSocket  string   `name:"console-socket" help:"Unix socket that receives the terminal's master (with -t)." placeholder:"PATH"`
	PreserveFds    int      `name:"preserve-fds" help:"Pass fds 3 to 3+N-1 on to the process." placeholder:"N"`
	Cwd            string   `help:"Working directory of the process." placeholder:"DIR"`
	Env            []string `short:"e" sep:"none" help:"Add KEY=VALUE to the process's environment." placeholder:"KEY=VALUE"`
	User           string   `short:"u" help:"UID[:GID] of the process." placeholder:"UID[:GID]"`
	Cap            []string `short:"c" sep:"none" help:"Add a capability (CAP_NAME)." placeholder:"CAP"`
	NoNewPrivs     bool     `name:"no-new-privs" help:"Set no_new_privs for the process."`
	AdditionalGids []string `name:"additional-gids" short:"g" sep:"," help:"Additional group ids." placeholder:"GID"`
	AppArmor       string   `name:"apparmor" help:"AppArmor profile of the process." placeholder:"PROFILE"`
	ProcessLabel   string   `name:"process-label" help:"SELinux label of the process (not supported: an error)." placeholder:"LABEL"`
	ID             string   `arg:"" help:"Container id."`
	Args           []string `arg:"" optional:"" passthrough:"" help:"Command and arguments (without --process)."`
}

// execMsg is what the exec command hands its process inside the container.
type execMsg struct {
	Plan    *process.Plan `json:"plan"`
	Console bool          `json:"console,omitempty"` // the console socket is the fd after the sync one
}

func (c *execCmd) Run(g *globals) error {
	if !haveNsenter {
		return errors.New("exec: this sandbox-oci was built without cgo and lacks exec's namespace stage (nsenter.c): build it with scripts/build.sh")
	}
	if c.PreserveFds < 0 || c.PreserveFds > 1024 {
		return fmt.Errorf("exec: --preserve-fds %d: not in 0..1024", c.PreserveFds)
	}
	ct, st, err := g.containerStatus(c.ID)
	if err != nil {
		return err
	}
	if st != specs.StateRunning && st != specs.StateCreated {
		return fmt.Errorf("exec: container %q is %s: a process can only be run in a created or running container", c.ID, st)
	}
	// The config as create checked and stored it: the bundle's may have
	// changed since (runc keeps its own copy too).
	spec, err := loadSpec(ct)
	if err != nil {
		return err
	}
	p, err := c.process(spec)
	if err != nil {
		return err
	}
	if p.Terminal && c.ConsoleSocket == "" {
		return errors.New("exec: a terminal (-t, process.terminal) needs --console-socket: sandbox-oci does not relay a terminal itself")
	}
	if !p.Terminal && c.ConsoleSocket != "" {
		return errors.New("exec: --console-socket is for a process with a terminal (-t)")
	}
	plan, err := process.Prepare(p, spec)
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	// Signals are caught from before the start, so that one sent as soon
	// as the process shows life is forwarded, not fatal to exec itself.
	var sigs chan os.Signal
	if !c.Detach {
		sigs = make(chan os.Signal, 16)
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	pid, err := c.start(ct, plan)
	if err != nil {
		return err
	}
	if c.PidFile != "" {
		if err := savePidFile(c.PidFile, pid); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			reap(pid) // our child (CLONE_PARENT), detached or not
			return err
		}
	}
	if c.Detach {
		return nil
	}
	os.Exit(waitForwarding(pid, sigs))
	return nil
}

// process is the process to run: --process's, or the container's own with
// the command line's changes (as runc).
func (c *execCmd) process(spec *specs.Spec) (*specs.Process, error) {
	if c.Process != "" {
		data, err := userfile.Read(c.Process, userfile.MaxConfig)
		if err != nil {
			return nil, fmt.Errorf("exec: --process %s: %w", c.Process, err)
		}
		var p specs.Process
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("exec: --process %s: %w", c.Process, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("exec: --process %s: data after the JSON object", c.Process)
		}
		return &p, nil
	}
	if len(c.Args) == 0 {
		return nil, errors.New("exec: no command given (ID COMMAND [ARG...] or --process FILE)")
	}
	if spec.Process == nil {
		return nil, errors.New("exec: the container's config has no process to start from: give --process")
	}
	p := *spec.Process
	p.Args = c.Args
	p.Terminal = c.Tty
	p.ConsoleSize = nil
	p.Env = append(append([]string(nil), p.Env...), c.Env...)
	if c.Cwd != "" {
		p.Cwd = c.Cwd
	}
	if c.User != "" {
		u, g, hasG := strings.Cut(c.User, ":")
		uid, err := strconv.ParseUint(u, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("exec: --user %q: give a numeric UID[:GID]", c.User)
		}
		p.User.UID = uint32(uid)
		if hasG {
			gid, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("exec: --user %q: give a numeric UID[:GID]", c.User)
			}
			p.User.GID = uint32(gid)
		}
	}
	for _, s := range c.AdditionalGids {
		gid, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("exec: --additional-gids %q: not a group id", s)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
	}
	if c.NoNewPrivs {
		p.NoNewPrivileges = true
	}
	if c.AppArmor != "" {
		p.ApparmorProfile = c.AppArmor
	}
	if c.ProcessLabel != "" {
		p.SelinuxLabel = c.ProcessLabel
	}
	if len(c.Cap) > 0 {
		var caps specs.LinuxCapabilities
		if p.Capabilities != nil {
			caps = *p.Capabilities
		}
		for _, name := range c.Cap {
			caps.Bounding = append(caps.Bounding, name)
			caps.Effective = append(caps.Effective, name)
			caps.Permitted = append(caps.Permitted, name)
			// Ambient needs inheritable, which --cap does not give:
			// only where the config has some (runc does the same).
			if caps.Inheritable != nil {
				caps.Ambient = append(caps.Ambient, name)
			}
		}
		p.Capabilities = &caps
	}
	return &p, nil
}

// start runs plan inside the container's namespaces and cgroup; it
// returns the process's pid once it has executed its program.
func (c *execCmd) start(ct *state.Container, plan *process.Plan) (pid int, err error) {
	self, err := memexec.Self("sandbox-oci-exec")
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	defer self.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("exec: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(sp[0]), "sync"), os.NewFile(uintptr(sp[1]), "sync-child")
	defer ours.Close()
	var extra []*os.File
	for i := 0; i < c.PreserveFds; i++ {
		fd := 3 + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			theirs.Close()
			return 0, fmt.Errorf("exec: --preserve-fds %d: fd %d is not open", c.PreserveFds, fd)
		}
		extra = append(extra, os.NewFile(uintptr(fd), "preserved"))
	}
	syncFD := 3 + len(extra)
	extra = append(extra, theirs)
	if plan.Process.Terminal {
		conn, err := net.Dial("unix", c.ConsoleSocket)
		if err != nil {
			theirs.Close()
			return 0, fmt.Errorf("exec: --console-socket: %w", err)
		}
		f, err := conn.(*net.UnixConn).File()
		conn.Close()
		if err != nil {
			theirs.Close()
			return 0, fmt.Errorf("exec: --console-socket: %w", err)
		}
		defer f.Close()
		extra = append(extra, f)
	}
	path, err := self.PathAbove(3 + len(extra))
	if err != nil {
		theirs.Close()
		return 0, fmt.Errorf("exec: %w", err)
	}
	env := []string{
		fmt.Sprintf("%s=%d:%d", nsenterEnv, ct.Pid, ct.PidStart),
		fmt.Sprintf("%s=%d", syncEnv, syncFD),
	}
	if a := plan.Process.OOMScoreAdj; a != nil {
		env = append(env, fmt.Sprintf("%s=%d", oomEnv, *a))
	}
	cmd := &exec.Cmd{
		Path: path, Args: []string{"sandbox-oci-exec"}, Env: env,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, ExtraFiles: extra,
	}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return 0, fmt.Errorf("exec: starting the namespace stage: %w", err)
	}
	child := 0
	defer func() {
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			if child > 0 {
				unix.Kill(child, unix.SIGKILL)
				reap(child)
			}
		}
	}()
	// Into the container's cgroup first, so that the process is born there.
	if ct.Cgroup != nil && ct.Cgroup.Path != "" {
		procs := filepath.Join(ct.Cgroup.Path, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			return 0, fmt.Errorf("exec: joining the container's cgroup: %w", err)
		}
	}
	conn, err := net.FileConn(ours)
	if err != nil {
		return 0, fmt.Errorf("exec: sync socket: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(execSetupTimeout))
	if _, err := conn.Write([]byte("g")); err != nil {
		return 0, fmt.Errorf("exec: starting the namespace stage: %w", err)
	}
	r := bufio.NewReader(io.LimitReader(conn, 64<<10))
	line, rerr := r.ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	switch {
	case strings.HasPrefix(line, "pid "):
		child, _ = strconv.Atoi(strings.TrimPrefix(line, "pid "))
		if child <= 0 {
			return 0, fmt.Errorf("exec: namespace stage: bad report %q", line)
		}
		// It exits once it has reported (on error the deferred kill and
		// wait; a stage that hangs is killed there, after the deadline).
		if werr := cmd.Wait(); werr != nil {
			return 0, fmt.Errorf("exec: namespace stage: %w", werr)
		}
	case strings.HasPrefix(line, "fail "):
		return 0, fmt.Errorf("exec: entering the container: %s", strings.TrimPrefix(line, "fail "))
	default:
		return 0, fmt.Errorf("exec: the namespace stage ended without a report (%v)", rerr)
	}
	msg, err := json.Marshal(execMsg{Plan: plan, Console: plan.Process.Terminal})
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	if _, err := conn.Write(msg); err != nil {
		return 0, fmt.Errorf("exec: handing the process over: %w", err)
	}
	if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
		return 0, fmt.Errorf("exec: handing the process over: %w", err)
	}
	// EOF: the process executed its program (the socket is close-on-exec);
	// a line: it could not.
	line, rerr = r.ReadString('\n')
	if rerr == io.EOF && line == "" {
		return child, nil
	}
	code, why, _ := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "err "), " ")
	if n, cerr := strconv.Atoi(code); cerr == nil && (n == 126 || n == 127) {
		return 0, &process.ExecError{Code: n, Err: fmt.Errorf("exec: %s", why)}
	}
	if why == "" {
		return 0, fmt.Errorf("exec: the process ended before executing its program (%v)", rerr)
	}
	return 0, fmt.Errorf("exec: %s", why)
}

// reap waits for pid, our child, and returns its status as a shell would.
func reap(pid int) int {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 255
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// waitForwarding waits for pid, passing it the signals exec receives
// (sigs, already notified).
func waitForwarding(pid int, sigs chan os.Signal) int {
	done := make(chan int, 1)
	go func() { done <- reap(pid) }()
	for {
		select {
		case code := <-done:
			signal.Stop(sigs)
			return code
		case s := <-sigs:
			n, ok := s.(syscall.Signal)
			if !ok || n == unix.SIGCHLD || n == unix.SIGURG || n == unix.SIGPIPE {
				continue
			}
			unix.Kill(pid, n)
		}
	}
}
