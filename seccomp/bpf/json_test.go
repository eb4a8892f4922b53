package bpf

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestProgramJSON(t *testing.T) {
	p := &Program{Flags: 4, Instructions: []Instruction{
		{Code: 0x20, K: 4}, {Code: 0x15, Jt: 1, Jf: 255, K: 0xc000003e}, {Code: 0x6, K: 0x7fff0000},
	}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Program
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, p) {
		t.Fatalf("round trip: %+v %v (%s)", back, err, b)
	}
	for _, bad := range []string{`{"insns":"AAAA"}`, `{"insns":"!!"}`, `{"insns":"` + strings.Repeat("A", 8*(MaxInstructions+2)) + `"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%.40s: accepted", bad)
		}
	}
}
