// Package execstart starts, during package initialisation, what `sandbox
// exec` would otherwise wait for first, so that it overlaps the rest of
// the program's start (~1.5–2 ms of package initialisation on the 2-core
// CI machine) instead of following it: a warm encoding/json (the
// sandbox's record, exec's request and init's answers are JSON: the first
// decode of a process faults in the decoder's code, time's parser and the
// reflection it uses, ~0.8 ms of exec's path here), on a goroutine of its
// own; nothing starts for any other command. (The signals exec passes on
// were caught here too while os/signal's round trips made that ~2 ms;
// internal/sigcatch takes them in microseconds, where exec needs them.)
//
// It imports the standard library and the two packages whose types exec
// decodes first, state and internal/proto, none of which imports more
// than the standard library and small leaves, so that it is initialised
// early.
package execstart

import (
	"encoding/json"
	"os"

	"sandbox/internal/proto"
	"sandbox/state"
)

// warming says that initialisation started the warm-up (for exec only).
var warming bool

func init() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		warming = true
		go warm()
	}
}

// warmDoc is a record (state.Info) with every kind of field it has, and
// a message of init's (proto.Envelope) around it.
const warmDoc = `{"kind":"exit","body":{"name":"n","pid":1,"pid_start":2,"command":["c"],"created":"2026-01-02T03:04:05.6Z","detached":true,"exit_status":0}}`

// warm decodes warmDoc into the types exec decodes and encodes the record
// again as a message's body; the values are thrown away.
func warm() error {
	var e proto.Envelope
	if err := json.Unmarshal([]byte(warmDoc), &e); err != nil {
		return err
	}
	var i state.Info
	if err := json.Unmarshal(e.Body, &i); err != nil {
		return err
	}
	_, err := proto.Encode(i)
	return err
}
