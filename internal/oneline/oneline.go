// Package oneline makes text from a peer or a file (init's error, a layer's
// member name) safe to print as the one line of a diagnostic: it owns that
// escaping and nothing else, and imports only the standard library.
package oneline

import (
	"strconv"
	"strings"
)

// Escape escapes the control characters of s (C0 but tab, DEL, C1, the
// Unicode line and paragraph separators) as Go does in a quoted string
// (\n, \x1b, \u2028), so that s can neither add lines nor drive a
// terminal; s comes back unchanged when it has none.
func Escape(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !isControl(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r) // 'x' with x escaped
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 || r == 0x2028 || r == 0x2029
}
