// Package execstart starts, during package initialisation, what `sandbox
// exec` would otherwise wait for first, so that it overlaps the rest of
// the program's start (~1.5–2 ms of package initialisation on the 2-core
// CI machine) instead of following it: the catch of the signals it passes
// on (os/signal enables each by a round trip to the Go runtime's
// signal-mask thread: ~2 ms for exec's 13 here) and a warm encoding/json
// (the sandbox's record, exec's request and init's answers are JSON: the
// first decode of a process faults in the decoder's code, time's parser
// and the reflection it uses, ~0.8 ms of exec's path here). Each runs on
// a goroutine of its own; nothing starts for any other command.
//
// It imports the standard library, internal/callersig and the two
// packages whose types exec decodes first, state and internal/proto, none
// of which imports more than the standard library and small leaves, so
// that it is initialised early.
package execstart

import (
	"encoding/json"
	"os"

	"sandbox/internal/callersig"
	"sandbox/internal/proto"
	"sandbox/state"
)

// early is exec's catch of callersig.ForwardedByCaller.
var early struct {
	c       chan os.Signal
	enabled <-chan struct{}
}

func init() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		early.c, early.enabled = callersig.Catch(callersig.ForwardedByCaller())
		go warm()
	}
}

// Signals returns, once, the catch of callersig.ForwardedByCaller that
// initialisation started for `sandbox exec` (as callersig.Catch returns
// it); nil when it started none.
func Signals() (c chan os.Signal, enabled <-chan struct{}) {
	c, enabled = early.c, early.enabled
	early.c, early.enabled = nil, nil
	return c, enabled
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
