package holder

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A signal to the thread waiting for the holder's answer does not lose it:
// with SO_RCVTIMEO the kernel ends the wait with EINTR after a handler
// (the Go runtime's SIGURG, sent here as its preemption would), and the
// answer that comes after is read ("reading the holder's answer:
// interrupted system call" on a slow arm64 guest before).
func TestAnswerAfterASignal(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
	tid := make(chan int, 1)
	type result struct {
		msg string
		err error
	}
	got := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		msg, fds, err := recvFrom(fds[0], make([]byte, 64), make([]byte, unix.CmsgSpace(4)))
		closeAll(fds)
		got <- result{msg, err}
	}()
	waiter := <-tid
	// Signalled a few times while it waits (the thread is in recvmsg by
	// then: a signal before it only runs the handler), then answered.
	for i := 0; i < 5; i++ {
		time.Sleep(40 * time.Millisecond)
		if err := unix.Tgkill(unix.Getpid(), waiter, unix.SIGURG); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Sendmsg(fds[1], []byte("answer"), nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || r.msg != "answer" {
			t.Fatalf("after the signals: %q, %v; want the answer", r.msg, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10 s")
	}
}

// A wait for an answer that never comes ends within its bound, signals or
// not (each call's timeout is the time left).
func TestAnswerWaitBounded(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	began := time.Now()
	_, _, _, err = recvmsg(fds[0], make([]byte, 16), nil, 300*time.Millisecond)
	if took := time.Since(began); err != unix.EAGAIN || took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("no answer: %v after %v, want EAGAIN after ~300 ms", err, took)
	}
}
