package image

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// ImportResult says what an import did.
type ImportResult struct {
	Names          []string
	Unpacked       int   // layers unpacked now
	Reused         int   // layers already in the store
	SkippedDevices int   // device nodes left out of the layers
	UnmappedIDs    int   // entries owned by ids the mapping lacks (given to the caller)
	Added          int64 // bytes the new layers take
}

// tally adds what the helper did for job j to res and returns each
// layer's size on disk by diff_id; measured are the diff_ids of j.Measure.
func (res *ImportResult) tally(j job, out jobResult, measured []string) map[string]int64 {
	sizes := map[string]int64{}
	for i, st := range out.Unpacked {
		sizes[j.Unpack[i].DiffID] = st.Size
		res.SkippedDevices += st.SkippedDevices
		res.UnmappedIDs += st.UnmappedIDs
		res.Added += st.Size
	}
	for i, n := range out.Measured {
		sizes[measured[i]] = n
	}
	res.Unpacked, res.Reused = len(out.Unpacked), len(out.Measured)
	return sizes
}

// DefaultMaxExpansion bounds how many times its compressed size a layer
// may unpack to (gzip reaches ~1000× on zeros; real layers 2–20×).
const DefaultMaxExpansion = 100

// minLayerLimit is the bound of a small layer, whatever its ratio (an
// almost empty tar compresses ~200×).
const minLayerLimit = 16 << 20

// layerLimit is the most a layer of size compressed bytes may unpack to.
func layerLimit(size, maxExpansion int64) int64 {
	if maxExpansion <= 0 {
		maxExpansion = DefaultMaxExpansion
	}
	if size > math.MaxInt64/maxExpansion {
		return math.MaxInt64
	}
	return max(size*maxExpansion, minLayerLimit)
}

// blobDigest is the digest a layer's member name states (blobs/sha256/HEX,
// as OCI layouts and newer docker save name them), else "".
func blobDigest(member string) string {
	h, ok := strings.CutPrefix(cleanMember(member), "blobs/sha256/")
	if d := "sha256:" + h; ok && validDigest(d) {
		return d
	}
	return ""
}

// Import adds the images of a docker-save or OCI-layout tarball; name
// (NAME[:TAG]) replaces the archive's own names and needs a single image.
// Each layer may unpack to maxExpansion (0: DefaultMaxExpansion) times its
// compressed size, at least 16 MiB.
func (s Store) Import(file, name string, h Helper, maxExpansion int64) (ImportResult, error) {
	var res ImportResult
	a, err := openArchive(file)
	if err != nil {
		return res, err
	}
	defer a.Close()
	srcs, err := a.images()
	if err != nil {
		return res, fmt.Errorf("%s: %w", file, err)
	}
	if len(srcs) == 0 {
		return res, fmt.Errorf("%s holds no image", file)
	}
	if name != "" {
		if len(srcs) > 1 {
			return res, fmt.Errorf("%s holds %d images: --name names one (import without --name to keep their own names)", file, len(srcs))
		}
		srcs[0].names = []string{name}
	}
	for i := range srcs {
		if len(srcs[i].names) == 0 {
			return res, fmt.Errorf("%s: image %s has no name: give one with --name NAME[:TAG]", file, srcs[i].id)
		}
		for k, n := range srcs[i].names {
			if srcs[i].names[k], err = NormalizeName(n); err != nil {
				return res, err
			}
		}
	}
	lk, err := s.lock()
	if err != nil {
		return res, err
	}
	defer lk.Close()
	s.sweepRecords()
	j := job{Archive: file, Remove: s.stale()}
	planned := map[string]bool{}
	var measured []string
	for _, src := range srcs {
		for i, diffID := range src.config.DiffIDs {
			if planned[diffID] {
				continue
			}
			planned[diffID] = true
			final := s.LayerDir(diffID)
			if _, err := os.Lstat(final); err == nil {
				measured = append(measured, diffID)
				j.Measure = append(j.Measure, final)
				continue
			}
			_, m, err := a.open(src.layers[i])
			if err != nil {
				return res, err
			}
			j.Unpack = append(j.Unpack, layerJob{Offset: m.offset, Size: m.size, DiffID: diffID, Final: final,
				Digest: blobDigest(src.layers[i]), Limit: layerLimit(m.size, maxExpansion)})
		}
	}
	out, err := h.run(j)
	if err != nil {
		return res, fmt.Errorf("importing %s: %w", file, err)
	}
	sizes := res.tally(j, out, measured)
	now := time.Now().UTC().Truncate(time.Second)
	for _, src := range srcs {
		for _, n := range src.names {
			img := Image{Name: n, ID: src.id, Created: src.config.Created, Imported: now, Config: src.config.Config}
			for _, d := range src.config.DiffIDs {
				img.Layers = append(img.Layers, Layer{DiffID: d, Size: sizes[d]})
			}
			if err := s.save(img); err != nil {
				return res, err
			}
			res.Names = append(res.Names, n)
		}
	}
	return res, nil
}
