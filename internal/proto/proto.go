// Package proto is the framing of sandbox's internal messages: between
// `sandbox run` (the parent) and sandbox-init, `sandbox exec` and init, the
// parent and the builtin network helper, over SOCK_SEQPACKET sockets.
//
// A SEQPACKET socket keeps message boundaries, so one message is one JSON
// document in one datagram, optionally carrying file descriptors
// (SCM_RIGHTS). Datagrams are capped at MaxSize; a larger body (a long
// command line) travels in a sealed memfd, up to MaxBlob.
//
// The run's hot messages between the parent and init, two programs of one
// build, may instead carry a body in a binary form of its own
// (SendBinary): a datagram that starts with a NUL byte, which no JSON
// document does. Every receiver reads both forms; Decode gives a binary
// body only to a type with a binary form (encoding.BinaryUnmarshaler).
//
// The conversations it carries (the run's, `sandbox exec`'s) are written
// down in internal/wire; the builtin network helper's in netns.
package proto

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MaxSize bounds one datagram. It must fit the socket's send buffer
// (net.core.wmem_default, 208 KiB on most hosts).
const MaxSize = 192 << 10

// MaxBlob bounds a message body sent out of band. A body over MaxSize (a
// configuration with a long command line: the kernel takes up to 6 MiB of
// arguments and environment, a quarter of the stack limit) goes in a
// sealed memfd sent with the message, as its last descriptor; JSON may
// escape a byte as six.
const MaxBlob = 64 << 20

// blobLimit is MaxBlob; tests lower it.
var blobLimit int64 = MaxBlob

// maxFDs is the most descriptors one message carries (an exec request:
// the user namespace, stdin, stdout, stderr; and a blob).
const maxFDs = 8

// Kind names a message type.
type Kind string

// Message kinds, in protocol order.
const (
	KindConfig    Kind = "config"
	KindPTY       Kind = "pty"
	KindStarted   Kind = "started"
	KindConfining Kind = "confining"
	KindExit      Kind = "exit"
	KindError     Kind = "error"
	KindTap       Kind = "tap"     // child → parent: the tap made for the builtin network driver
	KindNet       Kind = "net"     // parent → child: the network is up (or why not)
	KindWatched   Kind = "watched" // parent → child: it looked at init's threads (after Confining)

	// `sandbox exec` → init, on a connection to the exec socket: Exec
	// (the command, with the client's user namespace as the first fd, then
	// stdin, stdout, stderr unless it asks for a terminal), then any
	// number of Signal. init answers PTY (with a
	// terminal), Started, then Exit; or Error.
	KindExec   Kind = "exec"
	KindSignal Kind = "signal"

	// parent ↔ sandbox-netstack, after Config, Tap and Started: Blocked
	// (helper → parent, each blocked attempt as it happens), Stop (parent
	// → helper: the sandbox ended), Stats (helper → parent: everything
	// blocked, the answer to Stop).
	KindBlocked Kind = "blocked"
	KindStop    Kind = "stop"
	KindStats   Kind = "stats"
)

// Envelope is the wire form: a kind and its body.
type Envelope struct {
	Kind Kind            `json:"kind"`
	Body json.RawMessage `json:"body,omitempty"`
	// Blob: the body is in a sealed memfd, the last descriptor sent;
	// Recv puts it back into Body.
	Blob bool `json:"blob,omitempty"`
	// Escaped: every string in Body is escaped (escape.go), as one of
	// them is not UTF-8; Decode restores them. On the wire such a body is
	// "ebody" (or "eblob"), which a peer of an older build does not read:
	// it refuses the message rather than take the escaped text for the
	// strings (a `sandbox exec` newer than the sandbox it enters).
	Escaped bool `json:"-"`
	// Binary: Body is a binary form (SendBinary), not JSON.
	Binary bool `json:"-"`
}

// A binary datagram (SendBinary): binaryMark, the kind's length (one
// byte) and the kind, a flags byte (binaryBlob: the body is in a sealed
// memfd, the last descriptor), then the body.
const (
	binaryMark = 0x00
	binaryBlob = 0x01
)

// wireEnvelope is Envelope as it is read (marshal writes the same keys).
type wireEnvelope struct {
	Kind  Kind            `json:"kind"`
	Body  json.RawMessage `json:"body"`
	Blob  bool            `json:"blob"`
	EBody json.RawMessage `json:"ebody"`
	EBlob bool            `json:"eblob"`
}

// Conn is one end of the socketpair.
type Conn struct {
	f *os.File
}

// Pair returns two connected ends. Both are close-on-exec; the caller hands
// one to the child explicitly (exec.Cmd.ExtraFiles).
func Pair() (parent, child *Conn, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return &Conn{os.NewFile(uintptr(fds[0]), "sandbox-parent")},
		&Conn{os.NewFile(uintptr(fds[1]), "sandbox-child")}, nil
}

// FromFD wraps an inherited descriptor.
func FromFD(fd int) *Conn { return &Conn{os.NewFile(uintptr(fd), "sandbox-sock")} }

// File returns the underlying file (to pass it to a child).
func (c *Conn) File() *os.File { return c.f }

// Close closes the connection.
func (c *Conn) Close() error { return c.f.Close() }

// Send writes one message with optional file descriptors. The body is
// a value to encode, or Encoded (by Encode, ahead of the send).
func (c *Conn) Send(kind Kind, body any, fds ...int) error {
	enc, ok := body.(Encoded)
	if !ok && body != nil {
		var err error
		if enc, err = Encode(body); err != nil {
			return fmt.Errorf("encoding %s message: %w", kind, err)
		}
	}
	return c.send(Envelope{Kind: kind, Body: enc.body, Escaped: enc.escaped}, fds)
}

// SendBinary is Send for a body with a binary form of its own, which the
// receiver decodes without JSON: for the run's messages between the parent
// and init only (the same build on both ends), whose JSON cost init ~1.7
// ms of a run's start (a cold decoder's reflection over the config's
// types). The exec socket's peers, of any build, keep JSON.
func (c *Conn) SendBinary(kind Kind, body encoding.BinaryMarshaler, fds ...int) error {
	if len(kind) > 255 {
		return fmt.Errorf("message kind %q is too long", kind)
	}
	b, err := body.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encoding %s message: %w", kind, err)
	}
	return c.send(Envelope{Kind: kind, Body: b, Binary: true}, fds)
}

// send writes env as one datagram, its body in a sealed memfd if the
// datagram would be over MaxSize.
func (c *Conn) send(env Envelope, fds []int) error {
	kind := env.Kind
	b, err := env.marshal()
	if err != nil {
		return fmt.Errorf("encoding %s message: %w", kind, err)
	}
	if len(b) > MaxSize {
		if int64(len(env.Body)) > blobLimit {
			return fmt.Errorf("%s message is %d bytes, over the %d byte limit", kind, len(env.Body), blobLimit)
		}
		blob, err := writeBlob(env.Body)
		if err != nil {
			return fmt.Errorf("sending %s message: %w", kind, err)
		}
		defer unix.Close(blob) // the peer has its own copy once sent
		env.Body, env.Blob = nil, true
		if b, err = env.marshal(); err != nil {
			return fmt.Errorf("encoding %s message: %w", kind, err)
		}
		fds = append(fds[:len(fds):len(fds)], blob)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	raw, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("sending %s message: %w", kind, err)
	}
	return nil
}

// marshal is json.Marshal(e) for a Body that is valid compact JSON, which
// json.Marshal would scan again (a config is ~10 KB) only to copy it; or
// the binary datagram of a binary body.
func (e Envelope) marshal() ([]byte, error) {
	if e.Binary {
		b := make([]byte, 0, 3+len(e.Kind)+len(e.Body))
		b = append(append(append(b, binaryMark, byte(len(e.Kind))), e.Kind...), 0)
		if e.Blob {
			b[len(b)-1] = binaryBlob
		}
		return append(b, e.Body...), nil
	}
	kind, err := quoteKind(e.Kind)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(kind)+len(e.Body)+32)
	b = append(append(b, `{"kind":`...), kind...)
	bodyKey, blobKey := `,"body":`, `,"blob":true`
	if e.Escaped {
		bodyKey, blobKey = `,"ebody":`, `,"eblob":true`
	}
	if len(e.Body) > 0 {
		b = append(append(b, bodyKey...), e.Body...)
	}
	if e.Blob {
		b = append(b, blobKey...)
	}
	return append(b, '}'), nil
}

// quoteKind is the kind as a JSON string: quoted as it is when it is
// lower-case letters, as every Kind of this package (no encoder's first
// use in init for a message without a body); json.Marshal otherwise.
func quoteKind(k Kind) ([]byte, error) {
	for i := 0; i < len(k); i++ {
		if k[i] < 'a' || k[i] > 'z' {
			return json.Marshal(k)
		}
	}
	return append(append(append(make([]byte, 0, len(k)+2), '"'), k...), '"'), nil
}

// afterPeek, when set (by a test), runs between RecvMax's peek and read.
var afterPeek func()

// ErrClosed is returned by Recv when the peer closed its end.
var ErrClosed = errors.New("peer closed the connection")

// Recv reads one message and any descriptors sent with it (close-on-exec).
func (c *Conn) Recv() (Envelope, []int, error) { return c.RecvMax(MaxBlob) }

// RecvMax is Recv with a body of at most maxBody bytes (MaxSize or less:
// one datagram, no body out of band), for a peer that is not trusted with
// more: what is received is decoded, at many times its size.
func (c *Conn) RecvMax(maxBody int64) (Envelope, []int, error) {
	oob := make([]byte, unix.CmsgSpace(maxFDs*4))
	raw, err := c.f.SyscallConn()
	if err != nil {
		return Envelope{}, nil, err
	}
	var buf []byte
	var n, oobn, flags int
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		// A peer that closed with a message of ours unread makes the
		// kernel say ECONNRESET once, before the messages the peer sent
		// (still queued: often the error it exited with), and the close
		// may come between our peek and our read: read on, a bounded
		// number of times (each close is reported once).
		for resets := 0; ; resets++ {
			// The message's length first (a datagram's whole length,
			// with MSG_TRUNC), so that the buffer is its size, not
			// MaxSize: most messages are a few hundred bytes.
			var size int
			size, _, _, _, rerr = unix.Recvmsg(int(fd), nil, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
			if rerr == nil {
				if afterPeek != nil {
					afterPeek()
				}
				buf = make([]byte, min(size, MaxSize+1))
				n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
			}
			if rerr != unix.ECONNRESET || resets == 2 {
				return rerr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return Envelope{}, nil, fmt.Errorf("receiving message: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return Envelope{}, nil, fmt.Errorf("parsing control message: %w", err)
		}
		for _, m := range msgs {
			rights, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	if n == 0 {
		CloseFDs(fds)
		return Envelope{}, nil, ErrClosed
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > MaxSize {
		CloseFDs(fds)
		return Envelope{}, nil, fmt.Errorf("message over the %d byte limit", MaxSize)
	}
	env, err := parseEnvelope(buf[:n])
	if err != nil {
		CloseFDs(fds)
		return Envelope{}, nil, err
	}
	if env.Blob {
		// The kind is quoted in errors: it is the peer's text, which must
		// not put lines or terminal controls into the one-line diagnostic.
		if len(fds) == 0 {
			return Envelope{}, nil, fmt.Errorf("%q message: its body's descriptor is missing", env.Kind)
		}
		blob := fds[len(fds)-1]
		fds = fds[:len(fds)-1]
		env.Body, err = readBlob(blob, min(maxBody, blobLimit))
		unix.Close(blob)
		if err != nil {
			CloseFDs(fds)
			return Envelope{}, nil, fmt.Errorf("%q message: %w", env.Kind, err)
		}
		env.Blob = false
	}
	return env, fds, nil
}

// parseEnvelope reads a datagram: a binary one (binaryMark) or JSON.
func parseEnvelope(b []byte) (Envelope, error) {
	if b[0] == binaryMark {
		if len(b) < 3 || len(b) < 3+int(b[1]) {
			return Envelope{}, errors.New("decoding message: a binary message cut short")
		}
		k := int(b[1])
		env := Envelope{Kind: Kind(b[2 : 2+k]), Binary: true}
		switch b[2+k] {
		case 0:
			env.Body = b[3+k:]
		case binaryBlob:
			if len(b) > 3+k {
				return Envelope{}, fmt.Errorf("%q message: a body both inline and out of band", env.Kind)
			}
			env.Blob = true
		default:
			return Envelope{}, fmt.Errorf("%q message: unknown flags %#x", env.Kind, b[2+k])
		}
		return env, nil
	}
	var we wireEnvelope
	if err := json.Unmarshal(b, &we); err != nil {
		return Envelope{}, fmt.Errorf("decoding message: %w", err)
	}
	env := Envelope{Kind: we.Kind, Body: we.Body, Blob: we.Blob}
	if we.EBody != nil || we.EBlob {
		if we.Body != nil || we.Blob {
			return Envelope{}, fmt.Errorf("%q message: both a plain and an escaped body", env.Kind)
		}
		env.Body, env.Blob, env.Escaped = we.EBody, we.EBlob, true
	}
	return env, nil
}

// blobSeals make a memfd immutable: the receiver reads what was sent.
const blobSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// writeBlob returns a sealed memfd holding b.
func writeBlob(b []byte) (int, error) {
	fd, err := unix.MemfdCreate("sandbox-message", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	for off := 0; off < len(b); {
		n, err := unix.Write(fd, b[off:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("writing the memfd: %w", err)
		}
		off += n
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, blobSeals); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("sealing the memfd: %w", err)
	}
	return fd, nil
}

// readBlob reads a body sent by writeBlob: only a sealed memfd (so a
// reader can neither block on it nor see it change) of at most limit bytes.
func readBlob(fd int, limit int64) ([]byte, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || seals&blobSeals != blobSeals {
		return nil, fmt.Errorf("its body is not in a sealed memfd (seals %#x, %v)", seals, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fstat: %w", err)
	}
	if st.Size > limit {
		return nil, fmt.Errorf("its body is %d bytes, over the %d byte limit", st.Size, limit)
	}
	b := make([]byte, st.Size)
	for off := 0; off < len(b); {
		n, err := unix.Pread(fd, b[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading its body: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("its body ended after %d of %d bytes", off, len(b))
		}
		off += n
	}
	return b, nil
}

// Decode unmarshals a message body into v (a pointer to a zero value: an
// escaped body's strings are restored wherever they are in *v), byte for
// byte as it was sent; a binary body only into a v with a binary form.
func (e Envelope) Decode(v any) error {
	var err error
	if e.Binary {
		u, ok := v.(encoding.BinaryUnmarshaler)
		if !ok {
			return fmt.Errorf("decoding %q message: a binary body for %T, which has no binary form", e.Kind, v)
		}
		err = u.UnmarshalBinary(e.Body)
	} else if err = json.Unmarshal(e.Body, v); err == nil && e.Escaped {
		err = unescapeInto(v)
	}
	if err != nil {
		return fmt.Errorf("decoding %q message: %w", e.Kind, err) // quoted: the peer's text, as in Recv
	}
	return nil
}

// CloseFDs closes received descriptors nobody will use.
func CloseFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
