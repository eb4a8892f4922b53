package profilewire

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// TestRoundTrip: every kind comes back with its Go type and exact bytes;
// any other type as an Opaque naming it.
func TestRoundTrip(t *testing.T) {
	values := map[string]any{
		"nil":     nil,
		"bool":    true,
		"string":  "a\x00b\xff\u00e9",
		"int":     -7,
		"int64":   int64(math.MinInt64),
		"uint64":  uint64(math.MaxUint64),
		"float":   0.1,
		"neg0":    math.Copysign(0, -1),
		"inf":     math.Inf(1),
		"list":    []any{"x", []any{}, []any{1, map[string]any{"k\xff": false}}},
		"empty":   []any{},
		"table":   map[string]any{"a": map[string]any{}},
		"time":    time.Unix(0, 0),
		"tables":  []map[string]any{{"a": 1}},
		"anykeys": map[any]any{1: 2},
		"k\xfe\n": "key bytes kept",
	}
	lines := map[string]int{"nil": 3, "list": 9}
	data, err := Encode(values, lines, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, gotLines, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for k, v := range values {
		want[k] = v
	}
	want["time"], want["tables"], want["anykeys"] = Opaque("time.Time"), Opaque("[]map[string]interface {}"), Opaque("map[interface {}]interface {}")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if math.Signbit(got["neg0"].(float64)) != true {
		t.Errorf("-0 lost its sign")
	}
	if !reflect.DeepEqual(gotLines, lines) {
		t.Errorf("lines %v, want %v", gotLines, lines)
	}
	nan, _ := Encode(map[string]any{"n": math.NaN()}, nil, nil)
	if v, _, err := Decode(nan); err != nil || !math.IsNaN(v["n"].(float64)) {
		t.Errorf("NaN: %v %v", v, err)
	}
}

// TestErrors: the parser's error comes back as it wrote it; an answer that
// is none is a MalformedError.
func TestErrors(t *testing.T) {
	data, err := Encode(nil, nil, errors.New(", line 3: bad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Decode(data); err == nil || err.Error() != ", line 3: bad" {
		t.Errorf("parser's error: %v", err)
	}
	var m *MalformedError
	for _, bad := range []string{"", "{", `{"keys":[{"k":"YQ==","v":{"t":"int","n":"x"}}]}`, `{"keys":[{"k":"YQ==","v":{"t":"date"}}]}`} {
		if _, _, err := Decode([]byte(bad)); !errors.As(err, &m) {
			t.Errorf("Decode(%q): %v, want a MalformedError", bad, err)
		}
	}
}

// TestDeepValues: lists and tables below maxDepth arrive as opaque values,
// the levels above as they were; the answer decodes whatever the depth.
func TestDeepValues(t *testing.T) {
	var v any = "leaf"
	for range 10000 {
		v = []any{v}
	}
	data, err := Encode(map[string]any{"deep": v, "table": map[string]any{"a": v}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	d := got["deep"]
	for i := 0; i < maxDepth; i++ {
		l, ok := d.([]any)
		if !ok || len(l) != 1 {
			t.Fatalf("level %d: %#v, want a list of one", i, d)
		}
		d = l[0]
	}
	if d != Opaque("[]interface {}") {
		t.Errorf("below %d levels: %#v, want Opaque(\"[]interface {}\")", maxDepth, d)
	}
	if _, ok := got["table"].(map[string]any)["a"].([]any); !ok {
		t.Errorf("table: %#v", got["table"])
	}
}
