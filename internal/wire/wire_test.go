package wire

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"sandbox/confine"
	"sandbox/internal/proto"
	"sandbox/rootfs"
	"sandbox/seccomp/bpf"
)

func TestSequenceOrder(t *testing.T) {
	ok := [][]proto.Kind{
		{proto.KindStarted, proto.KindExit},
		{proto.KindTap, proto.KindPTY, proto.KindConfining, proto.KindStarted, proto.KindExit},
		{proto.KindError},
		{proto.KindTap, proto.KindError},
	}
	for _, kinds := range ok {
		s := NewSequence(&FromInit)
		for _, k := range kinds {
			if err := s.Next(k); err != nil {
				t.Errorf("%v: %v", kinds, err)
			}
		}
	}
	bad := []struct {
		kinds []proto.Kind
		want  string
	}{
		{[]proto.Kind{proto.KindExit}, `init sent "exit" after nothing (expected`},
		{[]proto.Kind{proto.KindStarted, proto.KindTap}, `init sent "tap" after "started" (expected "error" or "exit")`},
		{[]proto.Kind{proto.KindStarted, proto.KindExit, proto.KindExit}, `init sent "exit" after its last message "exit"`},
		{[]proto.Kind{proto.KindConfig}, `init sent a "config" message, which it never sends`},
		{[]proto.Kind{proto.KindPTY, proto.KindTap}, `init sent "tap" after "pty"`},
	}
	for _, c := range bad {
		s := NewSequence(&FromInit)
		var err error
		for _, k := range c.kinds {
			if err = s.Next(k); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.kinds, err, c.want)
		}
	}
}

func TestExpect(t *testing.T) {
	a, b, err := proto.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Send(proto.KindNet, NetReady{}); err != nil {
		t.Fatal(err)
	}
	// Net before Config: refused, naming both.
	if _, _, err := NewSequence(&FromParent).Expect(b, proto.KindConfig); err == nil ||
		!strings.Contains(err.Error(), `the parent sent "net" after nothing (expected "config")`) {
		t.Fatalf("net first: %v", err)
	}
	a.Send(proto.KindConfig, ChildConfig{Hostname: "h"})
	s := NewSequence(&FromParent)
	env, _, err := s.Expect(b, proto.KindConfig)
	var cfg ChildConfig
	if err != nil || env.Decode(&cfg) != nil || cfg.Hostname != "h" {
		t.Fatalf("config: %v %+v", err, cfg)
	}
	// Allowed by the order but not what the reader waits for.
	a.Send(proto.KindNet, NetReady{})
	if _, _, err := s.Expect(b, proto.KindConfig); err == nil || !strings.Contains(err.Error(), `sent "net" where "config" was expected`) {
		t.Fatalf("unexpected kind: %v", err)
	}
}

// TestParentSignals: the parent's Signal messages come after what init
// reads before the payload starts (Config, Net, Watched), never before
// Config, and nothing of that comes after them.
func TestParentSignals(t *testing.T) {
	if err := NewSequence(&FromParent).Next(proto.KindSignal); err == nil || !strings.Contains(err.Error(), `the parent sent "signal" after nothing`) {
		t.Fatalf("signal before config: %v", err)
	}
	for _, ks := range [][]proto.Kind{
		{proto.KindConfig, proto.KindSignal, proto.KindSignal},
		{proto.KindConfig, proto.KindNet, proto.KindSignal},
		{proto.KindConfig, proto.KindNet, proto.KindWatched, proto.KindSignal, proto.KindSignal},
	} {
		s := NewSequence(&FromParent)
		for _, k := range ks {
			if err := s.Next(k); err != nil {
				t.Fatalf("%v: %s: %v", ks, k, err)
			}
		}
		for _, k := range []proto.Kind{proto.KindConfig, proto.KindNet, proto.KindWatched} {
			if err := s.Next(k); err == nil {
				t.Fatalf("%v: %s after a signal was accepted", ks, k)
			}
		}
	}
}

func TestChildExitStatus(t *testing.T) {
	if got := (ChildExit{Code: 3}).Status(); got != 3 {
		t.Errorf("code 3: %d", got)
	}
	if got := (ChildExit{Signal: 9}).Status(); got != 137 {
		t.Errorf("signal 9: %d", got)
	}
}

// TestReceiveBoundsInit: init's messages carry no more descriptors than
// their kind does (planted ones were left open in the parent for the
// whole run), and no body beyond one datagram (a 64 MiB body out of band
// was decoded on the host at ~45 times its size).
func TestReceiveBoundsInit(t *testing.T) {
	fdsOpen := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	receive := func(send func(a *proto.Conn) error) []Message {
		a, b, err := proto.Pair()
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := send(a); err != nil {
			t.Fatal(err)
		}
		a.Close()
		msgs := make(chan Message, 4)
		Receive(b, &FromInit, msgs) // until EOF: a has sent all and closed
		var got []Message
		for m := range msgs {
			got = append(got, m)
		}
		return got
	}
	before := fdsOpen()
	got := receive(func(a *proto.Conn) error {
		return a.Send(proto.KindStarted, ChildStarted{PID: 2}, int(null.Fd()), int(null.Fd()))
	})
	if len(got) != 1 || got[0].Err == nil || got[0].Fds != nil ||
		!strings.Contains(got[0].Err.Error(), `init sent "started" with 2 descriptors (it carries at most 0)`) {
		t.Fatalf("started with two fds: %+v", got)
	}
	if n := fdsOpen(); n != before {
		t.Errorf("%d fds open after the refused message, %d before", n, before)
	}
	// A PTY carries one: delivered.
	got = receive(func(a *proto.Conn) error { return a.Send(proto.KindPTY, nil, int(null.Fd())) })
	if len(got) != 1 || got[0].Err != nil || len(got[0].Fds) != 1 {
		t.Fatalf("pty with its fd: %+v", got)
	}
	proto.CloseFDs(got[0].Fds)

	big := ChildError{Msg: strings.Repeat("x", proto.MaxSize+1)} // sent out of band
	got = receive(func(a *proto.Conn) error { return a.Send(proto.KindError, big) })
	if len(got) != 0 {
		t.Fatalf("an error message over one datagram from init: delivered %d messages", len(got))
	}
	if n := fdsOpen(); n != before {
		t.Errorf("%d fds open after the refused body, %d before", n, before)
	}
	// The parent's configuration may be that big (a long command line).
	a, b, err := proto.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	long := ChildConfig{Hostname: "h", Args: []string{strings.Repeat("y", proto.MaxSize+1)}}
	go a.Send(proto.KindConfig, long)
	env, _, err := NewSequence(&FromParent).Expect(b, proto.KindConfig)
	var cfg ChildConfig
	if err != nil || env.Decode(&cfg) != nil || len(cfg.Args) != 1 || len(cfg.Args[0]) != proto.MaxSize+1 {
		t.Fatalf("a configuration over one datagram: %v", err)
	}
}

// TestChildFailureOneLine: init's error text is printed by the parent as
// the one line of its diagnostic; control characters in it are escaped.
func TestChildFailureOneLine(t *testing.T) {
	f := &ChildFailure{E: ChildError{Step: "step\r", Msg: "a\nsandbox: fake\x1b[2J\u2028\u0085\x7f\tend"}}
	want := `step\r: a\nsandbox: fake\x1b[2J\u2028\u0085\x7f` + "\tend"
	if got := f.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := (&ChildFailure{E: ChildError{Step: "mounting", Msg: "überall /tmp: denied"}}).Error(); got != "mounting: überall /tmp: denied" {
		t.Errorf("printable text changed: %q", got)
	}
}

// TestConfigKeepsEveryByte: a configuration whose arguments, variables,
// paths and Landlock rules are not UTF-8 (a directory named in Latin-1,
// say) reaches init byte for byte; encoding/json alone turns each such
// byte into U+FFFD, and a run from such a directory failed: the plan's
// bind of it named a path that does not exist.
func TestConfigKeepsEveryByte(t *testing.T) {
	in := ChildConfig{
		Args: []string{"plain", "x\xff\xfey", "", "é\x80", `back\slash`},
		Env:  []string{"A=1", "K=\xc3"},
		Plan: &rootfs.Plan{
			Chdir: "/src/caf\xe9",
			Steps: []rootfs.Step{{Op: rootfs.OpBind, Source: "/src/caf\xe9", Target: "/src/caf\xe9"},
				{Op: rootfs.OpOverlay, Target: "/usr", Lower: []string{"/usr", "/l\\x41\xfe"}}},
		},
		Landlock: &confine.LandlockRules{WritableDirs: []string{"/w\xe9"}},
		Seccomp:  &bpf.Program{Instructions: []bpf.Instruction{{Code: 6, Jt: 1, Jf: 2, K: 0x7fff0000}}, Flags: 4},
	}
	parent, child, err := proto.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	defer child.Close()
	enc, err := proto.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Send(proto.KindConfig, enc); err != nil {
		t.Fatal(err)
	}
	env, _, err := child.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var out ChildConfig
	if err := env.Decode(&out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Args, in.Args) || !reflect.DeepEqual(out.Env, in.Env) ||
		!reflect.DeepEqual(out.Plan, in.Plan) || !reflect.DeepEqual(out.Landlock, in.Landlock) ||
		!reflect.DeepEqual(out.Seccomp, in.Seccomp) {
		t.Errorf("round trip:\n got %q %q %+v %+v\nwant %q %q %+v %+v", out.Args, out.Env, out.Plan, out.Landlock,
			in.Args, in.Env, in.Plan, in.Landlock)
	}
	// The sender's value is not changed by the escaping.
	if in.Plan.Chdir != "/src/caf\xe9" || in.Args[4] != `back\slash` {
		t.Errorf("Encode changed its argument: %q %q", in.Plan.Chdir, in.Args[4])
	}
}

// TestOrderTables: in every direction each kind has one rule, and what may
// come before a kind, or end the conversation, is a kind of that direction
// (or "", the start): a typo in a table would refuse a message for good.
func TestOrderTables(t *testing.T) {
	for _, o := range []*Order{&FromParent, &FromInit, &FromExecClient, &FromExecServer} {
		kinds := map[proto.Kind]bool{}
		for _, r := range o.Kinds {
			if kinds[r.Kind] {
				t.Errorf("%s: %q has two rules", o.Name, r.Kind)
			}
			kinds[r.Kind] = true
			if len(r.After) == 0 {
				t.Errorf("%s: %q may never come", o.Name, r.Kind)
			}
		}
		for _, r := range o.Kinds {
			for _, k := range r.After {
				if k != "" && !kinds[k] {
					t.Errorf("%s: %q may follow %q, which this direction never sends", o.Name, r.Kind, k)
				}
			}
		}
		for _, k := range o.Final {
			if !kinds[k] {
				t.Errorf("%s: final kind %q is never sent", o.Name, k)
			}
		}
	}
}
