package hugeheap

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestCollapseMakesAHugePage: the heap region collapse is given is one
// huge page afterwards (smaps' AnonHugePages), and the heap's objects keep
// their contents. Where the kernel has no MADV_COLLAPSE (before 6.1) or
// THP is off, it says so.
func TestCollapseMakesAHugePage(t *testing.T) {
	keep := make([][]byte, 0, 64)
	for i := 0; i < 64; i++ {
		b := make([]byte, 1024)
		for j := range b {
			b[j] = byte(i)
		}
		keep = append(keep, b)
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(keep[0])))
	err := collapse(addr)
	if !allowed() {
		err = ErrDisabled
	}
	switch {
	case errors.Is(err, ErrDisabled):
		if os.Getenv("CI") == "true" {
			t.Fatalf("transparent huge pages are disabled on the CI machine: %v", err)
		}
		t.Skip(err)
	case errors.Is(err, unix.EINVAL) && os.Getenv("CI") != "true":
		t.Skipf("no MADV_COLLAPSE here (Linux < 6.1?): %v", err)
	case err != nil:
		t.Fatalf("collapse: %v", err)
	}
	for i, b := range keep {
		for _, c := range b {
			if c != byte(i) {
				t.Fatalf("heap object %d changed by the collapse", i)
			}
		}
	}
	if kb := anonHugeKB(t, addr); kb < hugeSize>>10 {
		t.Errorf("AnonHugePages of the heap's mapping at %#x: %d kB, want at least %d", addr, kb, hugeSize>>10)
	}
}

// TestBackHonoursNever: with the system's setting "never", Back leaves the
// heap alone.
func TestBackHonoursNever(t *testing.T) {
	for _, tc := range []struct {
		setting string
		ok      bool
	}{
		{"always madvise [never]\n", false},
		{"[always] madvise never\n", true},
		{"always [madvise] never\n", true},
		{"", false},
	} {
		f := filepath.Join(t.TempDir(), "enabled")
		if err := os.WriteFile(f, []byte(tc.setting), 0o600); err != nil {
			t.Fatal(err)
		}
		old := enabledFile
		enabledFile = f
		got := allowed()
		enabledFile = old
		if got != tc.ok {
			t.Errorf("setting %q: allowed = %v, want %v", tc.setting, got, tc.ok)
		}
	}
	old := enabledFile
	enabledFile = filepath.Join(t.TempDir(), "missing")
	defer func() { enabledFile = old }()
	if err := Back(); !errors.Is(err, ErrDisabled) {
		t.Errorf("Back with no setting to read: %v, want ErrDisabled", err)
	}
}

// TestFirstTouch: a first touch of fresh pages is timed as one (slower
// than a second touch of the same pages), and Back collapses only where
// it costs at least dearFault, saying which it found.
func TestFirstTouch(t *testing.T) {
	b, err := unix.Mmap(-1, 0, 8*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	first := firstTouch(b)
	again := firstTouch(b)
	if first <= 0 || first > time.Second || again > first {
		t.Fatalf("first touches %v, touches of the same pages again %v", first, again)
	}
	err = Back()
	switch {
	case !allowed():
		if !errors.Is(err, ErrDisabled) {
			t.Errorf("THP disabled: Back = %v, want ErrDisabled", err)
		}
	case errors.Is(err, ErrCheap):
		t.Logf("a first touch costs ~%v here: no huge page", first)
	case err != nil && !errors.Is(err, unix.EINVAL):
		t.Errorf("Back: %v", err)
	}
}

// anonHugeKB is the AnonHugePages of the mapping that holds addr.
func anonHugeKB(t *testing.T, addr uintptr) int {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = uint64(addr) >= l && uint64(addr) < h
				continue
			}
		}
		if in && fields[0] == "AnonHugePages:" {
			n, _ := strconv.Atoi(fields[1])
			return n
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return 0
}
