package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// A JSON string is UTF-8, and encoding/json writes `\ufffd` for every
// byte that is not; a path, an argument or a variable may hold any byte
// but NUL (a directory named in Latin-1, say), and must arrive as it was
// sent. A body that would lose a byte so is sent with every string in it
// escaped instead (Envelope.Escaped: '\' as `\\`, a byte that is not
// UTF-8 as `\xHH`), and Decode restores them. The usual body, all UTF-8,
// stays plain JSON and costs nothing more than a scan for `\ufffd`.

// lossy is how encoding/json writes a byte that is not UTF-8 (a valid
// U+FFFD it writes as it is). A string's own backslash before "ufffd"
// matches too: that body is escaped, which is correct, only slower.
var lossy = []byte(`\ufffd`)

// maxDepth bounds the walk over a body's value (the messages nest a few
// levels; a cycle of pointers must not recurse forever).
const maxDepth = 32

// Encoded is a body encoded ahead of Send (off a critical path).
type Encoded struct {
	body    json.RawMessage
	escaped bool
}

// Encode encodes v as Send would. A json.RawMessage is the caller's
// JSON, taken as it is (its strings, UTF-8, are not escaped).
func Encode(v any) (Encoded, error) {
	b, err := json.Marshal(v)
	if _, raw := v.(json.RawMessage); raw || err != nil || !bytes.Contains(b, lossy) {
		return Encoded{body: b}, err
	}
	c, err := mapStrings(reflect.ValueOf(v), escape, 0)
	if err != nil {
		return Encoded{}, err
	}
	if b, err = json.Marshal(c.Interface()); err != nil {
		return Encoded{}, err
	}
	return Encoded{body: b, escaped: true}, nil
}

// unescapeInto restores the strings of *v, which Decode filled from an
// escaped body.
func unescapeInto(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decoding into %T, not a pointer", v)
	}
	c, err := mapStrings(rv.Elem(), unescape, 0)
	if err != nil {
		return err
	}
	rv.Elem().Set(c)
	return nil
}

// mapStrings returns a copy of v with f applied to every string that
// encoding/json would write (exported fields but those tagged "-",
// elements, map keys and values); v itself is not changed. []byte is JSON's base64, which keeps
// every byte: left alone.
func mapStrings(v reflect.Value, f func(string) (string, error), depth int) (reflect.Value, error) {
	if depth > maxDepth {
		return v, errors.New("a value nested too deep to escape")
	}
	if !v.IsValid() {
		return v, nil
	}
	t := v.Type()
	switch v.Kind() {
	case reflect.String:
		s, err := f(v.String())
		if err != nil {
			return v, err
		}
		n := reflect.New(t).Elem()
		n.SetString(s)
		return n, nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return v, nil
		}
		e, err := mapStrings(v.Elem(), f, depth+1)
		if err != nil {
			return v, err
		}
		if v.Kind() == reflect.Pointer {
			p := reflect.New(t.Elem())
			p.Elem().Set(e)
			return p, nil
		}
		n := reflect.New(t).Elem()
		n.Set(e)
		return n, nil
	case reflect.Struct:
		n := reflect.New(t).Elem()
		n.Set(v) // unexported fields as they are: JSON does not carry them
		for i := range t.NumField() {
			sf := t.Field(i)
			if sf.Tag.Get("json") == "-" {
				continue // not in the body
			}
			if !sf.IsExported() {
				if sf.Anonymous {
					// JSON writes an unexported embedded struct's
					// exported fields, which could not be set here.
					return v, fmt.Errorf("%s embeds unexported %s: its strings cannot be escaped", t, sf.Type)
				}
				continue
			}
			e, err := mapStrings(v.Field(i), f, depth+1)
			if err != nil {
				return v, err
			}
			n.Field(i).Set(e)
		}
		return n, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 || v.Kind() == reflect.Slice && v.IsNil() {
			return v, nil
		}
		n := reflect.New(t).Elem()
		if v.Kind() == reflect.Slice {
			n = reflect.MakeSlice(t, v.Len(), v.Len())
		}
		for i := range v.Len() {
			e, err := mapStrings(v.Index(i), f, depth+1)
			if err != nil {
				return v, err
			}
			n.Index(i).Set(e)
		}
		return n, nil
	case reflect.Map:
		if v.IsNil() {
			return v, nil
		}
		n := reflect.MakeMapWithSize(t, v.Len())
		for it := v.MapRange(); it.Next(); {
			k, err := mapStrings(it.Key(), f, depth+1)
			if err != nil {
				return v, err
			}
			e, err := mapStrings(it.Value(), f, depth+1)
			if err != nil {
				return v, err
			}
			n.SetMapIndex(k, e)
		}
		return n, nil
	}
	return v, nil
}

const hexDigits = "0123456789abcdef"

// escape writes s in UTF-8 alone: '\' as `\\`, a byte that is not UTF-8
// as `\xHH`.
func escape(s string) (string, error) {
	if utf8.ValidString(s) && !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[s[i]>>4])
			b.WriteByte(hexDigits[s[i]&0xf])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String(), nil
}

// unescape undoes escape; any other backslash is an error (the peer did
// not escape what it sent).
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x' && isHex(s[i+2]) && isHex(s[i+3]):
			b.WriteByte(unhex(s[i+2])<<4 | unhex(s[i+3]))
			i += 3
		default:
			return "", errors.New("an escaped string with a stray backslash")
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool { return strings.IndexByte(hexDigits, c) >= 0 }

func unhex(c byte) byte { return byte(strings.IndexByte(hexDigits, c)) }
