package execstart

import (
	"bytes"
	"encoding/json"
	"os"
	"os/signal"
	"testing"

	"sandbox/internal/callersig"
	"sandbox/internal/proto"
	"sandbox/state"
)

// TestNothingForOtherCommands: initialisation started no catch for a
// process that is not `sandbox exec` (this test binary), and Signals
// hands one out once.
func TestNothingForOtherCommands(t *testing.T) {
	if c, e := Signals(); c != nil || e != nil {
		t.Fatalf("a catch was started for %q", os.Args)
	}
	c, enabled := callersig.Catch(nil)
	defer signal.Stop(c)
	early.c, early.enabled = c, enabled
	if got, _ := Signals(); got != c {
		t.Errorf("Signals did not return the catch made at initialisation")
	}
	if got, _ := Signals(); got != nil {
		t.Errorf("Signals returned the catch twice")
	}
}

// TestWarm: the warm-up document decodes whole into the types exec
// decodes (a field the decoder skipped would leave its code cold).
func TestWarm(t *testing.T) {
	if err := warm(); err != nil {
		t.Fatal(err)
	}
	var e proto.Envelope
	if err := json.Unmarshal([]byte(warmDoc), &e); err != nil || e.Kind != proto.KindExit {
		t.Fatalf("the envelope: %+v, %v", e, err)
	}
	dec := json.NewDecoder(bytes.NewReader(e.Body))
	dec.DisallowUnknownFields()
	var i state.Info
	if err := dec.Decode(&i); err != nil {
		t.Fatalf("warmDoc has a field state.Info lacks: %v", err)
	}
	if i.Name == "" || i.Pid == 0 || i.PidStart == 0 || len(i.Command) == 0 || i.Created.IsZero() || !i.Detached || i.ExitStatus == nil {
		t.Errorf("a field of warmDoc was not decoded: %+v", i)
	}
}
