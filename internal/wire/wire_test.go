package wire

import (
	"strings"
	"testing"

	"sandbox/internal/proto"
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

func TestChildExitStatus(t *testing.T) {
	if got := (ChildExit{Code: 3}).Status(); got != 3 {
		t.Errorf("code 3: %d", got)
	}
	if got := (ChildExit{Signal: 9}).Status(); got != 137 {
		t.Errorf("signal 9: %d", got)
	}
}
