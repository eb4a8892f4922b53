package fuseoverlay

import "testing"

func TestOptions(t *testing.T) {
	cases := []struct {
		name string
		l    Layers
		want string
		err  bool
	}{
		{"upper", Layers{Lower: []string{"/usr"}, Upper: "/u", Work: "/w"}, "lowerdir=/usr,upperdir=/u,workdir=/w,userxattr", false},
		{"stack", Layers{Lower: []string{"/l2", "/l1"}, Upper: "/u", Work: "/w"}, "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr", false},
		{"readonly", Layers{Lower: []string{"/a", "/b"}}, "lowerdir=/a:/b,userxattr", false},
		{"escape", Layers{Lower: []string{`/a,b:c\d`}, Upper: "/u", Work: "/w"}, `lowerdir=/a\,b\:c\\d,upperdir=/u,workdir=/w,userxattr`, false},
		{"no lower", Layers{Upper: "/u", Work: "/w"}, "", true},
		{"upper without work", Layers{Lower: []string{"/a"}, Upper: "/u"}, "", true},
		{"single readonly", Layers{Lower: []string{"/a"}}, "", true},
	}
	for _, c := range cases {
		got, err := c.l.Options()
		if (err != nil) != c.err {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
