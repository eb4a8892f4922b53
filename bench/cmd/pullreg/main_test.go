package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := "sandbox\t1\t1.0\t20480\npodman\t1\t2.0\t40960\nsandbox\t2\t3.0\t-\npodman\t2\t2.0\t40960\nsandbox\t3\t1.2\t30720\n"
	by, order, err := parseResults(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	out := formatReport(by, order, 1.0)
	for _, want := range []string{
		"| sandbox | 3 | 1.20 | 1.00–3.00 | 25.0 |",
		"| podman | 2 | 2.00 | 2.00–2.00 | 40.0 |",
		"| sandbox ÷ podman (time) ≤ 1.00 | 0.60 | met |",
		"| sandbox ÷ podman (peak RSS), no goal | 0.62 | — |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := parseResults(strings.NewReader("sandbox\t1\tx\t1\n")); err == nil {
		t.Error("a bad time was accepted")
	}
	if _, _, err := parseResults(strings.NewReader("")); err == nil {
		t.Error("no results was accepted")
	}
}

func TestReportOneTool(t *testing.T) {
	by, order, err := parseResults(strings.NewReader("sandbox\t1\t1.0\t-\n"))
	if err != nil {
		t.Fatal(err)
	}
	if out := formatReport(by, order, 1.0); !strings.Contains(out, "not measured") {
		t.Errorf("goal without podman not marked unmeasured:\n%s", out)
	}
}

func TestLayerTarSize(t *testing.T) {
	img, err := buildImage(2, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	if len(m.Layers) != 2 || total < 1.5e6 || total > 2.5e6 {
		t.Errorf("2 MB, 2 layers asked: got %d layers, %d bytes", len(m.Layers), total)
	}
}
