package initproc

import (
	"encoding/json"

	"sandbox/confine"
	"sandbox/internal/proto"
	"sandbox/internal/wire"
	"sandbox/netns"
	"sandbox/rootfs"
	"sandbox/seccomp/bpf"
)

// warmCodec runs encoding/json over every type init decodes or encodes
// before the configuration arrives: the codec's per-type work (field
// lists, encoders; ~1 ms in a fresh process) is then done while init
// waits for the id maps, not after. The values are throwaway.
func warmCodec() {
	cfg := wire.ChildConfig{
		Net:      &netns.Child{},
		Plan:     &rootfs.Plan{Steps: []rootfs.Step{{Lower: []string{""}}}},
		Landlock: &confine.LandlockRules{},
		Seccomp:  &bpf.Program{},
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return
	}
	env, err := json.Marshal(proto.Envelope{Kind: proto.KindConfig, Body: body})
	if err != nil {
		return
	}
	var e proto.Envelope
	if json.Unmarshal(env, &e) == nil {
		json.Unmarshal(e.Body, &wire.ChildConfig{})
	}
	json.Marshal(wire.ChildStarted{Init: &wire.InitReport{
		Steps: []wire.TimedStep{{}}, Fallbacks: []wire.Fallback{{}}, Overlays: []rootfs.OverlayUse{{}},
	}})
}
