package decompress

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestZstdLayer(t *testing.T) {
	tarball := bytes.Repeat([]byte("zstd\n"), 1000)
	var z bytes.Buffer
	enc, _ := zstd.NewWriter(&z)
	enc.Write(tarball)
	enc.Close()
	r, err := Layer(bytes.NewReader(z.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, tarball) {
		t.Fatalf("zstd layer: %d bytes, %v; want %d bytes", len(got), err, len(tarball))
	}
}

// TestLayerForms: gzip'd and plain blobs come back as they were.
func TestLayerForms(t *testing.T) {
	plain := bytes.Repeat([]byte("layer\n"), 1000)
	var g bytes.Buffer
	w := gzip.NewWriter(&g)
	w.Write(plain)
	w.Close()
	for name, blob := range map[string][]byte{"gzip": g.Bytes(), "plain": plain} {
		r, err := Layer(bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s layer: %d bytes, %v; want %d bytes", name, len(got), err, len(plain))
		}
	}
}
