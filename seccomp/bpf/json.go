package bpf

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// programJSON is how a Program travels to init: the instructions as the
// kernel's struct sock_filter array (8 bytes each, little-endian), in
// base64. A JSON object per instruction was two thirds of init's whole
// configuration and cost ~1 ms to encode and again to decode.
type programJSON struct {
	Insns string `json:"insns"`
	Flags uint   `json:"flags,omitempty"`
}

// MarshalJSON encodes p compactly (see programJSON).
func (p Program) MarshalJSON() ([]byte, error) {
	b := make([]byte, 8*len(p.Instructions))
	for i, in := range p.Instructions {
		binary.LittleEndian.PutUint16(b[8*i:], in.Code)
		b[8*i+2], b[8*i+3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[8*i+4:], in.K)
	}
	return json.Marshal(programJSON{Insns: base64.StdEncoding.EncodeToString(b), Flags: p.Flags})
}

// UnmarshalJSON decodes what MarshalJSON wrote, up to MaxInstructions.
func (p *Program) UnmarshalJSON(data []byte) error {
	var j programJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if base64.StdEncoding.DecodedLen(len(j.Insns)) > 8*MaxInstructions+8 {
		return fmt.Errorf("seccomp program: more than %d instructions", MaxInstructions)
	}
	b, err := base64.StdEncoding.DecodeString(j.Insns)
	if err != nil {
		return fmt.Errorf("seccomp program: %w", err)
	}
	if len(b)%8 != 0 {
		return fmt.Errorf("seccomp program: %d bytes is not a whole number of instructions", len(b))
	}
	p.Flags, p.Instructions = j.Flags, make([]Instruction, len(b)/8)
	for i := range p.Instructions {
		p.Instructions[i] = Instruction{
			Code: binary.LittleEndian.Uint16(b[8*i:]),
			Jt:   b[8*i+2], Jf: b[8*i+3],
			K: binary.LittleEndian.Uint32(b[8*i+4:]),
		}
	}
	return nil
}
