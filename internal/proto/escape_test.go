package proto

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

type escInner struct {
	Name  string
	Names []string
}

type escBody struct {
	S     string
	Named Kind
	P     *escInner
	Nil   *escInner
	M     map[string]string
	A     [2]string
	Any   any
	B     []byte
	hid   string
}

// TestEncodeKeepsEveryByte: a body with strings that are not UTF-8 (in
// fields, pointers, slices, arrays, map keys and values, interfaces)
// arrives byte for byte; a UTF-8 body stays the plain JSON it was; the
// escaping never changes the sender's value.
func TestEncodeKeepsEveryByte(t *testing.T) {
	in := escBody{
		S:     "caf\xe9",
		Named: "k\\",
		P:     &escInner{Name: `a\xe9`, Names: []string{"\xff", `\\`, ""}},
		M:     map[string]string{"k\xfe": "v\xfd", "plain": `\x41`},
		A:     [2]string{"é", "\x80"},
		Any:   "\xc3",
		B:     []byte{0xff, 0},
		hid:   "kept",
	}
	enc, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !enc.escaped {
		t.Fatalf("not escaped: %s", enc.body)
	}
	if in.S != "caf\xe9" || in.P.Name != `a\xe9` || in.M["k\xfe"] != "v\xfd" {
		t.Errorf("Encode changed its argument: %+v", in)
	}
	out := roundTrip(t, enc)
	want := in
	want.hid = ""
	if !reflect.DeepEqual(out, want) {
		t.Errorf("round trip:\n got %#v\nwant %#v", out, want)
	}

	// UTF-8 only: what json.Marshal writes, not escaped.
	plain := escBody{S: `back\slash é`, P: &escInner{Name: "\ufffd"}}
	enc, err = Encode(plain)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(plain); enc.escaped || string(enc.body) != string(b) {
		t.Errorf("a UTF-8 body: escaped %v, %s, want %s", enc.escaped, enc.body, b)
	}
	if out := roundTrip(t, enc); !reflect.DeepEqual(out, plain) {
		t.Errorf("round trip: %#v", out)
	}

	// A string's own text `\ufffd` looks lossy: escaped, and still exact.
	odd := escBody{S: `\ufffd`, P: &escInner{Name: `\x41\\`}}
	if enc, err = Encode(odd); err != nil || !enc.escaped {
		t.Fatalf("escaped %v, %v", enc.escaped, err)
	}
	if out := roundTrip(t, enc); !reflect.DeepEqual(out, odd) {
		t.Errorf("round trip: %#v", out)
	}
}

func roundTrip(t *testing.T, enc Encoded) escBody {
	t.Helper()
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Send(KindConfig, enc); err != nil {
		t.Fatal(err)
	}
	env, _, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if env.Escaped != enc.escaped {
		t.Errorf("Escaped %v after the send, want %v", env.Escaped, enc.escaped)
	}
	var out escBody
	if err := env.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecodeRefusesBadEscapes: an escaped body from a peer that did not
// escape it is an error, not a string with its backslashes gone.
func TestDecodeRefusesBadEscapes(t *testing.T) {
	for _, s := range []string{`\`, `a\b`, `\x4`, `\xg0`, `\x`, `x\\\`} {
		body, _ := json.Marshal(escBody{S: s})
		var out escBody
		err := Envelope{Kind: KindConfig, Body: body, Escaped: true}.Decode(&out)
		if err == nil || !strings.Contains(err.Error(), "stray backslash") {
			t.Errorf("%q: %v (decoded %q)", s, err, out.S)
		}
	}
	if err := (Envelope{Kind: KindConfig, Body: []byte(`{}`), Escaped: true}).Decode(escBody{}); err == nil {
		t.Error("decoded into a value, not a pointer")
	}
}

type hidden struct{ Name string }

type embedsHidden struct {
	hidden
}

// TestEncodeRefusesWhatItCannotEscape: the exported fields of an
// unexported embedded struct are written by JSON but cannot be set
// through reflection: an error, not a body with a byte lost.
func TestEncodeRefusesWhatItCannotEscape(t *testing.T) {
	if _, err := Encode(embedsHidden{hidden{"\xff"}}); err == nil {
		t.Error("encoded")
	}
	if enc, err := Encode(embedsHidden{hidden{"ok"}}); err != nil || enc.escaped {
		t.Errorf("a UTF-8 value: %v, escaped %v", err, enc.escaped)
	}
}

// FuzzEscape: escaping gives UTF-8 without a lossy byte, and undoing it
// gives back every byte.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "caf\xe9", `\`, `\x41`, "\xff\\\xfe", "é\x80", `\ufffd`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := escape(s)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(e) {
			t.Fatalf("escape(%q) = %q, not UTF-8", s, e)
		}
		u, err := unescape(e)
		if err != nil || u != s {
			t.Fatalf("unescape(escape(%q)) = %q, %v", s, u, err)
		}
	})
}

// TestEscapedBodyRefusedByOlderPeers: an escaped body travels under keys
// a peer of an older build does not read (it decodes no body and refuses
// the message), where an "escaped" flag beside "body" would have had it
// take the escaped text for the strings; a json.RawMessage is sent as it
// is; a field tagged "-" is left alone.
func TestEscapedBodyRefusedByOlderPeers(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Send(KindExec, escBody{S: "caf\xe9"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, _, _, err := unix.Recvmsg(int(b.File().Fd()), buf, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var old struct { // Envelope before escaping
		Kind Kind            `json:"kind"`
		Body json.RawMessage `json:"body"`
		Blob bool            `json:"blob"`
	}
	if err := json.Unmarshal(buf[:n], &old); err != nil || old.Body != nil || old.Blob {
		t.Errorf("an older peer reads %q as body %q, blob %v (%v)", buf[:n], old.Body, old.Blob, err)
	}

	raw := json.RawMessage(`{"S":"\ufffd \\x41"}`)
	if enc, err := Encode(raw); err != nil || enc.escaped || string(enc.body) != string(raw) {
		t.Errorf("a RawMessage: %s, escaped %v, %v", enc.body, enc.escaped, err)
	}

	type withHidden struct {
		S    string
		Skip *withHidden `json:"-"`
	}
	v := withHidden{S: "\xff"}
	v.Skip = &v // a cycle JSON never walks
	if enc, err := Encode(v); err != nil || !enc.escaped {
		t.Errorf("a field tagged \"-\": %v, escaped %v", err, enc.escaped)
	}
}
