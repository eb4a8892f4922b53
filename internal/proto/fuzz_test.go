package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sandbox/internal/testenv"

	"golang.org/x/sys/unix"
)

// A fuzz input of FuzzRecv is a list of datagrams, each written as
//
//	header  1 byte: bits 0-3 the number of /dev/null descriptors
//	        attached (mod 11: up to 10, over maxFDs), bits 4-5 what
//	        memfd goes last (blobNone...), bit 6: the payload is padded
//	        with spaces to MaxSize-4+(pad%8) bytes, across the limit
//	payload 2-byte little-endian length, then the bytes (fewer if the
//	        input ends)
//	content (blobSealed, blobUnsealed) the memfd's bytes, as the payload
//	size    (blobSparse) 1 byte: an index into sparseSizes
//	pad     (bit 6) 1 byte
const (
	blobNone     = iota
	blobSealed   // a memfd sealed as writeBlob seals it
	blobUnsealed // a memfd without seals: Recv must refuse it as a body
	blobSparse   // a sealed memfd of a size from sparseSizes, all zeros
)

// fuzzBlobLimit is blobLimit while FuzzRecv runs: small, so that a body
// just over it is cheap to make and an allocation past it is seen.
const fuzzBlobLimit = 1 << 20

// sparseSizes are the sizes of blobSparse memfds: around the limit, and a
// terabyte that Recv must refuse from fstat, without reading or
// allocating it.
var sparseSizes = []int64{0, fuzzBlobLimit - 1, fuzzBlobLimit, fuzzBlobLimit + 1, 1 << 40}

// maxDatagrams bounds the datagrams of one input (each may carry 11 fds).
const maxDatagrams = 32

// datagram is one datagram of a fuzz input, and what goes with it.
type datagram struct {
	payload []byte
	nulls   int    // /dev/null descriptors attached
	blob    int    // blobNone...: the memfd attached after them
	content []byte // blobSealed, blobUnsealed
	size    int64  // blobSparse
	pad     int    // padded to MaxSize-4+pad bytes; -1: not padded
}

func parseDatagrams(in []byte) []datagram {
	var ds []datagram
	for len(in) > 0 && len(ds) < maxDatagrams {
		h := in[0]
		d := datagram{nulls: int(h&0x0f) % 11, blob: int(h>>4) & 3, pad: -1}
		d.payload, in = testenv.Chunk(in[1:])
		switch d.blob {
		case blobSealed, blobUnsealed:
			d.content, in = testenv.Chunk(in)
		case blobSparse:
			if len(in) > 0 {
				d.size, in = sparseSizes[int(in[0])%len(sparseSizes)], in[1:]
			}
		}
		if h&0x40 != 0 && len(in) > 0 {
			d.pad, in = int(in[0]%8), in[1:]
			if n := MaxSize - 4 + d.pad; len(d.payload) < n {
				d.payload = append(d.payload, bytes.Repeat([]byte(" "), n-len(d.payload))...)
			}
		}
		ds = append(ds, d)
	}
	return ds
}

// encodeDatagrams is parseDatagrams' inverse, for seeds.
func encodeDatagrams(ds ...datagram) []byte {
	var b []byte
	put := func(c []byte) { b = append(append(b, byte(len(c)), byte(len(c)>>8)), c...) }
	for _, d := range ds {
		h := byte(d.nulls) | byte(d.blob)<<4
		if d.pad >= 0 {
			h |= 0x40
		}
		b = append(b, h)
		put(d.payload)
		switch d.blob {
		case blobSealed, blobUnsealed:
			put(d.content)
		case blobSparse:
			for i, s := range sparseSizes {
				if s == d.size {
					b = append(b, byte(i))
				}
			}
		}
		if d.pad >= 0 {
			b = append(b, byte(d.pad))
		}
	}
	return b
}

// descriptors opens what d carries, the memfd last.
func (d datagram) descriptors(t *testing.T) []int {
	var fds []int
	for range d.nulls {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			CloseFDs(fds)
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	var fd int
	var err error
	switch d.blob {
	case blobNone:
		return fds
	case blobSealed:
		fd, err = writeBlob(d.content)
	case blobUnsealed:
		if fd, err = unix.MemfdCreate("fuzz", unix.MFD_CLOEXEC); err == nil {
			_, err = unix.Write(fd, d.content)
		}
	case blobSparse:
		if fd, err = unix.MemfdCreate("fuzz", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING); err == nil {
			if err = unix.Ftruncate(fd, d.size); err == nil {
				_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, blobSeals)
			}
		}
	}
	if err != nil {
		CloseFDs(fds)
		t.Fatal(err)
	}
	return append(fds, fd)
}

// outcome is what Recv must make of a datagram.
type outcome struct {
	closed bool // ErrClosed (an empty datagram reads as the end)
	ok     bool // else refused with an error
	env    Envelope
	fds    int // descriptors handed out
}

// expect is the model of Recv: the rules its doc comments and the
// package's give, written out for one datagram.
func (d datagram) expect() outcome {
	attached := d.nulls
	if d.blob != blobNone {
		attached++
	}
	var env Envelope
	switch {
	case len(d.payload) == 0:
		return outcome{closed: true}
	case len(d.payload) > MaxSize, attached > maxFDs:
		return outcome{}
	case d.payload[0] == 0:
		var ok bool
		if env, ok = binaryModel(d.payload); !ok {
			return outcome{}
		}
		if !env.Blob {
			return outcome{ok: true, env: env, fds: attached}
		}
	case json.Unmarshal(d.payload, &env) != nil:
		return outcome{}
	case !env.Blob:
		return outcome{ok: true, env: env, fds: attached}
	}
	// The body is in the last descriptor: a sealed memfd within the limit.
	switch {
	case d.blob == blobSealed:
		env.Body = d.content
	case d.blob == blobSparse && d.size <= fuzzBlobLimit:
		env.Body = make([]byte, d.size)
	default: // none, a /dev/null, an unsealed memfd, too big
		return outcome{}
	}
	env.Blob = false
	return outcome{ok: true, env: env, fds: attached - 1}
}

// binaryModel reads a binary datagram as the package's doc gives it
// (testenv.BinaryDatagram).
func binaryModel(p []byte) (Envelope, bool) {
	kind, body, blob, ok := testenv.BinaryDatagram(p)
	if !ok {
		return Envelope{}, false
	}
	return Envelope{Kind: Kind(kind), Body: body, Blob: blob, Binary: true}, true
}

// watchdog shuts a socket down, which ends a receive blocked on it, if
// it is not stopped in time.
type watchdog struct {
	mu    sync.Mutex
	fd    int
	shut  bool
	timer *time.Timer
}

func newWatchdog(fd int, d time.Duration) *watchdog {
	w := &watchdog{fd: fd}
	w.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.fd >= 0 {
			w.shut = true
			unix.Shutdown(w.fd, unix.SHUT_RDWR)
		}
	})
	return w
}

// stop disarms w, before its socket is closed.
func (w *watchdog) stop() {
	w.timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fd = -1
}

// fired says whether w shut its socket down.
func (w *watchdog) fired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shut
}

// recvTimeout bounds the receiving of all of one input's datagrams.
const recvTimeout = 10 * time.Second

// recvSlack is what one Recv may allocate beyond its datagram and the
// body it returns: an error, and the JSON scanner's stack, up to the
// deepest nesting it takes (10000 levels: ~380 KB measured). Under the
// smallest body over fuzzBlobLimit that Recv must not read.
const recvSlack = 512 << 10

// FuzzRecv writes arbitrary datagrams, with /dev/null descriptors and
// memfds (sealed or not, up to a terabyte) attached, into one end of a
// real socketpair and reads them with Conn.Recv on the other, as the
// parent reads a possibly compromised init. It checks that Recv does what
// the model (datagram.expect) says for each datagram, in order, and
// ErrClosed after the last; that it never hangs (the sender closes its
// end; a watchdog shuts the socket down); that a refused message is an
// error of one printable line; that every descriptor received is handed
// out (open, close-on-exec) or closed (/proc/self/fd counts the same
// before and after); and that one Recv allocates no more than its
// datagram, the body it returns and a fixed slack: a body declared bigger
// than the limit is refused before it is read.
func FuzzRecv(f *testing.F) {
	for _, s := range recvSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		defer func(l int64) { blobLimit = l }(blobLimit)
		blobLimit = fuzzBlobLimit
		ds := parseDatagrams(in)
		before := testenv.OpenFDs(t)
		want := make([]outcome, len(ds))
		sendFDs := make([][]int, len(ds))
		for i, d := range ds {
			want[i] = d.expect()
			sendFDs[i] = d.descriptors(t)
		}
		a, b, err := Pair()
		if err != nil {
			t.Fatal(err)
		}
		sent := make(chan error, 1)
		go func() {
			err := sendDatagrams(int(a.File().Fd()), ds, sendFDs)
			// The receiver reads EOF after the last datagram. Closed before
			// the send on sent, so that the descriptors are counted after.
			a.Close()
			sent <- err
		}()
		dog := newWatchdog(int(b.File().Fd()), recvTimeout)
		finished, sendErr := false, error(nil)
		finish := func() error {
			if !finished {
				finished = true
				dog.stop()
				b.Close() // a sender still blocked fails
				sendErr = <-sent
				for _, fds := range sendFDs {
					CloseFDs(fds)
				}
			}
			return sendErr
		}
		defer finish()
		var ms runtime.MemStats
		for i := 0; i <= len(ds); i++ {
			runtime.ReadMemStats(&ms)
			alloc := ms.TotalAlloc
			env, fds, err := b.Recv()
			runtime.ReadMemStats(&ms)
			alloc = ms.TotalAlloc - alloc
			if dog.fired() {
				CloseFDs(fds)
				t.Fatalf("datagram %d: not received within %v", i, recvTimeout)
			}
			w := outcome{closed: true} // after the last datagram
			limit := uint64(recvSlack)
			if i < len(ds) {
				w = want[i]
				limit += uint64(2*min(len(ds[i].payload), MaxSize+1) + len(w.env.Body))
			}
			if alloc > limit {
				CloseFDs(fds)
				t.Fatalf("datagram %d: Recv allocated %d bytes, over %d", i, alloc, limit)
			}
			switch {
			case w.closed:
				if !errors.Is(err, ErrClosed) || fds != nil {
					CloseFDs(fds)
					t.Fatalf("datagram %d: got %v with %d fds, want ErrClosed", i, err, len(fds))
				}
			case !w.ok:
				if err == nil {
					CloseFDs(fds)
					t.Fatalf("datagram %d: accepted %q with %d fds, want refused", i, env.Kind, len(fds))
				}
				if fds != nil {
					CloseFDs(fds)
					t.Fatalf("datagram %d: refused (%v) but %d fds handed out", i, err, len(fds))
				}
				testenv.CheckOneLine(t, fmt.Sprintf("datagram %d", i), err)
			default:
				for _, fd := range fds {
					testenv.CheckReceivedFD(t, fd)
					unix.Close(fd)
				}
				if err != nil {
					t.Fatalf("datagram %d: %v, want %q accepted", i, err, w.env.Kind)
				}
				if env.Kind != w.env.Kind || !bytes.Equal(env.Body, w.env.Body) || env.Blob || env.Binary != w.env.Binary || len(fds) != w.fds {
					t.Fatalf("datagram %d: got kind %q, %d body bytes, blob %v, %d fds; want %q, %d, false, %d",
						i, env.Kind, len(env.Body), env.Blob, len(fds), w.env.Kind, len(w.env.Body), w.fds)
				}
			}
		}
		if err := finish(); err != nil {
			t.Fatal(err)
		}
		if after := testenv.OpenFDs(t); after != before {
			t.Fatalf("%d descriptors open before, %d after", before, after)
		}
	})
}

// sendDatagrams writes each datagram with its descriptors.
func sendDatagrams(fd int, ds []datagram, fds [][]int) error {
	for i, d := range ds {
		var oob []byte
		if len(fds[i]) > 0 {
			oob = unix.UnixRights(fds[i]...)
		}
		if errno := testenv.SendRaw(fd, d.payload, oob); errno != 0 {
			return fmt.Errorf("sending datagram %d (%d bytes, %d fds): %w", i, len(d.payload), len(fds[i]), errno)
		}
	}
	return nil
}

// sentBytes is the datagram Send writes for kind and body.
func sentBytes(f *testing.F, kind Kind, body any) []byte {
	a, b, err := Pair()
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Send(kind, body); err != nil {
		f.Fatal(err)
	}
	buf := make([]byte, MaxSize)
	n, _, _, _, err := unix.Recvmsg(int(b.File().Fd()), buf, nil, 0)
	if err != nil {
		f.Fatal(err)
	}
	return buf[:n]
}

// envelopeSeeds are single messages, valid or not, shared by FuzzRecv and
// FuzzEnvelope.
func envelopeSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{
		sentBytes(f, KindTap, nil),
		sentBytes(f, KindPTY, nil),
		sentBytes(f, KindConfining, nil),
		sentBytes(f, KindStarted, map[string]any{"pid": 2, "init": map[string]any{"steps": []any{map[string]any{"at": 1, "msg": "mounted /"}}, "warnings": []string{"w"}}}),
		sentBytes(f, KindExit, map[string]int{"code": 3}),
		sentBytes(f, KindExit, map[string]int{"signal": 9}),
		sentBytes(f, KindError, map[string]any{"step": "mounting", "msg": "no such file", "status": 125}),
		sentBytes(f, KindConfig, map[string]any{"args": []string{"sh"}, "plan": nil}),
		sentBytes(f, KindNet, map[string]string{"err": "down"}),
		sentBytes(f, KindWatched, nil),
		sentBytes(f, Kind("bogus\n\x1b[2J"), "x"),
		[]byte(`{"kind":"exit","body":{"code":1}`),      // truncated
		[]byte(`{"kind":"exit","body":{"code":1},"blo`), // truncated
		[]byte(`{"kind":"exit","body":}`),
		[]byte(`{"kind":7}`),
		[]byte(`{"kind":"error","blob":"yes"}`),
		[]byte(`{"kind":"error","body":null}`),
		[]byte(`{"kind":"err\u2028or\u0000"}`),
		[]byte("{\"kind\":\"\xff\xfe\"}"),
		[]byte(`[]`),
		[]byte(`null`),
		[]byte(" "),
		[]byte(`{"kind":"started","body":{"pid":1e400}}`),
		[]byte(`{"kind":"started","body":{"pid":"1"}}`),
		[]byte(`{"kind":"exit","body":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`),
		[]byte(`{"kind":"exit","x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`),
	}
	return seeds
}

func recvSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, s := range envelopeSeeds(f) {
		if len(s) < 1<<16 {
			seeds = append(seeds, encodeDatagrams(datagram{payload: s, pad: -1}))
		}
	}
	blob := func(kind Kind) []byte {
		b, err := Envelope{Kind: kind, Blob: true}.marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	exit := sentBytes(f, KindExit, map[string]int{"code": 0})
	seeds = append(seeds,
		// A conversation, with the descriptors each message carries.
		encodeDatagrams(
			datagram{payload: sentBytes(f, KindTap, nil), nulls: 1, pad: -1},
			datagram{payload: sentBytes(f, KindPTY, nil), nulls: 1, pad: -1},
			datagram{payload: sentBytes(f, KindStarted, map[string]int{"pid": 2}), pad: -1},
			datagram{payload: exit, pad: -1}),
		// Bodies in memfds: sealed, not sealed, missing, around the limit.
		encodeDatagrams(datagram{payload: blob(KindConfig), blob: blobSealed, content: []byte(`{"args":["sh"]}`), pad: -1}),
		// Binary datagrams (SendBinary): inline, out of band, cut short.
		encodeDatagrams(
			datagram{payload: []byte("\x00\x05start\x00\xc2\x04"), pad: -1},
			datagram{payload: []byte("\x00\x06config\x01"), nulls: 1, blob: blobSealed, content: []byte("\xc1\x00"), pad: -1},
			datagram{payload: []byte("\x00\x06config\x01x"), blob: blobSealed, pad: -1},
			datagram{payload: []byte("\x00\x09exit"), pad: -1}),
		encodeDatagrams(datagram{payload: blob(KindConfig), nulls: 2, blob: blobSealed, content: []byte(`"x"`), pad: -1}),
		encodeDatagrams(datagram{payload: blob(KindConfig), blob: blobUnsealed, content: []byte(`"x"`), pad: -1}),
		encodeDatagrams(datagram{payload: blob(KindConfig), nulls: 1, pad: -1}),
		encodeDatagrams(datagram{payload: blob("a\nb"), pad: -1}),
		encodeDatagrams(datagram{payload: blob(KindStarted), blob: blobSparse, size: fuzzBlobLimit, pad: -1}),
		encodeDatagrams(datagram{payload: blob(KindStarted), blob: blobSparse, size: fuzzBlobLimit + 1, pad: -1}),
		encodeDatagrams(datagram{payload: blob(KindStarted), blob: blobSparse, size: 1 << 40, pad: -1}),
		// A sealed memfd not named as the body: an ordinary descriptor.
		encodeDatagrams(datagram{payload: exit, blob: blobSealed, pad: -1}),
		// Descriptors: as many as a message takes, one more, more still.
		encodeDatagrams(datagram{payload: exit, nulls: maxFDs, pad: -1}),
		encodeDatagrams(datagram{payload: exit, nulls: maxFDs + 1, pad: -1}),
		encodeDatagrams(datagram{payload: exit, nulls: 10, blob: blobSealed, pad: -1}),
		// Empty datagrams, with and without descriptors, then a message.
		encodeDatagrams(datagram{pad: -1}, datagram{nulls: 2, pad: -1}, datagram{payload: exit, pad: -1}),
		// Around MaxSize: the last that fits, the first refused.
		encodeDatagrams(datagram{payload: exit, pad: 4}),
		encodeDatagrams(datagram{payload: exit, nulls: 1, pad: 5}, datagram{payload: exit, pad: -1}),
	)
	return seeds
}

// FuzzEnvelope decodes arbitrary bytes as a datagram's envelope, as Recv
// does, and the body into a generic value, as Decode does, and checks
// that an error is one printable line (a peer's bytes end up in the
// user's diagnostic), and that an envelope read back from what marshal
// writes is the same (marshal writes by hand what json.Marshal would, for
// the bodies Recv hands out).
func FuzzEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var env Envelope
		if err := json.Unmarshal(in, &env); err != nil {
			testenv.CheckOneLine(t, "envelope", fmt.Errorf("decoding message: %w", err))
			return
		}
		var v any
		if err := env.Decode(&v); err != nil {
			testenv.CheckOneLine(t, "Decode", err)
		}
		// The body as json.Marshal writes it (compact, HTML escaped), the
		// only bodies marshal is given.
		var compact, body bytes.Buffer
		if len(env.Body) > 0 {
			if err := json.Compact(&compact, env.Body); err != nil {
				t.Fatalf("body %q of a decoded envelope: %v", env.Body, err)
			}
			json.HTMLEscape(&body, compact.Bytes())
		}
		env.Body = body.Bytes()
		b, err := env.marshal()
		if err != nil {
			t.Fatal(err)
		}
		std, err := json.Marshal(env)
		if err != nil || !bytes.Equal(b, std) {
			t.Fatalf("marshal wrote %q; json.Marshal %q, %v", b, std, err)
		}
		var back Envelope
		if err := json.Unmarshal(b, &back); err != nil || back.Kind != env.Kind || !bytes.Equal(back.Body, env.Body) || back.Blob != env.Blob {
			t.Fatalf("%q read back as %+v, %v; want %+v", b, back, err, env)
		}
	})
}
