// Package profilewire carries a decoded run profile from the profile
// decoder (cmd/sandbox-profile, which links the YAML and TOML parsers) to
// sandbox (which does not: their package initialisation would be paid by
// every start). Each value keeps its Go type, strings and keys their exact
// bytes, so that sandbox checks what the parser produced, as if it had
// decoded the file itself. It imports nothing but the standard library.
package profilewire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// The formats a profile is written in, by the decoder's name for them.
const (
	TOML = "toml"
	YAML = "yaml"
)

// Answer is what the decoder writes: the document's top-level keys in the
// parser's order, or the parser's error.
type Answer struct {
	Keys []Entry `json:"keys,omitempty"`
	Err  string  `json:"error,omitempty"`
}

// Entry is one key of a mapping, with the line it is on when the parser
// tells (YAML's top level; 0 otherwise).
type Entry struct {
	K    []byte `json:"k"` // base64 in JSON: any bytes survive
	V    Value  `json:"v"`
	Line int    `json:"line,omitempty"`
}

// Value is one decoded value. T is its kind: nil, bool, string, int,
// int64, uint64, float64, list ([]any), table (map[string]any) or opaque
// (any other type, named in N).
type Value struct {
	T string  `json:"t"`
	B bool    `json:"b,omitempty"`
	S []byte  `json:"s,omitempty"`
	N string  `json:"n,omitempty"` // a number in Go's text; an opaque value's type
	L []Value `json:"l,omitempty"`
	M []Entry `json:"m,omitempty"`
}

// Opaque stands in for a value of a type a profile has no use for (a TOML
// date, an array of tables, a YAML mapping with other keys than strings):
// the name of its Go type, which is all sandbox says of it.
type Opaque string

// Encode is the answer for a decoded document (values and their lines), or
// for the parser's error.
func Encode(values map[string]any, lines map[string]int, err error) ([]byte, error) {
	var a Answer
	if err != nil {
		a.Err = err.Error()
		if a.Err == "" {
			a.Err = "failed"
		}
		return json.Marshal(a)
	}
	for k, v := range values {
		a.Keys = append(a.Keys, Entry{K: []byte(k), V: encode(v, 0), Line: lines[k]})
	}
	return json.Marshal(a)
}

// maxDepth is how deep lists and tables are carried; deeper ones go as
// opaque values of their type. A profile's values are scalars or lists of
// them, and sandbox names no value below the second level, so its words
// stay the same; the answer's JSON stays far below encoding/json's
// nesting limit, which a YAML document (the parser allows 10 000 levels)
// would pass.
const maxDepth = 32

func encode(v any, depth int) Value {
	switch v := v.(type) {
	case nil:
		return Value{T: "nil"}
	case bool:
		return Value{T: "bool", B: v}
	case string:
		return Value{T: "string", S: []byte(v)}
	case int:
		return Value{T: "int", N: strconv.Itoa(v)}
	case int64:
		return Value{T: "int64", N: strconv.FormatInt(v, 10)}
	case uint64:
		return Value{T: "uint64", N: strconv.FormatUint(v, 10)}
	case float64:
		return Value{T: "float64", N: strconv.FormatFloat(v, 'g', -1, 64)}
	case []any:
		if depth == maxDepth {
			break
		}
		l := make([]Value, len(v))
		for i, e := range v {
			l[i] = encode(e, depth+1)
		}
		return Value{T: "list", L: l}
	case map[string]any:
		if depth == maxDepth {
			break
		}
		m := make([]Entry, 0, len(v))
		for k, e := range v {
			m = append(m, Entry{K: []byte(k), V: encode(e, depth+1)})
		}
		return Value{T: "table", M: m}
	}
	return Value{T: "opaque", N: fmt.Sprintf("%T", v)}
}

// MalformedError is an answer that is none (a crash in mid-write, a
// decoder of another build).
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string { return "malformed answer: " + e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// Decode reads an answer: the values and lines of the document's keys, or
// the parser's error as it wrote it (a *MalformedError for an answer that
// is none).
func Decode(data []byte) (map[string]any, map[string]int, error) {
	var a Answer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, nil, &MalformedError{err}
	}
	if a.Err != "" {
		return nil, nil, errors.New(a.Err)
	}
	values, lines := make(map[string]any, len(a.Keys)), make(map[string]int, len(a.Keys))
	for _, e := range a.Keys {
		v, err := decode(e.V)
		if err != nil {
			return nil, nil, &MalformedError{fmt.Errorf("key %q: %w", e.K, err)}
		}
		values[string(e.K)] = v
		if e.Line > 0 {
			lines[string(e.K)] = e.Line
		}
	}
	return values, lines, nil
}

func decode(v Value) (any, error) {
	switch v.T {
	case "nil":
		return nil, nil
	case "bool":
		return v.B, nil
	case "string":
		return string(v.S), nil
	case "int":
		n, err := strconv.Atoi(v.N)
		return n, err
	case "int64":
		n, err := strconv.ParseInt(v.N, 10, 64)
		return n, err
	case "uint64":
		n, err := strconv.ParseUint(v.N, 10, 64)
		return n, err
	case "float64":
		f, err := strconv.ParseFloat(v.N, 64)
		return f, err
	case "list":
		l := make([]any, len(v.L))
		for i, e := range v.L {
			x, err := decode(e)
			if err != nil {
				return nil, err
			}
			l[i] = x
		}
		return l, nil
	case "table":
		m := make(map[string]any, len(v.M))
		for _, e := range v.M {
			x, err := decode(e.V)
			if err != nil {
				return nil, err
			}
			m[string(e.K)] = x
		}
		return m, nil
	case "opaque":
		return Opaque(v.N), nil
	}
	return nil, fmt.Errorf("unknown kind %q", v.T)
}
