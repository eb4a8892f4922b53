// Package image imports container images from archives (docker save, OCI
// image layout) into a content-addressed store of unpacked layers, with no
// registry: each layer is unpacked once, owned as it will be seen inside a
// sandbox, with its whiteouts in the form kernel overlayfs reads.
package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Config is the part of an image's configuration a run uses.
type Config struct {
	Env        []string `json:"Env,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
}

// configFile is an image configuration blob (docker and OCI alike).
type configFile struct {
	Created string `json:"created"`
	Config  Config `json:"config"`
	RootFS  struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// member is one file of the outer archive: where its bytes are.
type member struct {
	offset, size int64
	link         string // a symlink's target (new docker layouts link old names to blobs)
}

// archive is an opened outer tarball, indexed so that each member can be
// read in place (the tar reader does not buffer: after Next the file's
// offset is the member's first byte).
type archive struct {
	f       *os.File
	members map[string]member
}

func openArchive(p string) (*archive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("opening the archive: %w", err)
	}
	magic := make([]byte, 4)
	if n, _ := io.ReadFull(f, magic); n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		f.Close()
		return nil, fmt.Errorf("%s is gzip-compressed: decompress it first (gunzip, or docker save without | gzip)", p)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	a := &archive{f: f, members: map[string]member{}}
	if err := a.index(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not a readable tar archive: %w", p, err)
	}
	return a, nil
}

func (a *archive) Close() error { return a.f.Close() }

func (a *archive) index() error {
	tr := tar.NewReader(a.f)
	for i := 0; ; i++ {
		if i > 1_000_000 {
			return errors.New("more than a million members")
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		off, err := a.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		name := cleanMember(h.Name)
		switch h.Typeflag {
		case tar.TypeReg:
			a.members[name] = member{offset: off, size: h.Size}
		case tar.TypeSymlink:
			a.members[name] = member{link: path.Join(path.Dir(name), h.Linkname)}
		}
	}
}

func cleanMember(n string) string { return strings.TrimPrefix(path.Clean("/"+n), "/") }

// open finds a member, following symlinks within the archive.
func (a *archive) open(name string) (*io.SectionReader, member, error) {
	name = cleanMember(name)
	for range 8 {
		m, ok := a.members[name]
		if !ok {
			return nil, member{}, fmt.Errorf("the archive has no %s", name)
		}
		if m.link == "" {
			return io.NewSectionReader(a.f, m.offset, m.size), m, nil
		}
		name = cleanMember(m.link)
	}
	return nil, member{}, fmt.Errorf("%s: too many symlinks", name)
}

func (a *archive) readJSON(name string, v any) ([]byte, error) {
	r, m, err := a.open(name)
	if err != nil {
		return nil, err
	}
	if m.size > 16<<20 {
		return nil, fmt.Errorf("%s: %d bytes, too large for a manifest", name, m.size)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// source is one image found in an archive.
type source struct {
	names  []string // from RepoTags or the OCI ref.name annotation
	id     string   // sha256:<hex> of the config blob
	config configFile
	layers []string // member names of the layer blobs, bottom first
}

// images lists the images of the archive: docker save's manifest.json
// when present (old and new layouts), else the OCI layout's index.json.
func (a *archive) images() ([]source, error) {
	if _, ok := a.members["manifest.json"]; ok {
		return a.dockerImages()
	}
	if _, ok := a.members["index.json"]; ok {
		return a.ociImages()
	}
	return nil, errors.New("neither manifest.json (docker save) nor index.json (OCI image layout) is in the archive")
}

func (a *archive) dockerImages() ([]source, error) {
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if _, err := a.readJSON("manifest.json", &manifest); err != nil {
		return nil, err
	}
	var out []source
	for _, m := range manifest {
		s, err := a.source(m.Config, m.Layers)
		if err != nil {
			return nil, err
		}
		s.names = m.RepoTags
		out = append(out, s)
	}
	return out, nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform"`
}

type ociIndex struct {
	Manifests []descriptor `json:"manifests"`
	// An image manifest's own fields (an index entry may point at either).
	Config descriptor   `json:"config"`
	Layers []descriptor `json:"layers"`
}

func (a *archive) ociImages() ([]source, error) {
	var idx ociIndex
	if _, err := a.readJSON("index.json", &idx); err != nil {
		return nil, err
	}
	var out []source
	for _, d := range idx.Manifests {
		s, err := a.ociManifest(d, 0)
		if err != nil {
			return nil, err
		}
		if n := d.Annotations["io.containerd.image.name"]; n != "" {
			s.names = []string{n}
		} else if n := d.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			s.names = []string{n}
		}
		out = append(out, s)
	}
	return out, nil
}

// ociManifest follows a descriptor to an image manifest; a nested index
// gives the manifest for this machine's architecture.
func (a *archive) ociManifest(d descriptor, depth int) (source, error) {
	if depth > 4 {
		return source{}, errors.New("OCI indexes nested too deeply")
	}
	var m ociIndex
	if _, err := a.readJSON(blobPath(d.Digest), &m); err != nil {
		return source{}, err
	}
	if len(m.Manifests) > 0 {
		pick := m.Manifests[0]
		for _, c := range m.Manifests {
			if c.Platform != nil && c.Platform.Architecture == runtime.GOARCH && c.Platform.OS == "linux" {
				pick = c
				break
			}
		}
		return a.ociManifest(pick, depth+1)
	}
	var layers []string
	for _, l := range m.Layers {
		layers = append(layers, blobPath(l.Digest))
	}
	return a.source(blobPath(m.Config.Digest), layers)
}

func blobPath(digest string) string {
	alg, hexd, _ := strings.Cut(digest, ":")
	return path.Join("blobs", alg, hexd)
}

// source reads an image's config and checks it against its layers.
func (a *archive) source(configName string, layers []string) (source, error) {
	var s source
	b, err := a.readJSON(configName, &s.config)
	if err != nil {
		return s, fmt.Errorf("the image config: %w", err)
	}
	sum := sha256.Sum256(b)
	s.id = "sha256:" + hex.EncodeToString(sum[:])
	if len(layers) == 0 {
		return s, fmt.Errorf("image %s has no layers", s.id)
	}
	if len(s.config.RootFS.DiffIDs) != len(layers) {
		return s, fmt.Errorf("image %s: %d layers but %d diff_ids in its config", s.id, len(layers), len(s.config.RootFS.DiffIDs))
	}
	for i, d := range s.config.RootFS.DiffIDs {
		if !validDigest(d) {
			return s, fmt.Errorf("image %s: diff_id %q is not sha256:<64 hex digits>", s.id, d)
		}
		if _, _, err := a.open(layers[i]); err != nil {
			return s, err
		}
	}
	s.layers = layers
	return s, nil
}

func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// decompressed returns r's content, gunzipped when it starts with gzip's
// or zstd's magic (layers are plain, gzip'd or zstd'd, whatever their
// names or media types say).
func decompressed(r io.Reader) (io.Reader, error) {
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
