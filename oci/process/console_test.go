package process

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain runs the process side of TestConsole when asked.
func TestMain(m *testing.M) {
	if sock := os.Getenv("PROCESS_TEST_CONSOLE"); sock != "" {
		consoleChild(sock)
	}
	os.Exit(m.Run())
}

func consoleChild(sock string) {
	if err := Console(sock); err != nil {
		fmt.Fprintf(os.Stderr, "Console: %v\n", err)
		os.Exit(2)
	}
	_, err := unix.IoctlGetTermios(1, unix.TCGETS)
	sid, _ := unix.Getsid(0)
	fmt.Printf("tty=%v leader=%v\n", err == nil, sid == unix.Getpid())
	os.Exit(0)
}

// TestConsole: the pty master arrives on the console socket (runc's
// protocol: SCM_RIGHTS, the pty's name as data), and the process's stdio
// is the slave, its controlling terminal, in a session of its own.
func TestConsole(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "PROCESS_TEST_CONSOLE="+sock)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	l.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatalf("accept: %v (child: %s)", err, stderr.String())
	}
	defer c.Close()
	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(buf[:n]), "/dev/pts/") {
		t.Errorf("data %q, want the pty's name", buf[:n])
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages: %v %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v %v", fds, err)
	}
	master := os.NewFile(uintptr(fds[0]), "master")
	defer master.Close()
	master.SetReadDeadline(time.Now().Add(30 * time.Second))
	var out []byte
	for !strings.Contains(string(out), "\n") {
		b := make([]byte, 256)
		n, err := master.Read(b)
		if err != nil {
			t.Fatalf("reading the master: %v (so far %q; child: %s)", err, out, stderr.String())
		}
		out = append(out, b[:n]...)
	}
	if got := strings.TrimSpace(string(out)); got != "tty=true leader=true" {
		t.Fatalf("child says %q (stderr %s)", got, stderr.String())
	}
}
