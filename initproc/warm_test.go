package initproc

import (
	"bytes"
	"encoding/json"
	"testing"

	"sandbox/internal/proto"
	"sandbox/internal/wire"
)

// TestWarmDocMatchesConfig: every key of warmDoc is a field of the
// configuration, so the warm-up reaches every nested type.
func TestWarmDocMatchesConfig(t *testing.T) {
	var e proto.Envelope
	if err := json.Unmarshal([]byte(warmDoc), &e); err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(e.Body))
	d.DisallowUnknownFields()
	var c wire.ChildConfig
	if err := d.Decode(&c); err != nil {
		t.Fatalf("warmDoc does not match wire.ChildConfig: %v", err)
	}
	if c.Net == nil || c.Plan == nil || len(c.Plan.Steps) != 1 || c.Landlock == nil || c.Seccomp == nil {
		t.Fatalf("warmDoc misses a nested type: %+v", c)
	}
}
