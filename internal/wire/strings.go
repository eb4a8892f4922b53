package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings is a list of strings (a command's arguments, its environment)
// that crosses the wire byte for byte. A JSON string must be UTF-8, and
// encoding/json puts U+FFFD for any other byte, while an argument or a
// variable may hold any byte but NUL (a file name in Latin-1, say): such
// an element travels as {"base64": "…"}, the others as plain strings.
type Strings []string

// rawString is an element of Strings that is not UTF-8.
type rawString struct {
	Base64 []byte `json:"base64"`
}

// MarshalJSON writes s as a JSON array of strings and raw elements.
func (s Strings) MarshalJSON() ([]byte, error) {
	if !slices.ContainsFunc(s, func(e string) bool { return !utf8.ValidString(e) }) {
		return json.Marshal([]string(s)) // the common case: one call, as before
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		var v any = e
		if !utf8.ValidString(e) {
			v = rawString{Base64: []byte(e)}
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(enc)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (s *Strings) UnmarshalJSON(data []byte) error {
	// The common case, plain strings only, in one pass (init decodes its
	// configuration on the start-up path).
	var plain []string
	if json.Unmarshal(data, &plain) == nil {
		*s = plain
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw == nil {
		*s = nil
		return nil
	}
	out := make(Strings, len(raw))
	for i, r := range raw {
		if len(r) > 0 && r[0] == '{' {
			var rs rawString
			if err := json.Unmarshal(r, &rs); err != nil {
				return err
			}
			if rs.Base64 == nil {
				return errors.New("a raw string without its base64 bytes")
			}
			out[i] = string(rs.Base64)
			continue
		}
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return err
		}
	}
	*s = out
	return nil
}

// BadEnvName says whether k, a variable's name given by the user, holds a
// control character: `env` and /proc/PID/environ readers would show a
// newline in it as a second variable.
func BadEnvName(k string) bool { return strings.IndexFunc(k, unicode.IsControl) >= 0 }
