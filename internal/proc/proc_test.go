package proc

import (
	"strings"
	"testing"
)

func TestStatFields(t *testing.T) {
	line := []byte("42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 12345 1000 10 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 9")
	f, err := StatFields(line)
	if err != nil {
		t.Fatal(err)
	}
	if string(f[0]) != "S" || string(f[22-3]) != "12345" || string(f[len(f)-1]) != "9" {
		t.Errorf("state %q, starttime %q, last %q", f[0], f[22-3], f[len(f)-1])
	}
	for _, bad := range []string{"", "42 no paren", "42 (x) S 1 2", "42 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19"} {
		if _, err := StatFields([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestStatStateExit(t *testing.T) {
	// proc(5): exit_code is field 52, the last one.
	line := []byte("42 (a) b (c)) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 12345 1000 10 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0 31\n")
	state, exit, err := StatStateExit(line)
	if err != nil || state != 'Z' || exit != 31 {
		t.Errorf("got state %q exit %d err %v, want Z 31", state, exit, err)
	}
	// Before field 52 (older kernels): no exit code.
	state, exit, err = StatStateExit([]byte("42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 12345"))
	if err != nil || state != 'S' || exit != 0 {
		t.Errorf("short line: got state %q exit %d err %v, want S 0", state, exit, err)
	}
	if a := testing.AllocsPerRun(20, func() { StatStateExit(line) }); a != 0 {
		t.Errorf("%v allocations, want 0", a)
	}
	for _, bad := range []string{"", "42 no paren", "42 (x) S 1 2", "42 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
		"42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 12345 1000 10 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0 x9"} {
		if _, _, err := StatStateExit([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestReadFileInto(t *testing.T) {
	var buf [8]byte
	b, err := ReadFileInto("/proc/self/stat", buf[:])
	if err != nil || len(b) != len(buf) {
		t.Fatalf("read %q, %v; want the first %d bytes", b, err, len(buf))
	}
	if _, err := ReadFileInto("/proc/self/no-such-file", buf[:]); err == nil || !strings.Contains(err.Error(), "no-such-file") {
		t.Errorf("a missing file: %v, want an error naming it", err)
	}
}
