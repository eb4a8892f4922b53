package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Blob is one layer's compressed blob as a registry serves it.
type Blob struct {
	Digest string // sha256:<hex> of the compressed bytes
	Size   int64  // declared size, compressed
}

// Fetch writes one blob's bytes to w (the i-th of n fetched); Add checks
// them against the blob's digest and size.
type Fetch func(w io.Writer, b Blob, i, n int) error

// Add stores img (Name, Ref, Digest, ID, Created, Config and its layers'
// diff_ids, bottom first) whose layers' blobs are blobs: the layers the
// store lacks are fetched, verified while streaming, into one temporary
// file under the store (.tmp-pull-*), unpacked by the helper as an
// import's are, then the record is saved. A killed or failed Add leaves
// only .tmp- entries, which the next import, pull, rm, prune or Sweep
// removes. Layers already in the store are reused, never fetched.
func (s Store) Add(img Image, blobs []Blob, fetch Fetch, h Helper) (ImportResult, error) {
	var res ImportResult
	n, err := NormalizeName(img.Name)
	if err != nil {
		return res, err
	}
	img.Name = n
	if len(img.Layers) == 0 || len(img.Layers) != len(blobs) {
		return res, fmt.Errorf("image %s: %d layers but %d diff_ids in its config", n, len(blobs), len(img.Layers))
	}
	for i, l := range img.Layers {
		if !validDigest(l.DiffID) {
			return res, fmt.Errorf("image %s: diff_id %q is not sha256:<64 hex digits>", n, l.DiffID)
		}
		if !validDigest(blobs[i].Digest) {
			return res, fmt.Errorf("image %s: layer digest %q is not sha256:<64 hex digits>", n, blobs[i].Digest)
		}
		if blobs[i].Size < 0 {
			return res, fmt.Errorf("image %s: layer %s has a negative size", n, blobs[i].Digest)
		}
	}
	lk, err := s.lock()
	if err != nil {
		return res, err
	}
	defer lk.Close()
	s.sweepRecords()
	j := job{Remove: s.stale()}
	planned := map[string]bool{}
	var measured []string
	var need int64
	for i, l := range img.Layers {
		if planned[l.DiffID] {
			continue
		}
		planned[l.DiffID] = true
		final := s.LayerDir(l.DiffID)
		if _, err := os.Lstat(final); err == nil {
			measured = append(measured, l.DiffID)
			j.Measure = append(j.Measure, final)
			continue
		}
		j.Unpack = append(j.Unpack, layerJob{Size: blobs[i].Size, DiffID: l.DiffID, Final: final,
			Digest: blobs[i].Digest, Limit: layerLimit(blobs[i].Size, DefaultMaxExpansion)})
		need += blobs[i].Size
	}
	if len(j.Unpack) > 0 {
		if err := s.roomFor(need); err != nil {
			return res, fmt.Errorf("image %s: %w", n, err)
		}
		f, err := os.CreateTemp(s.layersDir(), ".tmp-pull-")
		if err != nil {
			return res, fmt.Errorf("pulling %s: %w", n, err)
		}
		defer func() {
			f.Close()
			os.Remove(f.Name())
		}()
		j.Archive = f.Name()
		var off int64
		for i := range j.Unpack {
			l := &j.Unpack[i]
			b := Blob{Digest: l.Digest, Size: l.Size}
			w := &blobWriter{w: f, left: b.Size, h: sha256.New()}
			err := fetch(w, b, i, len(j.Unpack))
			got := "sha256:" + hex.EncodeToString(w.h.Sum(nil))
			if err != nil && w.left == 0 && got != b.Digest {
				err = nil // the blob is all there: its digest says what is wrong
			}
			if err != nil {
				return res, err
			}
			if w.left != 0 {
				return res, fmt.Errorf("layer %s: the registry sent %d bytes, its manifest says %d: retry the pull (nothing was kept)", b.Digest, b.Size-w.left, b.Size)
			}
			if got != b.Digest {
				return res, fmt.Errorf("layer %s: the registry sent a blob of digest %s: the registry is broken or the blob was altered (nothing was kept)", b.Digest, got)
			}
			l.Offset = off
			off += b.Size
		}
		if err := f.Sync(); err != nil {
			return res, fmt.Errorf("pulling %s: %w", n, err)
		}
	}
	out, err := h.run(j)
	if err != nil {
		return res, fmt.Errorf("unpacking %s: %w", n, err)
	}
	sizes := res.tally(j, out, measured)
	for i := range img.Layers {
		img.Layers[i].Size = sizes[img.Layers[i].DiffID]
	}
	if img.Imported.IsZero() {
		img.Imported = time.Now().UTC().Truncate(time.Second)
	}
	if err := s.save(img); err != nil {
		return res, err
	}
	res.Names = []string{n}
	return res, nil
}

// ErrTooBigBlob is a blob longer than its manifest says.
var ErrTooBigBlob = errors.New("the registry sent more bytes than the layer's manifest declares")

// blobWriter passes at most left bytes to w, hashing them.
type blobWriter struct {
	w    io.Writer
	left int64
	h    hash.Hash
}

func (b *blobWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		return 0, ErrTooBigBlob
	}
	n, err := b.w.Write(p)
	b.h.Write(p[:n])
	b.left -= int64(n)
	return n, err
}

// roomFor refuses a download of n bytes that would not fit in the store's
// file system (before a byte is fetched, rather than failing midway).
func (s Store) roomFor(n int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(s.layersDir(), &st); err != nil {
		return nil // unknown: the write fails cleanly if it must
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if n > free {
		return fmt.Errorf("its missing layers take %d bytes compressed, the store's file system has %d free: free some space (sandbox image prune, sandbox image rm) or set XDG_DATA_HOME elsewhere", n, free)
	}
	return nil
}

// Prune removes the layers no image uses, except those a running sandbox
// holds, and what a killed import or pull left; it returns the removed
// layer directories.
func (s Store) Prune(h Helper) ([]string, error) {
	lk, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	s.sweepRecords()
	imgs, err := s.Images()
	if err != nil {
		return nil, err
	}
	cand, err := s.unused(imgs)
	if err != nil {
		return nil, err
	}
	var drop []string
	for _, d := range cand {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		defer f.Close()
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			drop = append(drop, d)
		}
	}
	rm := append(append([]string{}, drop...), s.stale()...)
	if len(rm) == 0 {
		return nil, nil
	}
	if _, err := h.run(job{Remove: rm}); err != nil {
		return nil, fmt.Errorf("pruning the image store: %w", err)
	}
	return drop, nil
}
