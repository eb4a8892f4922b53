// Package wire is every message between `sandbox run` (the parent) and
// sandbox-init (PID 1 of the sandbox), and between `sandbox exec` and
// init: their types, the order they come in, and the exit statuses and
// fd numbers both sides agree on. It is the one place the protocol is
// written down; internal/proto is only its framing (one JSON document
// per SOCK_SEQPACKET datagram, fds by SCM_RIGHTS, big bodies in a sealed
// memfd, MaxSize and MaxBlob). Config, Net, Started and Exit
// between the parent and init travel in a binary form of their own
// (binary.go).
//
// The run's conversation, on the socketpair at init's fd 3:
//
//	parent → init    Config     after both id maps are written; init blocks
//	                            reading it, so it never acts unmapped. It
//	                            carries the exec socket and the parent's
//	                            user namespace as fds.
//	init   → parent  Tap        (slirp4netns, builtin) init made the tap: its
//	                            fd (builtin), or none (persistent, by name)
//	parent → init    Net        (pasta, or after Tap) the network is up, or
//	                            why not; init waits for it once its root is
//	                            built, before the payload starts
//	init   → parent  PTY        (only with a terminal) the pty master, as an fd
//	init   → parent  Confining  (ChildConfig.SeccompWatch) init is about to
//	                            install a seccomp filter on itself: from
//	                            here to Started (a fork and an exec) a
//	                            user's profile may block it, so the parent
//	                            bounds that time
//	parent → init    Watched    the parent has looked at init's threads; only
//	                            then does init install the filter, so that a
//	                            runtime thread the filter kills at once was
//	                            seen alive, and is noticed gone
//	init   → parent  Started    the payload runs (its pid inside), with
//	                            init's share of the run report when the run
//	                            writes one (Config's Report)
//	parent → init    Signal     any number, once Started came: a signal the
//	                            parent caught (Forwarded, JobControl), for
//	                            the payload. Init passes on no signal sent
//	                            to itself: any process inside may signal
//	                            PID 1, and only the parent speaks for the
//	                            caller
//	init   → parent  Exit       the payload ended (status or signal)
//	init   → parent  Error      instead of any of the above: the step that
//	                            failed and why, with init's share of the
//	                            report up to there; init exits right after
//
// EOF without Exit or Error means init died (killed); the parent then
// reports init's own wait status.
//
// `sandbox exec`, on a connection to the sandbox's exec socket:
//
//	client → init    Exec       the command, with the client's user namespace
//	                            as the first fd, then stdin, stdout, stderr
//	                            (unless it asks for a terminal)
//	client → init    Signal     any number, for the command
//	init   → client  PTY        (only with a terminal) the pty master
//	init   → client  Started    the command runs
//	init   → client  Exit       it ended; or Error instead of any of these
//
// Each side reads through a Sequence, which refuses a message that may not
// come where it came and names both kinds, or that carries more
// descriptors than its kind does (Rule.FDs); what init sends is bounded
// to one datagram (Order.MaxBody).
//
// Parent and init import this package and never each other.
package wire

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"sandbox/internal/proto"
)

// Order is one direction of a conversation: the kinds that may come
// (Kinds); nothing may follow a kind in Final. Its tables are slices, not
// maps, so that they are data the linker lays out, not code every start
// of sandbox and of init runs at package initialisation.
type Order struct {
	Name  string // who sends, for errors: "init", "the parent", …
	Kinds []Rule // a kind not here may not come at all
	Final []proto.Kind
	// MaxBody bounds a message's body (0: proto.MaxBlob). What init sends
	// fits one datagram (its share of the report is bounded to), so a
	// peer inside the sandbox gets no 64 MiB body decoded on the host.
	MaxBody int64
}

// Rule is one kind of a direction: the kinds that may come right before
// it ("" for none: it may be the first), and the most descriptors it
// carries (a message with more broke the protocol, and its fds are
// closed).
type Rule struct {
	Kind  proto.Kind
	After []proto.Kind
	FDs   int
}

// rule is kind's rule in o; false for a kind o never sends.
func (o *Order) rule(kind proto.Kind) (Rule, bool) {
	for _, r := range o.Kinds {
		if r.Kind == kind {
			return r, true
		}
	}
	return Rule{}, false
}

func (o *Order) maxBody() int64 {
	if o.MaxBody > 0 {
		return o.MaxBody
	}
	return proto.MaxBlob
}

// The four directions of the two conversations.
var (
	// FromParent: what init accepts from the parent.
	FromParent = Order{Name: "the parent", Kinds: []Rule{
		{Kind: proto.KindConfig, After: []proto.Kind{""}, FDs: 2},
		{Kind: proto.KindNet, After: []proto.Kind{proto.KindConfig}},
		{Kind: proto.KindWatched, After: []proto.Kind{proto.KindConfig, proto.KindNet}},
		{Kind: proto.KindSignal, After: []proto.Kind{proto.KindConfig, proto.KindNet, proto.KindWatched, proto.KindSignal}},
	}}

	// FromInit: what the parent accepts from init.
	FromInit = Order{Name: "init", Kinds: []Rule{
		{Kind: proto.KindTap, After: []proto.Kind{""}, FDs: 1},
		{Kind: proto.KindPTY, After: []proto.Kind{"", proto.KindTap}, FDs: 1},
		{Kind: proto.KindConfining, After: []proto.Kind{"", proto.KindTap, proto.KindPTY}},
		{Kind: proto.KindStarted, After: []proto.Kind{"", proto.KindTap, proto.KindPTY, proto.KindConfining}},
		{Kind: proto.KindExit, After: []proto.Kind{proto.KindStarted}},
		{Kind: proto.KindError, After: []proto.Kind{"", proto.KindTap, proto.KindPTY, proto.KindConfining, proto.KindStarted}},
	}, Final: []proto.Kind{proto.KindExit, proto.KindError}, MaxBody: proto.MaxSize}

	// FromExecClient: what init accepts from a `sandbox exec` client.
	FromExecClient = Order{Name: "the exec client", Kinds: []Rule{
		{Kind: proto.KindExec, After: []proto.Kind{""}, FDs: 4}, // its user namespace, stdin, stdout, stderr
		{Kind: proto.KindSignal, After: []proto.Kind{proto.KindExec, proto.KindSignal}},
	}}

	// FromExecServer: what `sandbox exec` accepts from init.
	FromExecServer = Order{Name: "the sandbox's init", Kinds: []Rule{
		{Kind: proto.KindPTY, After: []proto.Kind{""}, FDs: 1},
		{Kind: proto.KindStarted, After: []proto.Kind{"", proto.KindPTY}},
		{Kind: proto.KindExit, After: []proto.Kind{proto.KindStarted}},
		{Kind: proto.KindError, After: []proto.Kind{"", proto.KindPTY, proto.KindStarted}},
	}, Final: []proto.Kind{proto.KindExit, proto.KindError}, MaxBody: proto.MaxSize}
)

// Sequence checks the messages of one direction as they arrive.
type Sequence struct {
	order *Order
	last  proto.Kind
	ended bool
}

// NewSequence starts reading one direction of a conversation.
func NewSequence(o *Order) *Sequence { return &Sequence{order: o} }

// Next accepts kind as the next message, or says why it may not come now,
// naming it and the one before it.
func (s *Sequence) Next(kind proto.Kind) error { return s.accept(kind, 0) }

// Check accepts a message of kind with nfds descriptors as the next one:
// Next, and no more descriptors than the kind carries.
func (s *Sequence) Check(kind proto.Kind, nfds int) error { return s.accept(kind, nfds) }

// accept is Check, with the kind's rule looked up once.
func (s *Sequence) accept(kind proto.Kind, nfds int) error {
	r, ok := s.order.rule(kind)
	switch {
	case nfds > r.FDs:
		return fmt.Errorf("protocol error: %s sent %q with %d descriptors (it carries at most %d)", s.order.Name, kind, nfds, r.FDs)
	case !ok:
		return fmt.Errorf("protocol error: %s sent a %q message, which it never sends", s.order.Name, kind)
	case s.ended:
		return fmt.Errorf("protocol error: %s sent %q after its last message %q", s.order.Name, kind, s.last)
	case !slices.Contains(r.After, s.last):
		return fmt.Errorf("protocol error: %s sent %q after %s (expected %s)", s.order.Name, kind, describe(s.last), s.expected())
	}
	s.last, s.ended = kind, slices.Contains(s.order.Final, kind)
	return nil
}

// Recv receives the next message on c, bounded as this direction's
// messages are (Order.MaxBody), and checks it (Check); a message refused
// has its descriptors closed.
func (s *Sequence) Recv(c *proto.Conn) (proto.Envelope, []int, error) {
	env, fds, err := c.RecvMax(s.order.maxBody())
	if err != nil {
		return env, nil, err
	}
	if err := s.Check(env.Kind, len(fds)); err != nil {
		proto.CloseFDs(fds)
		return env, nil, &ProtocolError{err}
	}
	return env, fds, nil
}

// ProtocolError is a message that may not come where it came (Sequence.Recv),
// as opposed to a connection that failed or ended.
type ProtocolError struct{ Err error }

func (e *ProtocolError) Error() string { return e.Err.Error() }
func (e *ProtocolError) Unwrap() error { return e.Err }

// Expect receives the next message on c, which must be one of want and
// allowed at this point of the conversation.
func (s *Sequence) Expect(c *proto.Conn, want ...proto.Kind) (proto.Envelope, []int, error) {
	env, fds, err := s.Recv(c)
	if err != nil {
		return env, nil, err
	}
	if len(want) > 0 && !slices.Contains(want, env.Kind) {
		proto.CloseFDs(fds)
		return env, nil, fmt.Errorf("protocol error: %s sent %q where %s was expected", s.order.Name, env.Kind, quoteKinds(want))
	}
	return env, fds, nil
}

// expected lists the kinds that may follow the last one.
func (s *Sequence) expected() string {
	var next []proto.Kind
	for _, r := range s.order.Kinds {
		if slices.Contains(r.After, s.last) {
			next = append(next, r.Kind)
		}
	}
	slices.Sort(next)
	return quoteKinds(next)
}

func describe(k proto.Kind) string {
	if k == "" {
		return "nothing"
	}
	return fmt.Sprintf("%q", k)
}

func quoteKinds(ks []proto.Kind) string {
	if len(ks) == 0 {
		return "nothing"
	}
	q := make([]string, len(ks))
	for i, k := range ks {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, " or ")
}

// Message is one message received, with its descriptors; Err, on the last
// one, is why the conversation stopped early (a message out of order).
type Message struct {
	Env proto.Envelope
	Fds []int
	Err error
}

// Receive delivers the messages of one direction, in order, until EOF, a
// receive error (a body over the direction's bound among them) or a
// message out of order or with more descriptors than its kind carries
// (delivered with Err set, its descriptors closed), then closes out.
func Receive(c *proto.Conn, o *Order, out chan<- Message) {
	defer close(out)
	seq := NewSequence(o)
	for {
		env, fds, err := seq.Recv(c)
		var perr *ProtocolError
		if errors.As(err, &perr) {
			out <- Message{Env: env, Err: perr.Err}
			return
		}
		if err != nil {
			return
		}
		out <- Message{Env: env, Fds: fds}
	}
}
