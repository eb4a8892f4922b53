// Package hugeheap backs the start of the Go heap with a transparent huge
// page, for the short-lived programs on the start-up path (the CLI, init),
// where page faults are dear.
//
// Their heap is a megabyte or two, touched page by page as they start:
// hundreds of faults a run. In a guest with shadow paging (the CI machine
// is a PVM guest) the first touch of an anonymous 4 KiB page costs
// ~11.5 µs, against ~0.3 µs per 4 KiB of a huge page: there `run
// --net=none -- true` is ~2.5 ms faster, with ~190 faults fewer. Natively
// a fault costs well under a microsecond and the gain would not pay for
// the memory: the whole 2 MiB is resident (init's heap is ~0.8 MiB
// otherwise, the CLI's ~1.5). So Back first times a few faults of its own
// and does nothing where they are cheap.
//
// MADV_COLLAPSE (Linux 6.1) makes the huge page at once, copying what is
// resident, whatever the system's THP "enabled" setting; so Back first
// honours that setting: with "never" an administrator asked for none.
package hugeheap

import (
	"bytes"
	"errors"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	hugeSize = 2 << 20
	// madvCollapse is MADV_COLLAPSE (include/uapi/asm-generic/mman-common.h).
	madvCollapse = 25
)

// anchor is a heap object whose address tells where the heap is.
var anchor *[16]byte

// enabledFile is the system's THP setting (a variable for tests).
var enabledFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// ErrDisabled: the system's THP setting is "never", or it cannot be read.
var ErrDisabled = errors.New("transparent huge pages are disabled (or unknown) on this system")

// ErrCheap: page faults cost too little here for a huge page to pay.
var ErrCheap = errors.New("page faults are cheap here")

// dearFault is the cost of a first touch above which Back collapses: ten
// times a native fault's, a third of a shadow-paged guest's.
const dearFault = 3 * time.Microsecond

// probePages is how many faults Back times (their fastest counts: one may
// be slowed by an interrupt, none is made faster).
const probePages = 4

// Back collapses the 2 MiB-aligned region of the heap that this program's
// first allocations are in into one huge page. Best effort: a kernel or
// memory limit that refuses is no error of the program's, and the heap
// keeps working either way (the runtime may split the page again when it
// returns memory).
func Back() error {
	if !allowed() {
		return ErrDisabled
	}
	if fault, err := firstTouch(); err != nil {
		return err
	} else if fault < dearFault {
		return ErrCheap
	}
	return collapse()
}

// collapse makes the heap's first 2 MiB-aligned region one huge page.
func collapse() error {
	anchor = new([16]byte)
	// The Go runtime maps its heap in 4 MiB-aligned chunks (pallocChunkBytes):
	// the 2 MiB region around any heap object lies within one mapping.
	// An address only, never dereferenced: the raw call takes it as such.
	base := uintptr(unsafe.Pointer(anchor)) &^ (hugeSize - 1)
	var err error
	for i := 0; i < collapseTries; i++ {
		_, _, e := unix.Syscall(unix.SYS_MADVISE, base, hugeSize, madvCollapse)
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

// collapseTries bounds the attempts: EAGAIN is the kernel's "transient"
// (a page of the region held for a moment elsewhere: 1 run in ~12 here).
const collapseTries = 3

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
	s := buf[:n]
	return bytes.Contains(s, []byte("[always]")) || bytes.Contains(s, []byte("[madvise]"))
}

// firstTouch is the fastest of probePages first touches of an anonymous
// page (a page fault each).
func firstTouch() (time.Duration, error) {
	const page = 4096
	b, err := unix.Mmap(-1, 0, probePages*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(b)
	fastest := time.Hour
	for i := 0; i < probePages; i++ {
		t := time.Now()
		b[i*page] = 1
		fastest = min(fastest, time.Since(t))
	}
	return fastest, nil
}
