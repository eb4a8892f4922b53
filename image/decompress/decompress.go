// Package decompress reads an image layer's blob, plain, gzip'd or zstd'd.
// It is apart from package image because klauspost/compress's package
// initialisation would otherwise be paid by every `sandbox` start: only
// the programs that unpack layers (sandbox-pull and its unpack helper)
// import it; `sandbox image import` runs that helper (cmd/sandbox's
// TestNetHTTPKeptOut guards it).
package decompress

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Layer returns r's content, gunzipped when it starts with gzip's or
// zstd's magic (layers are plain, gzip'd or zstd'd, whatever their names
// or media types say).
func Layer(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return gzip.NewReader(br)
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		// One goroutine, and a bounded window: a crafted frame cannot
		// make the decoder allocate more than maxZstdWindow.
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("reading the zstd layer: %w", err)
		}
		return d.IOReadCloser(), nil
	}
	return br, nil
}

// maxZstdWindow bounds a zstd layer's window (zstd's own default limit for
// decoders; layers made by docker, podman and buildkit use 8 MiB or less).
const maxZstdWindow = 128 << 20
