package initproc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sandbox/internal/proto"

	"sandbox/internal/wire"

	"golang.org/x/sys/unix"
)

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4", "A="})
	if want := []string{"A=", "B=3", "C=4"}; !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

// The exec socket serves only clients in the user namespace that started
// the sandbox: the same user from inside a sandbox is refused.
func TestServeExecChecksUserNamespace(t *testing.T) {
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s")
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 4); err != nil {
		t.Fatal(err)
	}
	var userNS unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &userNS); err != nil {
		t.Fatal(err)
	}
	events := make(chan execEvent, 1)
	go serveExec(os.NewFile(uintptr(lfd), "ln"), userNS, os.Getuid(), events)
	dial := func(proof string) *proto.Conn {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		c := proto.FromFD(fd)
		f, err := os.Open(proof)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := c.Send(proto.KindExec, wire.ExecRequest{Args: []string{"true"}}, int(f.Fd()), 0, 1, 2); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Another namespace file stands for a sandbox's user namespace.
	c := dial("/proc/self/ns/net")
	env, _, err := c.Recv()
	var ce wire.ChildError
	if err != nil || env.Kind != proto.KindError || env.Decode(&ce) != nil || !strings.Contains(ce.Msg, "refused") {
		t.Errorf("client with a foreign namespace: got %v %s %v, want a refusal", env.Kind, ce.Msg, err)
	}
	select {
	case ev := <-events:
		t.Fatalf("a refused client reached the main loop: %+v", ev.req)
	default:
	}
	c.Close()
	c = dial("/proc/self/ns/user")
	defer c.Close()
	select {
	case ev := <-events:
		if ev.req == nil || len(ev.fds) != 3 {
			t.Errorf("accepted request: %+v with %d fds, want the command and 3 stdio fds", ev.req, len(ev.fds))
		}
		proto.CloseFDs(ev.fds)
	case <-time.After(10 * time.Second):
		t.Fatal("the client in our own user namespace was not served")
	}
}
