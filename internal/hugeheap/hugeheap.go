// Package hugeheap backs the start of the Go heap with a transparent huge
// page, for the CLI, whose start on every run's path touches a fresh heap
// page by page, where page faults are dear.
//
// Its heap is a megabyte or two: hundreds of faults a run. In a guest
// with shadow paging (the CI machine is a PVM guest) the first touch of
// an anonymous 4 KiB page costs ~11.5 µs, against ~0.3 µs
// per 4 KiB of a huge page; there `run --net=none -- true` is ~2 ms
// faster (bench: ~190 faults fewer a run). Natively a fault costs well
// under a microsecond and the gain would not pay for the memory: the whole
// 2 MiB is resident. So Back first times a few faults of the heap's and
// does nothing where they are cheap. Init, whose heap is under a megabyte
// and mostly touched by its runtime's start, gains too little for it.
//
// MADV_COLLAPSE (Linux 6.1) makes the huge page at once, copying what is
// resident, whatever the system's THP "enabled" setting; so Back first
// honours that setting: with "never" an administrator asked for none.
package hugeheap

import (
	"errors"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	hugeSize = 2 << 20
	pageSize = 4 << 10
)

// enabledFile is the system's THP setting (a variable for tests).
var enabledFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// ErrDisabled: the system's THP setting is "never", or it cannot be read.
var ErrDisabled = errors.New("transparent huge pages are disabled (or unknown) on this system")

// ErrCheap: page faults cost too little here for a huge page to pay.
var ErrCheap = errors.New("page faults are cheap here")

// dearFault is the cost of a first touch above which Back collapses: ten
// times a native fault's, a third of a shadow-paged guest's.
const dearFault = 3 * time.Microsecond

// probePages is how many first touches Back times (the fastest counts:
// one may be slowed by an interrupt, none is made faster).
const probePages = 4

// probe is where Back times its first touches: a large object, so pages
// of the heap that nothing has touched yet (and that stay the heap's).
var probe []byte

// Back collapses the 2 MiB-aligned region of the heap that this program's
// allocations have started in into one huge page, where the system allows
// huge pages and a first touch is dear. Best effort: a kernel or memory
// limit that refuses is no error of the program's, and the heap works
// either way (the runtime may split the page again when it returns memory).
func Back() error {
	if !allowed() {
		return ErrDisabled
	}
	probe = make([]byte, 64<<10) // above the largest size class: a span of its own, not zeroed
	if firstTouch(probe) < dearFault {
		return ErrCheap
	}
	return collapse(uintptr(unsafe.Pointer(unsafe.SliceData(probe))))
}

// firstTouch is the fastest of probePages first touches of b's pages.
func firstTouch(b []byte) time.Duration {
	fastest := time.Hour
	for i := 0; i < probePages && (i+1)*pageSize < len(b); i++ {
		// The page after the first: the object may start mid-page.
		t := time.Now()
		b[(i+1)*pageSize] = 1
		fastest = min(fastest, time.Since(t))
	}
	return fastest
}

// collapseTries bounds the attempts: EAGAIN is the kernel's "transient"
// (a page of the region held for a moment elsewhere: 1 run in ~12 here).
const collapseTries = 3

// collapse makes the 2 MiB-aligned region around addr, a heap address,
// one huge page. The Go runtime maps its heap in 4 MiB-aligned chunks
// (pallocChunkBytes): that region lies within one mapping of the heap's.
func collapse(addr uintptr) error {
	// An address only, never dereferenced: the raw call takes it as such.
	base := addr &^ (hugeSize - 1)
	var err error
	for i := 0; i < collapseTries; i++ {
		_, _, e := unix.Syscall(unix.SYS_MADVISE, base, hugeSize, unix.MADV_COLLAPSE)
		if e == 0 {
			return nil
		}
		err = e
		if e != unix.EAGAIN {
			break
		}
	}
	return err
}

// allowed reads the system's THP setting: "[always]" or "[madvise]" allow
// it. One read into a small buffer, no allocation to speak of.
func allowed() bool {
	fd, err := unix.Open(enabledFile, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var buf [128]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil || n <= 0 {
		return false
	}
	s := string(buf[:n])
	return strings.Contains(s, "[always]") || strings.Contains(s, "[madvise]")
}
