package wire

import (
	"encoding"
	"reflect"
	"strings"
	"testing"

	"sandbox/seccomp/bpf"
)

// fill sets every field of the value v points to, recursively, to a value
// that is not its zero (pointers made, slices of two), each a different
// one: a field the binary form leaves out then decodes differently.
func fill(tb testing.TB, v reflect.Value, n *int) {
	tb.Helper()
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(tb, v.Elem(), n)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(tb, v.Field(i), n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fill(tb, v.Index(i), n)
		}
	case reflect.String:
		// Any byte: NUL, one that is not UTF-8, a newline.
		v.SetString(strings.Repeat("s", *n%5+1) + "\x00\xff\n" + string(rune('a'+*n%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(-int64(*n) * 1001)
	case reflect.Uint8:
		v.SetUint(uint64(*n%250) + 1)
	case reflect.Uint16:
		v.SetUint(uint64(*n)*257 + 1)
	case reflect.Uint32, reflect.Uint, reflect.Uint64:
		v.SetUint(uint64(*n)*70001 + 1)
	default:
		tb.Fatalf("fill: no value for a %s: add one here", v.Type())
	}
}

type binaryForm interface {
	encoding.BinaryMarshaler
}

// The messages with a binary form, each as a pointer to a zero value.
func binaryMessages() []any {
	return []any{new(ChildConfig), new(NetReady), new(ChildStarted), new(ChildExit)}
}

// Every field of every message with a binary form survives it: filled,
// marshalled and unmarshalled, the value is the same.
func TestBinaryRoundTrip(t *testing.T) {
	for _, p := range binaryMessages() {
		n := 0
		fill(t, reflect.ValueOf(p).Elem(), &n)
		if f, ok := p.(*ChildConfig); ok {
			f.Seccomp.Instructions[1].Jt = 255 // the byte's whole range
		}
		b, err := reflect.ValueOf(p).Elem().Interface().(binaryForm).MarshalBinary()
		if err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		got := reflect.New(reflect.TypeOf(p).Elem())
		if err := got.Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		if !reflect.DeepEqual(got.Interface(), p) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", p, got.Elem().Interface(), reflect.ValueOf(p).Elem().Interface())
		}
	}
}

// A nil slice stays nil and an empty one empty (JSON kept them apart where
// a field has no omitempty: "caps":null and "caps":[]).
func TestBinaryNilAndEmpty(t *testing.T) {
	for _, c := range []ChildConfig{
		{},
		{Args: []string{}, Env: []string{}, Caps: []int{}},
	} {
		b, _ := c.MarshalBinary()
		var got ChildConfig
		if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("%#v: got %#v, %v", c, got, err)
		}
	}
}

// Every prefix of a valid form, a byte more, another message's form and a
// program over bpf.MaxInstructions are refused, never taken in part.
func TestBinaryRefused(t *testing.T) {
	for _, p := range binaryMessages() {
		n := 0
		fill(t, reflect.ValueOf(p).Elem(), &n)
		b, _ := reflect.ValueOf(p).Elem().Interface().(binaryForm).MarshalBinary()
		for i := 0; i < len(b); i++ {
			if err := reflect.New(reflect.TypeOf(p).Elem()).Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(b[:i]); err == nil {
				t.Errorf("%T: its first %d of %d bytes accepted", p, i, len(b))
			}
		}
		if err := reflect.New(reflect.TypeOf(p).Elem()).Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(append(b, 0)); err == nil {
			t.Errorf("%T: a byte left over accepted", p)
		}
	}
	exit, _ := ChildExit{Code: 1}.MarshalBinary()
	var c ChildConfig
	if err := c.UnmarshalBinary(exit); err == nil || !strings.Contains(err.Error(), "not its binary form") {
		t.Errorf("an exit message taken for a configuration: %v", err)
	}
	big := ChildConfig{Seccomp: &bpf.Program{Instructions: make([]bpf.Instruction, bpf.MaxInstructions+1)}}
	b, _ := big.MarshalBinary()
	if err := c.UnmarshalBinary(b); err == nil || !strings.Contains(err.Error(), "instructions") {
		t.Errorf("a program of %d instructions: %v", bpf.MaxInstructions+1, err)
	}
	// A 16-bit field (Rows) over its range is refused, not truncated.
	rows := []byte{markConfig, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}
	if err := c.UnmarshalBinary(rows); err == nil || !strings.Contains(err.Error(), "16-bit value out of range") {
		t.Errorf("rows of 131071: %v", err)
	}
	// A count far over what follows allocates nothing: refused at once.
	if err := c.UnmarshalBinary([]byte{markConfig, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil || !strings.Contains(err.Error(), "over what is left") {
		t.Errorf("a huge count: %v", err)
	}
}

// FuzzBinary: no input panics the decoders, and what they accept encodes
// to a form that decodes to the same value.
func FuzzBinary(f *testing.F) {
	for _, p := range binaryMessages() {
		n := 0
		fill(f, reflect.ValueOf(p).Elem(), &n)
		b, _ := reflect.ValueOf(p).Elem().Interface().(binaryForm).MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range binaryMessages() {
			u := p.(encoding.BinaryUnmarshaler)
			if u.UnmarshalBinary(b) != nil {
				continue
			}
			again, err := reflect.ValueOf(p).Elem().Interface().(binaryForm).MarshalBinary()
			if err != nil {
				t.Fatalf("%T: %v", p, err)
			}
			q := reflect.New(reflect.TypeOf(p).Elem())
			if err := q.Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(again); err != nil || !reflect.DeepEqual(q.Interface(), p) {
				t.Fatalf("%T: re-encoded form decodes to %+v (%v), want %+v", p, q.Elem().Interface(), err, reflect.ValueOf(p).Elem().Interface())
			}
		}
	})
}
