package initproc

import (
	"encoding/json"

	"sandbox/internal/proto"
	"sandbox/internal/wire"
)

// warmDoc names every struct type of the configuration once (an empty
// object suffices: the decoder lists a struct's fields on entering it).
const warmDoc = `{"kind":"config","body":{"net":{},"plan":{"root":{},"steps":[{}],"overlay":{},"ephemeral":{}},"landlock":{},"seccomp":{"insns":""}}}`

// warmCodec decodes warmDoc before the configuration arrives: the
// decoder's per-type work (~1 ms in a fresh process) is then done while
// init waits for the id maps, not after. The values are throwaway.
func warmCodec() {
	var e proto.Envelope
	if json.Unmarshal([]byte(warmDoc), &e) == nil {
		json.Unmarshal(e.Body, &wire.ChildConfig{})
	}
}
