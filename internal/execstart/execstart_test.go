package execstart

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"sandbox/internal/proto"
	"sandbox/state"
)

// TestNothingForOtherCommands: the test binary is no `sandbox exec`.
func TestNothingForOtherCommands(t *testing.T) {
	if warming {
		t.Fatalf("the warm-up was started for %q", os.Args)
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
