package confine

import (
	"reflect"
	"strings"
	"testing"
)

func names(set []int) string {
	var out []string
	for _, n := range set {
		out = append(out, CapName(n))
	}
	return strings.Join(out, ",")
}

func TestCapSet(t *testing.T) {
	def, err := CapSet(nil, nil, 40)
	if err != nil {
		t.Fatal(err)
	}
	if len(def) != len(DefaultCaps) || strings.Contains(names(def), "SYS_ADMIN") {
		t.Errorf("default set = %s", names(def))
	}
	got, err := CapSet([]string{"CAP_SYS_PTRACE", "net_admin"}, []string{"NET_RAW", "cap_mknod"}, 40)
	if err != nil {
		t.Fatal(err)
	}
	s := names(got)
	for _, want := range []string{"CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_CHOWN"} {
		if !strings.Contains(s, want) {
			t.Errorf("%s missing from %s", want, s)
		}
	}
	for _, not := range []string{"CAP_NET_RAW", "CAP_MKNOD"} {
		if strings.Contains(s, not) {
			t.Errorf("%s not dropped: %s", not, s)
		}
	}
	all, _ := CapSet([]string{"ALL"}, nil, 40)
	if len(all) != 41 {
		t.Errorf("ALL = %d caps", len(all))
	}
	none, _ := CapSet([]string{"ALL"}, []string{"all"}, 40)
	if len(none) != 0 {
		t.Errorf("drop ALL left %s", names(none))
	}
	capped, _ := CapSet([]string{"ALL"}, nil, 37)
	if len(capped) != 38 {
		t.Errorf("kernel with 38 caps: got %d", len(capped))
	}
	if _, err := CapSet([]string{"CAP_FLY"}, nil, 40); err == nil || !strings.Contains(err.Error(), "CAP_FLY") {
		t.Errorf("unknown cap: %v", err)
	}
	if _, err := CapSet(nil, []string{"bogus"}, 40); err == nil || !strings.Contains(err.Error(), "--cap-drop") {
		t.Errorf("unknown drop: %v", err)
	}
}

func TestCapNumber(t *testing.T) {
	for name, want := range map[string]int{"CAP_CHOWN": 0, "sys_admin": 21, "Cap_Bpf": 39, "checkpoint_restore": 40} {
		if n, err := CapNumber(name); err != nil || n != want {
			t.Errorf("%s = %d %v, want %d", name, n, err, want)
		}
	}
	if !reflect.DeepEqual(CapName(21), "CAP_SYS_ADMIN") {
		t.Error(CapName(21))
	}
}
