package holder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandbox/internal/memexec"

	"golang.org/x/sys/unix"
)

// testServer is a holder serving dir from this process: the namespace it
// gives is this process's own (no maps are made), its answers and
// requests are the real ones.
func testServer(t *testing.T) (dir string, s *server) {
	t.Helper()
	dir = t.TempDir()
	ns, err := os.Open("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	s = &server{dir: dir, uid: uint32(os.Getuid()), idle: time.Minute, oob: make([]byte, unix.CmsgSpace(4)),
		ns: ns, userNS: [2]uint64{uint64(st.Dev), uint64(st.Ino)},
		maps: []byte("ok\n0 0 1\n\x000 0 1\n\x00\x00" + formatLimits(Limits{}))}
	if err := s.listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, _, err := unix.Accept4(s.ln, unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			s.answer(c)
			unix.Close(c)
		}
	}()
	t.Cleanup(func() {
		unix.Shutdown(s.ln, unix.SHUT_RDWR)
		unix.Close(s.ln)
		<-done
		ns.Close()
		for _, p := range s.shared {
			p.file.Close()
		}
	})
	return dir, s
}

func sealedCopy(t *testing.T, prog string) *memexec.File {
	t.Helper()
	m, err := memexec.New("sandbox-netstack", prog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func inode(t *testing.T, f *os.File) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{uint64(st.Dev), uint64(st.Ino)}
}

var (
	idA = strings.Repeat("a", 64)
	idB = strings.Repeat("b", 64)
)

// TestShareAndTake: a copy given to the holder is handed, the same memfd,
// to runs of its build and size only; none before it was given.
func TestShareAndTake(t *testing.T) {
	dir, _ := testServer(t)
	const prog = "#!/bin/sh\necho netstack\n"
	if m, err := TakeShared(dir, "sandbox-netstack", idA, len(prog)); m != nil || err != nil {
		t.Fatalf("taken before any was given: %v, %v", m, err)
	}
	own := sealedCopy(t, prog)
	if err := Share(dir, "sandbox-netstack", idA, own); err != nil {
		t.Fatalf("Share: %v", err)
	}
	m, err := TakeShared(dir, "sandbox-netstack", idA, len(prog))
	if err != nil || m == nil {
		t.Fatalf("TakeShared after Share: %v, %v", m, err)
	}
	if inode(t, m.File()) != inode(t, own.File()) {
		t.Errorf("the copy taken is not the one given")
	}
	if flags, err := unix.FcntlInt(m.File().Fd(), unix.F_GETFL, 0); err != nil || flags&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("the copy taken is not read-only: flags %#x, %v", flags, err)
	}
	m.Close()
	if m, err := TakeShared(dir, "sandbox-netstack", idB, len(prog)); m != nil || err != nil {
		t.Errorf("another build took the copy: %v, %v", m, err)
	}
	if m, err := TakeShared(dir, "sandbox-netstack", idA, len(prog)+1); m != nil || err == nil {
		t.Errorf("a copy of another size was taken: %v, %v", m, err)
	}
	// A newer build's copy replaces it.
	newer := sealedCopy(t, prog+"# newer\n")
	if err := Share(dir, "sandbox-netstack", idB, newer); err != nil {
		t.Fatalf("Share of another build: %v", err)
	}
	if m, _ := TakeShared(dir, "sandbox-netstack", idA, len(prog)); m != nil {
		t.Errorf("the replaced build is still handed out")
	}
	m, err = TakeShared(dir, "sandbox-netstack", idB, len(prog)+len("# newer\n"))
	if err != nil || m == nil || inode(t, m.File()) != inode(t, newer.File()) {
		t.Fatalf("the newer build's copy: %v, %v", m, err)
	}
	m.Close()
}

// TestShareRefused: the holder keeps only sealed memfds, under a program's
// name and build, within its bounds; a refusal says why.
func TestShareRefused(t *testing.T) {
	dir, s := testServer(t)
	unsealed, err := unix.MemfdCreate("sandbox-netstack", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(unsealed)
	unix.Write(unsealed, []byte("#!/bin/sh\n"))
	plain, err := os.Create(filepath.Join(t.TempDir(), "prog"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, c := range []struct {
		name string
		fd   int
		want string
	}{
		{"an unsealed memfd", unsealed, "not a sealed memfd"},
		{"a plain file", int(plain.Fd()), "not a sealed memfd"},
	} {
		reply, fds, err := ask(dir, reqShare+"\x00sandbox-netstack\x00"+idA, c.fd)
		closeAll(fds)
		if err != nil || !strings.Contains(reply, c.want) {
			t.Errorf("%s: reply %q, %v; want %q", c.name, reply, err, c.want)
		}
	}
	own := sealedCopy(t, "#!/bin/sh\n")
	for _, c := range []struct{ name, req, want string }{
		{"a name that is not a word", reqShare + "\x00../x\x00" + idA, "not a program's name"},
		{"a build that is not a SHA-256", reqShare + "\x00sandbox-netstack\x00abc", "not a program's name"},
		{"an unknown request", "give\x00sandbox-netstack", "not a request"},
	} {
		reply, fds, err := ask(dir, c.req, int(own.File().Fd()))
		closeAll(fds)
		if err != nil || !strings.Contains(reply, c.want) {
			t.Errorf("%s: reply %q, %v; want %q", c.name, reply, err, c.want)
		}
	}
	for i := 0; i < maxShared; i++ {
		if err := Share(dir, "sandbox-p"+strings.Repeat("x", i), idA, own); err != nil {
			t.Fatalf("program %d: %v", i, err)
		}
	}
	if err := Share(dir, "sandbox-one-more", idA, own); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a program beyond the bound: %v", err)
	}
	if len(s.shared) != maxShared {
		t.Errorf("the holder keeps %d programs, want %d", len(s.shared), maxShared)
	}
	if reply, _, err := ask(dir, reqTake+"\x00sandbox-unknown", -1); err != nil || reply != replyNone {
		t.Errorf("take of a program never given: %q, %v", reply, err)
	}
}

// TestFetchNotHeldUp: a client that asks nothing after its answer (Fetch,
// and any run of an older build) closes its connection, and the holder
// serves the next one at once rather than waiting for a request.
func TestFetchNotHeldUp(t *testing.T) {
	dir, _ := testServer(t)
	begin := time.Now()
	for i := 0; i < 20; i++ {
		ns, err := Fetch(dir)
		if err != nil {
			t.Fatalf("Fetch %d: %v", i, err)
		}
		ns.Close()
	}
	// Each would wait out the holder's 1 s read timeout if it waited.
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("20 Fetches took %v", d)
	}
}
