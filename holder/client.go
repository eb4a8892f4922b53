package holder

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"sandbox/idmap"
	"sandbox/internal/memexec"

	"golang.org/x/sys/unix"
)

// ErrNone: no holder answers in the directory.
var ErrNone = errors.New("no holder is running")

// NS is a holder's namespace, checked (Verify), and its program.
type NS struct {
	File           *os.File
	UIDMap, GIDMap string // its maps, as the kernel shows them
	// Program is the holder's own program (a read-only fd of its sealed
	// memfd: sandbox-init), ProgramID which build it is; nil and "" when
	// it has none to share. TakeProgram checks it.
	Program   *os.File
	ProgramID string
	// Limits are what the namespace was made with (limits.go).
	Limits Limits
}

// TakeProgram returns the holder's program as a sealed memfd of init
// (name, size bytes) if it is the build id names, and nil otherwise; the
// caller then owns it. The rest of ns stays usable either way.
func (ns *NS) TakeProgram(name, id string, size int) *memexec.File {
	f := ns.Program
	ns.Program = nil
	if f == nil {
		return nil
	}
	if id == "" || ns.ProgramID != id {
		f.Close()
		return nil
	}
	m, err := memexec.Adopt(f, name, size)
	if err != nil {
		return nil
	}
	return m
}

// Close releases what the holder gave.
func (ns *NS) Close() {
	ns.File.Close()
	if ns.Program != nil {
		ns.Program.Close()
		ns.Program = nil
	}
}

// Check verifies ns for a run whose maps are uids and gids (Verify) and
// whose soft limits are ours (Limits); an error means its namespace must
// not be used.
func (ns *NS) Check(uids, gids []idmap.Mapping) error {
	if err := Verify(ns.File, ns.UIDMap, ns.GIDMap, uids, gids); err != nil {
		return err
	}
	return ns.Limits.check(softLimit)
}

// Fetch asks the holder in dir for its namespace and program, not yet
// checked against a run's maps (Check): a run asks while it plans them.
// ErrNone when none answers; any other error means one answered but its
// namespace must not be used.
func Fetch(dir string) (*NS, error) {
	c, err := connect(dir)
	if err != nil {
		return nil, err
	}
	defer unix.Close(c)
	// The namespace, and the holder's program if it shares it.
	msg, fds, err := recvFrom(c, make([]byte, 16<<10), make([]byte, unix.CmsgSpace(4*4)))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(msg, "ok\n") || len(fds) < 1 || len(fds) > 2 {
		closeAll(fds)
		if msg == "" {
			return nil, ErrNone // it went away (idle) as we asked
		}
		return nil, fmt.Errorf("the holder %s", strings.TrimPrefix(msg, "refused: "))
	}
	parts := strings.Split(strings.TrimPrefix(msg, "ok\n"), "\x00")
	ns := &NS{File: os.NewFile(uintptr(fds[0]), "holder-userns")}
	if len(fds) == 2 {
		ns.Program = os.NewFile(uintptr(fds[1]), "holder-program")
	}
	// A holder of an older build answers without the limits its
	// namespace was made with, which may be below ours: not used.
	if len(parts) != 4 {
		ns.Close()
		return nil, errors.New("the holder's answer is not uid_map, gid_map, its program's ID and its namespace's limits (a holder of an older build)")
	}
	ns.UIDMap, ns.GIDMap, ns.ProgramID = parts[0], parts[1], parts[2]
	if ns.Limits, err = parseLimits(parts[3]); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// connect connects to the holder in dir and checks that it is ours:
// ErrNone when none answers.
func connect(dir string) (int, error) {
	c, err := dial(dir)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return -1, ErrNone
		}
		return -1, fmt.Errorf("connecting to the holder: %w", err)
	}
	// The socket is in a private directory of ours, but whoever listens
	// must be ours too.
	cred, err := unix.GetsockoptUcred(c, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		unix.Close(c)
		return -1, fmt.Errorf("identifying the holder: %w", err)
	}
	if int(cred.Uid) != os.Getuid() {
		unix.Close(c)
		return -1, fmt.Errorf("the holder's socket is served by uid %d, not by us", cred.Uid)
	}
	return c, nil
}

// answerWait bounds the wait for each of the holder's messages (recvFrom):
// a holder answers at once; a loaded machine gets a second.
const answerWait = 2 * time.Second

func rights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("the holder's answer: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, f...)
		}
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Start starts a holder in dir for runs whose maps are uids and gids: exe
// (sandbox-init's program, build id: see ProgramEnv) as Arg0, in its own
// session, with stdio on /dev/null, no fd of the caller's and a small
// environment, in the root directory. It returns at once; the holder maps
// its namespace itself (it runs the helpers), gives way if another holder
// runs or is starting, and outlives the caller; it is reaped if it ends
// while the caller still runs.
func Start(dir, exe, id string, uids, gids []idmap.Mapping) error {
	env := []string{
		dirEnv + "=" + dir,
		ProgramEnv + "=" + id,
		uidsEnv + "=" + idmap.Format(Identity(uids)),
		gidsEnv + "=" + idmap.Format(Identity(gids)),
		"PATH=" + os.Getenv("PATH"),
		memexec.GoDebug,
	}
	if v, ok := os.LookupEnv(IdleEnv); ok {
		env = append(env, IdleEnv+"="+v)
	}
	cmd := &exec.Cmd{Path: exe, Args: []string{Arg0}, Env: env, Dir: "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the holder: %w", err)
	}
	go cmd.Wait()
	return nil
}
