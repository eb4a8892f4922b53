package main

import (
	"slices"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	for _, c := range []struct {
		args, kong, rest []string
	}{
		{[]string{"run", "--net=none", "--", "sh", "-c", "x"}, []string{"run", "--net=none", "--", "sh"}, []string{"-c", "x"}},
		{[]string{"exec", "dev", "--", "ls", "-l"}, []string{"exec", "dev", "--", "ls"}, []string{"-l"}},
		{[]string{"run", "--", "true"}, []string{"run", "--", "true"}, nil},
		{[]string{"run", "true", "a", "b"}, []string{"run", "true", "a", "b"}, nil}, // no "--": kong's
		{[]string{"ps", "--", "a", "b"}, []string{"ps", "--", "a", "b"}, nil},       // not run or exec
		{nil, nil, nil},
	} {
		k, r := splitCommand(c.args)
		if !slices.Equal(k, c.kong) || !slices.Equal(r, c.rest) {
			t.Errorf("splitCommand(%q) = %q, %q; want %q, %q", c.args, k, r, c.kong, c.rest)
		}
	}
}
