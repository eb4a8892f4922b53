package wire

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"sandbox/internal/proto"
	"sandbox/internal/testenv"

	"golang.org/x/sys/unix"
)

// A fuzz input of FuzzReceive is a list of datagrams, each written as
//
//	header  1 byte: bits 0-3 the number of /dev/null descriptors
//	        attached (mod 11: up to 10, over the 8 a message takes),
//	        bit 4: a sealed memfd goes last (a body out of band), bit 6:
//	        the payload is padded with spaces to proto.MaxSize-4+(pad%8)
//	        bytes, across the limit
//	payload 2-byte little-endian length, then the bytes (fewer if the
//	        input ends)
//	content (bit 4) the memfd's bytes, as the payload
//	pad     (bit 6) 1 byte
type datagram struct {
	payload []byte
	nulls   int    // /dev/null descriptors attached
	memfd   bool   // a sealed memfd attached after them
	content []byte // the memfd's
	pad     int    // padded to proto.MaxSize-4+pad bytes; -1: not padded
}

// maxDatagrams bounds the datagrams of one input (each may carry 11 fds).
const maxDatagrams = 32

// maxFDs is the most descriptors proto.Recv takes with a message.
const maxFDs = 8

func parseDatagrams(in []byte) []datagram {
	var ds []datagram
	for len(in) > 0 && len(ds) < maxDatagrams {
		h := in[0]
		d := datagram{nulls: int(h&0x0f) % 11, memfd: h&0x10 != 0, pad: -1}
		d.payload, in = testenv.Chunk(in[1:])
		if d.memfd {
			d.content, in = testenv.Chunk(in)
		}
		if h&0x40 != 0 && len(in) > 0 {
			d.pad, in = int(in[0]%8), in[1:]
			if n := proto.MaxSize - 4 + d.pad; len(d.payload) < n {
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
		h := byte(d.nulls)
		if d.memfd {
			h |= 0x10
		}
		if d.pad >= 0 {
			h |= 0x40
		}
		b = append(b, h)
		put(d.payload)
		if d.memfd {
			put(d.content)
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
	fail := func(err error) {
		proto.CloseFDs(fds)
		t.Fatal(err)
	}
	for range d.nulls {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fail(err)
		}
		fds = append(fds, fd)
	}
	if d.memfd {
		fd, err := unix.MemfdCreate("fuzz", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			fail(err)
		}
		fds = append(fds, fd)
		if _, err := unix.Write(fd, d.content); err != nil {
			fail(err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
			unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
			fail(err)
		}
	}
	return fds
}

// received is what proto.RecvMax(maxBody) makes of d, by the rules of its
// doc comments: ok false for a datagram refused or read as the end.
func (d datagram) received(maxBody int) (env proto.Envelope, fds int, ok bool) {
	fds = d.nulls
	if d.memfd {
		fds++
	}
	if len(d.payload) == 0 || len(d.payload) > proto.MaxSize || fds > maxFDs {
		return proto.Envelope{}, 0, false
	}
	if d.payload[0] == 0 {
		// A binary datagram (proto.SendBinary).
		kind, body, blob, ok := testenv.BinaryDatagram(d.payload)
		if !ok {
			return proto.Envelope{}, 0, false
		}
		env = proto.Envelope{Kind: proto.Kind(kind), Body: body, Blob: blob, Binary: true}
	} else if json.Unmarshal(d.payload, &env) != nil {
		return proto.Envelope{}, 0, false
	}
	if env.Blob {
		if !d.memfd || len(d.content) > maxBody {
			return proto.Envelope{}, 0, false // the body's descriptor is missing, or /dev/null, or over the bound
		}
		env.Body, env.Blob, fds = d.content, false, fds-1
	}
	return env, fds, true
}

// initMayFollow is the order of init's messages as wire.go's comment
// writes it down, apart from FromInit's table: Tap, PTY, Confining,
// Started, each optional but Started and in that order, then Exit; or
// Error in place of any of them after Started's.
func initMayFollow(prev, kind proto.Kind) bool {
	rank := map[proto.Kind]int{"": 0, proto.KindTap: 1, proto.KindPTY: 2, proto.KindConfining: 3, proto.KindStarted: 4}
	r, ok := rank[prev]
	switch kind {
	case proto.KindExit:
		return prev == proto.KindStarted
	case proto.KindError:
		return ok // not after Exit or Error
	}
	next, known := rank[kind]
	return known && kind != "" && ok && r < next
}

// initSends says whether init ever sends kind.
func initSends(kind proto.Kind) bool {
	switch kind {
	case proto.KindTap, proto.KindPTY, proto.KindConfining, proto.KindStarted, proto.KindExit, proto.KindError:
		return true
	}
	return false
}

// initFDs is the most descriptors init sends with kind, as wire.go's
// comment writes it down: Tap (builtin) and PTY one, the rest none.
func initFDs(kind proto.Kind) int {
	if kind == proto.KindTap || kind == proto.KindPTY {
		return 1
	}
	return 0
}

// delivery is one message Receive must deliver.
type delivery struct {
	env     proto.Envelope
	fds     int
	refused bool       // out of order or too many fds: Err set, no fds
	tooMany bool       // refused for its descriptors
	prev    proto.Kind // the kind accepted before it
}

// deliveries is what Receive delivers of ds on FromInit: each message
// proto.Recv takes, until one it refuses (nothing delivered) or one out
// of order (delivered with Err).
func deliveries(ds []datagram) []delivery {
	var out []delivery
	var prev proto.Kind
	for _, d := range ds {
		// What init sends is bounded to one datagram (wire.FromInit.MaxBody).
		env, fds, ok := d.received(proto.MaxSize)
		if !ok {
			break
		}
		if fds > initFDs(env.Kind) {
			out = append(out, delivery{env: env, refused: true, tooMany: true, prev: prev})
			break
		}
		if !initMayFollow(prev, env.Kind) {
			out = append(out, delivery{env: env, refused: true, prev: prev})
			break
		}
		out = append(out, delivery{env: env, fds: fds, prev: prev})
		prev = env.Kind
	}
	return out
}

// consume does with m what parent/run.go does with init's messages
// (decoding its body into the types it decodes for m's kind), and checks
// that each decoding error is one line naming the kind; the descriptors
// are closed, whoever would have had them.
func consume(t *testing.T, m Message) {
	t.Helper()
	defer proto.CloseFDs(m.Fds)
	for _, fd := range m.Fds {
		testenv.CheckReceivedFD(t, fd)
	}
	decode := func(v any) error {
		err := m.Env.Decode(v)
		if err != nil {
			testenv.CheckOneLine(t, string(m.Env.Kind), err)
			if !strings.Contains(err.Error(), string(m.Env.Kind)) {
				t.Fatalf("decoding %q: error %q does not name it", m.Env.Kind, err)
			}
		}
		return err
	}
	switch m.Env.Kind {
	case proto.KindStarted:
		var st ChildStarted // the report's (journal.Report.Started)
		decode(&st)
		var pid struct {
			PID int `json:"pid"`
		}
		decode(&pid)
	case proto.KindExit:
		var ex ChildExit
		if decode(&ex) == nil {
			ex.Status()
		}
	case proto.KindError:
		var ce ChildError
		if err := decode(&ce); err != nil {
			ce = ChildError{Msg: err.Error(), Status: StatusError}
		}
		f := &ChildFailure{E: ce}
		_, _ = f.Error(), f.Status()
	}
}

// recvTimeout bounds the receiving of all of one input's datagrams.
const recvTimeout = 10 * time.Second

// FuzzReceive writes arbitrary datagrams (with /dev/null descriptors and
// sealed memfds attached) into one end of a real socketpair, as a
// compromised init could, and reads them with Receive and FromInit on the
// other, as the parent does, decoding each message as parent/run.go does.
// It checks: no panic; no hang (the sender closes its end; each input is
// bounded by recvTimeout, after which the socket is shut down); Receive
// delivers the messages proto.Recv takes, in order, with their
// descriptors, up to the first it refuses; a message out of the order
// written in wire.go (initMayFollow, independent of FromInit's table) is
// the last delivered, with Err set, its descriptors closed, and an error
// of one printable line naming it and the kind before it; decoding errors
// are one line naming the kind; every descriptor received is handed out
// (open, close-on-exec) or closed: /proc/self/fd counts the same before
// and after.
func FuzzReceive(f *testing.F) {
	for _, s := range receiveSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ds := parseDatagrams(in)
		want := deliveries(ds)
		before := testenv.OpenFDs(t)
		sendFDs := make([][]int, len(ds))
		defer func() {
			for _, fds := range sendFDs {
				proto.CloseFDs(fds)
			}
		}()
		for i, d := range ds {
			sendFDs[i] = d.descriptors(t)
		}
		a, b, err := proto.Pair()
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
		msgs := make(chan Message, len(ds)+1) // never blocks Receive
		go Receive(b, &FromInit, msgs)
		timeout := time.NewTimer(recvTimeout)
		defer timeout.Stop()
		var got []Message
	receiving:
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					break receiving
				}
				got = append(got, m)
			case <-timeout.C:
				// Ends the receive it is blocked in; the channel closes.
				unix.Shutdown(int(b.File().Fd()), unix.SHUT_RDWR)
				for m := range msgs {
					proto.CloseFDs(m.Fds)
				}
				b.Close()
				<-sent
				t.Fatalf("Receive did not end within %v", recvTimeout)
			}
		}
		for i, m := range got {
			if i >= len(want) {
				for _, m := range got[i:] {
					proto.CloseFDs(m.Fds)
				}
				t.Fatalf("message %d: %q delivered (%v), want %d messages", i, m.Env.Kind, m.Err, len(want))
			}
			w := want[i]
			if m.Env.Kind != w.env.Kind || (m.Err != nil) != w.refused {
				proto.CloseFDs(m.Fds)
				t.Fatalf("message %d: got %q, error %v; want %q, refused %v", i, m.Env.Kind, m.Err, w.env.Kind, w.refused)
			}
			if w.refused {
				if m.Fds != nil {
					proto.CloseFDs(m.Fds)
					t.Fatalf("message %d: refused (%v) with %d fds handed out", i, m.Err, len(m.Fds))
				}
				testenv.CheckOneLine(t, fmt.Sprintf("message %d", i), m.Err)
				names := []string{fmt.Sprintf("%q", m.Env.Kind)}
				if w.tooMany {
					names = append(names, "descriptors")
				} else if initSends(m.Env.Kind) {
					if w.prev == "" {
						names = append(names, "nothing")
					} else {
						names = append(names, fmt.Sprintf("%q", w.prev))
					}
				}
				for _, n := range names {
					if !strings.Contains(m.Err.Error(), n) {
						t.Fatalf("message %d: error %q does not name %s", i, m.Err, n)
					}
				}
				continue
			}
			if len(m.Fds) != w.fds || !bytes.Equal(m.Env.Body, w.env.Body) || m.Env.Binary != w.env.Binary {
				proto.CloseFDs(m.Fds)
				t.Fatalf("message %d (%q): %d fds, body %q; want %d, %q", i, m.Env.Kind, len(m.Fds), m.Env.Body, w.fds, w.env.Body)
			}
			consume(t, m)
		}
		if len(got) != len(want) {
			t.Fatalf("%d messages delivered, want %d", len(got), len(want))
		}
		// A sender still sending fails: EPIPE, or ECONNRESET when the
		// receiver closed with datagrams unread.
		b.Close()
		early := len(want) < len(ds) || len(want) > 0 && want[len(want)-1].refused
		if err := <-sent; err != nil {
			if errno := err.(sendError).errno; !early || errno != unix.EPIPE && errno != unix.ECONNRESET {
				t.Fatal(err)
			}
		}
		for _, fds := range sendFDs {
			proto.CloseFDs(fds)
		}
		sendFDs = nil
		if after := testenv.OpenFDs(t); after != before {
			t.Fatalf("%d descriptors open before, %d after", before, after)
		}
	})
}

// sendError is a datagram the sender could not send.
type sendError struct {
	i     int
	errno unix.Errno
}

func (e sendError) Error() string { return fmt.Sprintf("sending datagram %d: %v", e.i, e.errno) }

// sendDatagrams writes each datagram with its descriptors.
func sendDatagrams(fd int, ds []datagram, fds [][]int) error {
	for i, d := range ds {
		var oob []byte
		if len(fds[i]) > 0 {
			oob = unix.UnixRights(fds[i]...)
		}
		if errno := testenv.SendRaw(fd, d.payload, oob); errno != 0 {
			return sendError{i, errno}
		}
	}
	return nil
}

// sentBytes is the datagram proto's Send writes for kind and body.
func sentBytes(f *testing.F, kind proto.Kind, body any) []byte {
	a, b, err := proto.Pair()
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if bin, ok := body.(binaryBody); ok {
		err = a.SendBinary(kind, bin.BinaryMarshaler)
	} else {
		err = a.Send(kind, body)
	}
	if err != nil {
		f.Fatal(err)
	}
	buf := make([]byte, proto.MaxSize)
	n, _, _, _, err := unix.Recvmsg(int(b.File().Fd()), buf, nil, 0)
	if err != nil {
		f.Fatal(err)
	}
	return buf[:n]
}

// binaryBody is a body sentBytes sends in its binary form, as init sends
// Started and Exit.
type binaryBody struct{ encoding.BinaryMarshaler }

// report is an init report as init sends it, with text a compromised init
// could put in it.
func report() *InitReport {
	return &InitReport{
		Steps:     []TimedStep{{At: 1, Msg: "mounted /"}, {At: -1 << 63, Msg: "\x1b]0;title\x07\r\n"}},
		Warnings:  []string{"w", "\x1b[2J"},
		Fallbacks: []Fallback{{Area: "root", Taken: "fuse", Why: "no overlay"}},
		Enter:     "pivot_root",
		Started:   5,
	}
}

// messageSeeds are single messages of every kind, from init and to it,
// valid or not, shared by FuzzReceive and FuzzDecode.
func messageSeeds(f *testing.F) [][]byte {
	return [][]byte{
		sentBytes(f, proto.KindTap, nil),
		sentBytes(f, proto.KindPTY, nil),
		sentBytes(f, proto.KindConfining, nil),
		sentBytes(f, proto.KindStarted, ChildStarted{PID: 2, Init: report()}),
		sentBytes(f, proto.KindExit, ChildExit{Code: 3}),
		sentBytes(f, proto.KindExit, ChildExit{Signal: 9}),
		sentBytes(f, proto.KindError, ChildError{Step: "mounting /", Msg: "no such file", Status: StatusNotFound, Init: report()}),
		sentBytes(f, proto.KindError, ChildError{Step: "\x1b[31m", Msg: "line\nline", Status: -1}),
		sentBytes(f, proto.KindConfig, ChildConfig{Args: []string{"sh"}, Env: []string{"A=b"}, Caps: []int{0}}),
		sentBytes(f, proto.KindNet, NetReady{Err: "down"}),
		sentBytes(f, proto.KindWatched, nil),
		sentBytes(f, proto.KindExec, ExecRequest{Args: []string{"ls"}, TTY: true, Rows: 24}),
		sentBytes(f, proto.KindSignal, Signal{Signal: 15}),
		sentBytes(f, "bogus\n\x1b[2J", "x"),
		[]byte(`{"kind":"config","body":{"seccomp":{"insns":"AAAAAAAAAAA=","flags":1}}}`),
		[]byte(`{"kind":"config","body":{"seccomp":{"insns":"%%%"}}}`),
		[]byte(`{"kind":"exit","body":{"code":1}`), // truncated
		[]byte(`{"kind":"exit","body":}`),
		[]byte(`{"kind":"exit"}`),
		[]byte(`{"kind":"exit","body":null}`),
		[]byte(`{"kind":"exit","body":{"code":1e400}}`),
		[]byte(`{"kind":"exit","body":{"code":"1"}}`),
		[]byte(`{"kind":"started","body":{"init":{"steps":[{},{},{"msg":7}]}}}`),
		[]byte(`{"kind":"error","body":"not an object"}`),
		[]byte(`{"kind":7}`),
		[]byte("{\"kind\":\"\xff\"}"),
		[]byte(`{"kind":"error","body":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`),
		[]byte(`{"kind":"started","body":{"init":` + strings.Repeat(`{"x":`, 500) + "1" + strings.Repeat("}", 500) + `}}`),
		[]byte(`null`),
		{},
	}
}

func receiveSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, s := range messageSeeds(f) {
		seeds = append(seeds, encodeDatagrams(datagram{payload: s, pad: -1}))
	}
	msg := func(kind proto.Kind, body any, nulls int) datagram {
		return datagram{payload: sentBytes(f, kind, body), nulls: nulls, pad: -1}
	}
	tap, pty, confining := msg(proto.KindTap, nil, 1), msg(proto.KindPTY, nil, 1), msg(proto.KindConfining, nil, 0)
	started, exit := msg(proto.KindStarted, ChildStarted{PID: 2, Init: report()}, 0), msg(proto.KindExit, ChildExit{}, 0)
	failed := msg(proto.KindError, ChildError{Msg: "no", Status: StatusError}, 0)
	blob := datagram{payload: []byte(`{"kind":"started","blob":true}`), memfd: true, content: []byte(`{"pid":9}`), pad: -1}
	// Started and Exit in their binary form, as init sends them.
	binStarted := msg(proto.KindStarted, binaryBody{ChildStarted{PID: 2, Init: report()}}, 0)
	binExit := msg(proto.KindExit, binaryBody{ChildExit{Code: 3}}, 0)
	exitForm, _ := ChildExit{Signal: 9}.MarshalBinary()
	binBlob := datagram{payload: append([]byte{0, 4}, "exit\x01"...), memfd: true, content: exitForm, pad: -1}
	seeds = append(seeds,
		encodeDatagrams(binStarted, binExit),
		encodeDatagrams(tap, pty, binStarted, binBlob),
		encodeDatagrams(binStarted, exit),                                                     // a JSON Exit after a binary Started
		encodeDatagrams(binExit),                                                              // out of order
		encodeDatagrams(binStarted, datagram{payload: binExit.payload[:4], pad: -1}),          // cut short
		encodeDatagrams(binStarted, msg(proto.KindExit, binaryBody{ChildStarted{PID: 1}}, 0)), // another message's form
		// Conversations as init has them.
		encodeDatagrams(started, exit),
		encodeDatagrams(tap, pty, confining, started, exit),
		encodeDatagrams(msg(proto.KindTap, nil, 0), failed),
		encodeDatagrams(confining, started, failed),
		encodeDatagrams(blob, exit),
		// Out of order.
		encodeDatagrams(exit),
		encodeDatagrams(started, tap),
		encodeDatagrams(started, exit, exit),
		encodeDatagrams(failed, started),
		encodeDatagrams(pty, tap),
		encodeDatagrams(msg(proto.KindConfig, ChildConfig{}, 2)),
		encodeDatagrams(started, msg("bogus\n", nil, 3)),
		// Descriptors: too many; on messages that carry none; with a body
		// out of band, missing or not named.
		encodeDatagrams(msg(proto.KindPTY, nil, maxFDs+1), exit),
		encodeDatagrams(msg(proto.KindTap, nil, 3), msg(proto.KindStarted, nil, maxFDs), msg(proto.KindError, nil, 5)),
		encodeDatagrams(datagram{payload: blob.payload, nulls: 2, pad: -1}),
		encodeDatagrams(datagram{payload: exit.payload, nulls: 7, memfd: true, pad: -1}),
		// Empty datagrams, read as the end, with and without descriptors.
		encodeDatagrams(datagram{pad: -1}, started),
		encodeDatagrams(datagram{nulls: 2, pad: -1}, started),
		// Around proto.MaxSize: the last that fits, the first refused.
		encodeDatagrams(datagram{payload: started.payload, pad: 4}, exit),
		encodeDatagrams(datagram{payload: started.payload, nulls: 1, pad: 5}, exit),
	)
	return seeds
}

// decodeTargets are the types messages are decoded into, each a new value.
var decodeTargets = []func() any{
	func() any { return new(ChildConfig) },
	func() any { return new(NetReady) },
	func() any { return new(ChildStarted) },
	func() any { return new(ChildExit) },
	func() any { return new(ChildError) },
	func() any { return new(InitReport) },
	func() any { return new(ExecRequest) },
	func() any { return new(Signal) },
	func() any {
		return new(struct {
			PID int `json:"pid"`
		})
	},
}

// FuzzDecode reads arbitrary bytes as an envelope, as proto.Recv does,
// and as the body of a message of each kind, and decodes the body into
// every message type (the parent's, init's, `sandbox exec`'s). It checks:
// no panic; every error is one printable line naming the kind (a
// decoding error ends up in a diagnostic, a refused Error message in
// place of its text); a body decoded is encoded and decoded again to the
// same encoding (the types' own codecs, such as the seccomp program's,
// agree).
func FuzzDecode(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		envs := []proto.Envelope{}
		var env proto.Envelope
		if err := json.Unmarshal(in, &env); err == nil {
			envs = append(envs, env)
		} else {
			testenv.CheckOneLine(t, "envelope", err)
		}
		for _, k := range []proto.Kind{proto.KindStarted, proto.KindExit, proto.KindError, proto.KindConfig, proto.KindExec, "\n\x1b"} {
			envs = append(envs, proto.Envelope{Kind: k, Body: in})
		}
		for _, env := range envs {
			for _, target := range decodeTargets {
				v := target()
				err := env.Decode(v)
				if err != nil {
					testenv.CheckOneLine(t, fmt.Sprintf("%q as %T", env.Kind, v), err)
					if !strings.Contains(err.Error(), fmt.Sprintf("%q", env.Kind)) {
						t.Fatalf("%q as %T: error %q does not name the kind", env.Kind, v, err)
					}
					continue
				}
				switch v := v.(type) {
				case *ChildExit:
					v.Status()
				case *ChildError:
					f := &ChildFailure{E: *v}
					_, _ = f.Error(), f.Status()
				}
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatalf("%T decoded from %q: encoding: %v", v, env.Body, err)
				}
				again := target()
				if err := json.Unmarshal(b, again); err != nil {
					t.Fatalf("%T: %q, encoded from %q, does not decode: %v", v, b, env.Body, err)
				}
				if b2, err := json.Marshal(again); err != nil || !bytes.Equal(b, b2) {
					t.Fatalf("%T: %q decodes and encodes to %q, %v", v, b, b2, err)
				}
			}
		}
	})
}
