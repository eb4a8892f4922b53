package oneline

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain /tmp: über":          "plain /tmp: über",
		"a\nb\r":                    `a\nb\r`,
		"\x1b[2J\x00\x7f":           `\x1b[2J\x00\x7f`,
		"tab\tkept":                 "tab\tkept",
		"c1\u0085 ls\u2028ps\u2029": `c1\u0085 ls\u2028ps\u2029`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
