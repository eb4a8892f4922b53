package rootfs

import "testing"

func TestTmpfsMode(t *testing.T) {
	for data, want := range map[string]uint32{
		"mode=1777": 0o1777, "mode=0755": 0o755, "size=1m,mode=0700": 0o700, "": 0o755, "mode=x": 0o755, "mode=77777": 0o755,
	} {
		if got := tmpfsMode(data); got != want {
			t.Errorf("tmpfsMode(%q) = %o, want %o", data, got, want)
		}
	}
}

func TestPlanCarriesEphemeral(t *testing.T) {
	eph := Ephemeral{Size: 8 << 20, Inodes: 8192}
	pl, err := Build(Config{Rootfs: "/r", Ephemeral: eph, DevptsGID: -1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Ephemeral != eph {
		t.Errorf("plan's ephemeral storage %+v, want %+v", pl.Ephemeral, eph)
	}
}
