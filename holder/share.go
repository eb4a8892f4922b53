package holder

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"sandbox/internal/memexec"

	"golang.org/x/sys/unix"
)

// Programs shared through the holder: a run that made a sealed memfd of an
// embedded program (the builtin network's helper, ~10 MB) gives it to the
// holder once its own use of it has begun (Share), and the user's later
// runs of the same build start the program from the holder's copy
// (TakeShared): no copy on their path (~2.3 ms of CPU for that helper
// here), and one copy in memory for all the user's sandboxes instead of
// one each (a memfd's pages stay resident while a process runs from it).
//
// Both ride on the connection that asks for the namespace: the client
// sends its request at once, reads the answer, then the reply. The holder
// trusts a program's claimed build as it trusts its own program's (see
// ProgramEnv): it serves peers it would give the namespace to, processes
// of its user outside any sandbox, which could as well replace the holder;
// it checks what the kernel can vouch for, that the copy is a memfd sealed
// against any change, and bounds what it keeps. A holder of an older build
// answers and closes without reading a request: the run then copies its
// own, as without a holder.

// Requests (fields separated by NUL) and replies.
const (
	reqShare  = "share" // share NAME ID, with the sealed memfd's fd
	reqTake   = "take"  // take NAME; reply "ok" ID with an fd, or "none"
	replyOK   = "ok"
	replyNone = "none"
)

// Bounds of what the holder keeps for its user's runs.
const (
	maxShared     = 4        // programs
	maxSharedSize = 64 << 20 // bytes each
	maxRequest    = 256      // bytes of a request
)

// sharedProgram is a program the holder keeps: a read-only fd of its
// sealed memfd and the build it is.
type sharedProgram struct {
	id   string
	file *os.File
}

// validName: a program's name is a short word of lower-case letters and
// dashes ("sandbox-netstack"), its build a SHA-256 in hex.
func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && r != '-' {
			return false
		}
	}
	return true
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// followUp serves what a client asks after its answer, on the same
// connection c: nothing (it closes c at once: Fetch), or one request about
// a shared program. A client that does neither (stopped right after it
// connected) holds the holder up for a second at most.
func (s *server) followUp(c int) {
	n, oobn, flags, err := recvmsg(c, s.req[:], s.oob, time.Second)
	if err != nil || n <= 0 {
		return
	}
	fds, err := rights(s.oob[:oobn])
	if err != nil || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeAll(fds)
		unix.Sendmsg(c, []byte("refused: a request too long, or with too many files"), nil, nil, 0)
		return
	}
	reply, give := s.request(string(s.req[:n]), fds)
	var oob []byte
	if give != nil {
		oob = unix.UnixRights(int(give.Fd()))
	}
	unix.Sendmsg(c, []byte(reply), oob, nil, 0)
}

// recvmsg is unix.Recvmsg on the blocking socket c, for at most within:
// each call's SO_RCVTIMEO is the time left, and a call a signal ended is
// made again while some is. With a receive timeout the kernel does not
// restart the call after a handler (signal(7)), and the Go runtime's
// preemption signal (SIGURG) comes at any time: a run on a slow arm64
// guest lost its holder's answer to it ("interrupted system call") and
// wrote its maps with the helpers.
func recvmsg(c int, buf, oob []byte, within time.Duration) (n, oobn, flags int, err error) {
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left < time.Millisecond {
			return 0, 0, 0, unix.EAGAIN // the time is up: as the timeout says it
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err = unix.SetsockoptTimeval(c, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return 0, 0, 0, err
		}
		n, oobn, flags, _, err = unix.Recvmsg(c, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			return n, oobn, flags, err
		}
	}
}

// request answers one request with the fds that came with it (closed
// unless kept), and the file to give with the reply, if any.
func (s *server) request(req string, fds []int) (string, *os.File) {
	f := strings.Split(req, "\x00")
	switch {
	case len(f) == 2 && f[0] == reqTake && len(fds) == 0:
		p, ok := s.shared[f[1]]
		if !ok {
			return replyNone, nil
		}
		return replyOK + "\x00" + p.id, p.file
	case len(f) == 3 && f[0] == reqShare && len(fds) == 1:
		if err := s.keep(f[1], f[2], fds[0]); err != nil {
			return "refused: " + err.Error(), nil
		}
		return replyOK, nil
	}
	closeAll(fds)
	return "refused: not a request the holder knows", nil
}

// keep takes fd, the sealed memfd of program name (build id), for later
// runs; fd is closed either way. A copy of another build replaces the one
// kept (the newer build's runs are the ones to come).
func (s *server) keep(name, id string, fd int) error {
	given := os.NewFile(uintptr(fd), name)
	defer given.Close()
	if !validName(name) || !validID(id) {
		return errors.New("not a program's name and build")
	}
	if p, ok := s.shared[name]; ok && p.id == id {
		return nil
	}
	if _, ok := s.shared[name]; !ok && len(s.shared) >= maxShared {
		return fmt.Errorf("the holder keeps %d programs at most", maxShared)
	}
	if err := memexec.Sealed(given); err != nil {
		return fmt.Errorf("not a sealed memfd: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Size <= 0 || st.Size > maxSharedSize {
		return fmt.Errorf("%d bytes (the holder keeps up to %d)", st.Size, maxSharedSize)
	}
	// Its own read-only description, as the holder's own program is given.
	ro, err := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return err
	}
	if p, ok := s.shared[name]; ok {
		p.file.Close()
	}
	if s.shared == nil {
		s.shared = make(map[string]sharedProgram, maxShared)
	}
	s.shared[name] = sharedProgram{id: id, file: ro}
	return nil
}

// TakeShared asks the holder in dir for its copy of program name (size
// bytes) as build id made it: nil, nil when it has none of that build or
// no holder answers; the caller then owns the copy.
func TakeShared(dir, name, id string, size int) (*memexec.File, error) {
	if !validName(name) || !validID(id) {
		return nil, nil
	}
	reply, fds, err := ask(dir, reqTake+"\x00"+name, -1)
	if err != nil || reply != replyOK+"\x00"+id || len(fds) != 1 {
		closeAll(fds)
		if errors.Is(err, ErrNone) {
			err = nil
		}
		return nil, err
	}
	return memexec.Adopt(os.NewFile(uintptr(fds[0]), name), name, size)
}

// Share gives the holder in dir a copy of program name (build id), a
// sealed memfd, for the user's later runs; m stays the caller's.
func Share(dir, name, id string, m *memexec.File) error {
	if !validName(name) || !validID(id) {
		return fmt.Errorf("sharing %q: not a program's name and build", name)
	}
	reply, fds, err := ask(dir, reqShare+"\x00"+name+"\x00"+id, int(m.File().Fd()))
	closeAll(fds)
	if err != nil {
		return err
	}
	if reply != replyOK {
		return fmt.Errorf("the holder did not keep %s: %s", name, strings.TrimPrefix(reply, "refused: "))
	}
	return nil
}

// ask sends req (with fd, if not -1) to the holder in dir, reads and
// drops the holder's answer, and returns the reply to req with its fds
// ("" from a holder that reads no request). ErrNone when no holder
// answers.
func ask(dir, req string, fd int) (string, []int, error) {
	c, err := connect(dir)
	if err != nil {
		return "", nil, err
	}
	defer unix.Close(c)
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if err := unix.Sendmsg(c, []byte(req), oob, nil, 0); err != nil {
		return "", nil, fmt.Errorf("asking the holder: %w", err)
	}
	buf := make([]byte, 16<<10)
	cmsg := make([]byte, unix.CmsgSpace(4*4))
	answer, fds, err := recvFrom(c, buf, cmsg)
	closeAll(fds)
	switch {
	case err != nil:
		return "", nil, err
	case answer == "":
		return "", nil, ErrNone // it went away (idle) as we asked
	case !strings.HasPrefix(answer, "ok\n"):
		return "", nil, fmt.Errorf("the holder %s", strings.TrimPrefix(answer, "refused: "))
	}
	return recvFrom(c, buf, cmsg)
}

// recvFrom reads one message of the holder's on c, with its fds.
func recvFrom(c int, buf, cmsg []byte) (string, []int, error) {
	n, oobn, _, err := recvmsg(c, buf, cmsg, answerWait)
	if err != nil {
		return "", nil, fmt.Errorf("reading the holder's answer: %w", err)
	}
	fds, err := rights(cmsg[:oobn])
	if err != nil {
		return "", nil, err
	}
	return string(buf[:n]), fds, nil
}
