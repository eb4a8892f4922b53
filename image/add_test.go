package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAddRefusesBadBlobs: a blob of the wrong digest, longer or shorter
// than declared, is refused before anything is unpacked; no record, no
// temporary file is left.
func TestAddRefusesBadBlobs(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	good := []byte("the layer's compressed bytes")
	img := Image{Name: "reg.example/x:1", Layers: []Layer{{DiffID: sum([]byte("diff"))}}}
	blobs := []Blob{{Digest: sum(good), Size: int64(len(good))}}
	for _, c := range []struct {
		name string
		send []byte
		want string
	}{
		{"wrong digest", bytes.Repeat([]byte("x"), len(good)), "the registry sent a blob of digest"},
		{"too long", append(bytes.Clone(good), 'x'), ErrTooBigBlob.Error()},
		{"too short", good[:5], "the registry sent 5 bytes, its manifest says"},
	} {
		fetch := func(w io.Writer, b Blob, i, n int) error {
			if b != blobs[0] || i != 0 || n != 1 {
				t.Errorf("%s: fetch(%v, %d, %d)", c.name, b, i, n)
			}
			_, err := w.Write(c.send)
			return err
		}
		_, err := s.Add(img, blobs, fetch, Helper{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Add: %v; want %q", c.name, err, c.want)
		}
		if ents, _ := os.ReadDir(s.layersDir()); len(ents) != 0 {
			t.Errorf("%s: left %v in the layers", c.name, ents)
		}
		if ents, _ := os.ReadDir(s.imagesDir()); len(ents) != 0 {
			t.Errorf("%s: left %v in the records", c.name, ents)
		}
	}
	huge := []Blob{{Digest: blobs[0].Digest, Size: 1 << 60}}
	_, err := s.Add(img, huge, func(io.Writer, Blob, int, int) error {
		t.Error("a layer larger than the free space was fetched")
		return nil
	}, Helper{})
	if err == nil || !strings.Contains(err.Error(), "free") {
		t.Errorf("a layer larger than the free space: %v", err)
	}
	fail := errors.New("connection reset")
	_, err = s.Add(img, blobs, func(w io.Writer, b Blob, i, n int) error { w.Write(good[:3]); return fail }, Helper{})
	if !errors.Is(err, fail) {
		t.Errorf("a failed fetch: %v", err)
	}
	if ents, _ := os.ReadDir(s.layersDir()); len(ents) != 0 {
		t.Errorf("a failed fetch left %v", ents)
	}
	if _, err := s.Add(Image{Name: "x"}, nil, nil, Helper{}); err == nil {
		t.Errorf("an image of no layers was accepted")
	}
	bad := img
	bad.Layers = []Layer{{DiffID: "sha256:xyz"}}
	if _, err := s.Add(bad, blobs, nil, Helper{}); err == nil || !strings.Contains(err.Error(), "diff_id") {
		t.Errorf("a bad diff_id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "images")); err != nil {
		t.Errorf("the store was not made: %v", err)
	}
}
