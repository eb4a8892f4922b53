// Package profiledoc decodes the text of a run profile (`sandbox run
// --profile FILE`), TOML or YAML, into its top-level keys' values and, for
// YAML, their lines. It is linked by the profile decoder
// (cmd/sandbox-profile) only: the parsers' package initialisation (yaml's
// regular expressions, toml's local time zone; ~0.8 ms here) would
// otherwise be paid by every start of sandbox. What the values mean is
// sandbox's to check (cmd/sandbox/profile.go); errors start with
// ", line N: " or ": ", to follow the file's name.
package profiledoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"sandbox/internal/profilewire"
)

// Decode decodes a profile's text in format (profilewire.TOML or YAML).
func Decode(format string, data []byte) (map[string]any, map[string]int, error) {
	switch format {
	case profilewire.TOML:
		return decodeTOML(data)
	case profilewire.YAML:
		return decodeYAML(data)
	}
	return nil, nil, fmt.Errorf(": unknown format %q", format)
}

// maxTOMLNesting, maxTOMLKeyParts and maxTOMLKeys bound what the TOML
// parser is given: its time and memory grow with the square of the key
// path each value is stored under, the nesting times the dotted parts
// (10 000 nested inline tables, 40 KB, took over 3 GB and 30 s; 31 levels
// of 32-part keys in 1 MiB, 7 GB and 19 s), and with the number of keys.
// A profile is flat (flag = value or list of values): it needs one level
// of nesting, one part, and a key per flag.
const (
	maxTOMLNesting  = 4
	maxTOMLKeyParts = 4
	maxTOMLKeys     = 1024
)

// decodeTOML decodes a TOML document; errors start with ", line N: ".
func decodeTOML(data []byte) (map[string]any, map[string]int, error) {
	if err := checkTOMLShape(data); err != nil {
		return nil, nil, err
	}
	m := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, nil, fmt.Errorf(", line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, nil, fmt.Errorf(": %w", err)
	}
	return m, nil, nil
}

// checkTOMLShape refuses a document nested deeper than maxTOMLNesting
// ([ and { outside strings and comments), with a key of more than
// maxTOMLKeyParts dotted parts or with more than maxTOMLKeys keys, in one
// pass, before the parser sees it (worst case left: ~13 ms, 9 MB).
func checkTOMLShape(data []byte) error {
	line := 1
	var open []byte // the brackets open, innermost last
	inKey, parts, keys := true, 0, 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
			if len(open) == 0 {
				inKey, parts = true, 0
			}
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			end, lines := skipTOMLString(data, i)
			i, line = end, line+lines
		case '[', '{':
			if len(open) == maxTOMLNesting {
				return fmt.Errorf(", line %d: nested more than %d levels deep", line, maxTOMLNesting)
			}
			open = append(open, c)
			if c == '{' {
				inKey, parts = true, 0
			}
		case ']', '}':
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
			inKey = false // a value, or a header's end: the line ends next
		case '=':
			if keys++; keys > maxTOMLKeys {
				return fmt.Errorf(", line %d: more than %d keys", line, maxTOMLKeys)
			}
			inKey, parts = false, 0
		case ',':
			if len(open) > 0 && open[len(open)-1] == '{' {
				inKey, parts = true, 0
			}
		case '.':
			if inKey {
				if parts++; parts >= maxTOMLKeyParts {
					return fmt.Errorf(", line %d: a key of more than %d dotted parts", line, maxTOMLKeyParts)
				}
			}
		}
	}
	return nil
}

// skipTOMLString returns the index of the last byte of the string that
// starts at data[i] (basic or literal, one line or multi-line; an
// unterminated one runs to its line's end, or the document's, for the
// parser to report) and the newlines inside it.
func skipTOMLString(data []byte, i int) (end, lines int) {
	q := data[i]
	multi := i+2 < len(data) && data[i+1] == q && data[i+2] == q
	j := i + 1
	if multi {
		j = i + 3
	}
	for ; j < len(data); j++ {
		switch c := data[j]; {
		case c == '\\' && q == '"':
			if j+1 < len(data) && data[j+1] == '\n' {
				lines++
			}
			j++ // the escaped byte
		case c == '\n':
			if !multi {
				return j - 1, lines
			}
			lines++
		case c == q:
			if !multi {
				return j, lines
			}
			if j+2 < len(data) && data[j+1] == q && data[j+2] == q {
				// Up to two quotes of the content may precede the closing
				// three (`"""a""""` is `a"`).
				end := j + 2
				for n := 0; n < 2 && end+1 < len(data) && data[end+1] == q; n++ {
					end++
				}
				return end, lines
			}
		}
	}
	return len(data) - 1, lines
}

// yamlLineRe is how the YAML parser reports a position.
var yamlLineRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): `) }) // compiled on first use, not at every start

// decodeYAML decodes a YAML document that must be one mapping; it keeps
// each key's line. Errors start with ", line N: " or ": ".
func decodeYAML(data []byte) (map[string]any, map[string]int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF { // an empty file: an empty profile
			return map[string]any{}, nil, nil
		}
		msg := err.Error()
		if m := yamlLineRe().FindStringSubmatch(msg); m != nil {
			return nil, nil, fmt.Errorf(", line %s: %s", m[1], strings.TrimPrefix(msg, m[0]))
		}
		return nil, nil, fmt.Errorf(": %s", strings.TrimPrefix(msg, "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, nil, fmt.Errorf(", line %d: more than one YAML document; a profile is one mapping", extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return map[string]any{}, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf(", line %d: expected a mapping of flag names to values", root.Line)
	}
	m, lines := map[string]any{}, map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, nil, fmt.Errorf(", line %d: a key must be a flag name", k.Line)
		}
		if l, dup := lines[k.Value]; dup {
			return nil, nil, fmt.Errorf(", line %d: key %q already given at line %d", k.Line, k.Value, l)
		}
		var val any
		if err := v.Decode(&val); err != nil {
			return nil, nil, fmt.Errorf(", line %d: key %q: %v", v.Line, k.Value, err)
		}
		m[k.Value], lines[k.Value] = val, k.Line
	}
	return m, lines, nil
}
