// Package image keeps container images in a content-addressed store of
// unpacked layers: imported from archives (docker save, OCI image layout,
// read with go-containerregistry's v1 types) or added by a registry pull
// (image/registry, Store.Add). Each layer is unpacked once, owned as it
// will be seen inside a sandbox, with its whiteouts in the form kernel
// overlayfs reads.
package image

import (
	"archive/tar"
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
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Config is the part of an image's configuration a run uses.
type Config struct {
	Env        []string `json:"Env,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
}

// imageConfig is what the store keeps of an image configuration blob
// (docker and OCI alike, read as go-containerregistry's v1.ConfigFile).
type imageConfig struct {
	Created string
	Config  Config
	DiffIDs []string // bottom first
}

// ConfigOf is what the store keeps of a configuration file (imports and
// pulls alike): the run's part and the creation time ("" when unset).
func ConfigOf(f *v1.ConfigFile) (Config, string) {
	c := Config{Env: f.Config.Env, Cmd: f.Config.Cmd, Entrypoint: f.Config.Entrypoint,
		WorkingDir: f.Config.WorkingDir, User: f.Config.User}
	if f.Created.IsZero() {
		return c, ""
	}
	return c, f.Created.UTC().Format(time.RFC3339)
}

// readConfig reads a configuration blob with go-containerregistry's types
// (which check each diff_id's form).
func readConfig(b []byte) (imageConfig, error) {
	var f v1.ConfigFile
	if err := json.Unmarshal(b, &f); err != nil {
		return imageConfig{}, err
	}
	var c imageConfig
	c.Config, c.Created = ConfigOf(&f)
	for _, d := range f.RootFS.DiffIDs {
		c.DiffIDs = append(c.DiffIDs, d.String())
	}
	return c, nil
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
	// Non-blocking: a FIFO given for the archive must not hang us (its
	// members are read in place, so it must be a regular file anyway).
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the archive: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file: import reads an archive file (docker save, podman save, skopeo copy … docker-archive:)", p)
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
	config imageConfig
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
	// docker save's manifest.json by hand: go-containerregistry's type
	// for it lives in its tarball package, whose imports (name, partial)
	// would add ~1 ms of package initialisation to every start of sandbox.
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
		// Its name is its digest (blobs/sha256/HEX, or HEX.json before).
		if hexName := strings.TrimSuffix(path.Base(m.Config), ".json"); len(hexName) == 64 && "sha256:"+hexName != s.id &&
			strings.Trim(hexName, "0123456789abcdef") == "" {
			return nil, fmt.Errorf("%s: its content has digest %s, not the one its name says: the archive is damaged or altered", m.Config, s.id)
		}
		s.names = m.RepoTags
		out = append(out, s)
	}
	return out, nil
}

func (a *archive) ociImages() ([]source, error) {
	var idx v1.IndexManifest
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
func (a *archive) ociManifest(d v1.Descriptor, depth int) (source, error) {
	if depth > 4 {
		return source{}, errors.New("OCI indexes nested too deeply")
	}
	// An index entry may point at an index or at an image manifest.
	var idx v1.IndexManifest
	b, err := a.readBlob(d.Digest, &idx)
	if err != nil {
		return source{}, err
	}
	if len(idx.Manifests) > 0 {
		pick, err := forThisMachine(idx.Manifests)
		if err != nil {
			return source{}, fmt.Errorf("%s: %w", blobPath(d.Digest), err)
		}
		return a.ociManifest(pick, depth+1)
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return source{}, fmt.Errorf("%s: %w", blobPath(d.Digest), err)
	}
	var layers []string
	for _, l := range m.Layers {
		layers = append(layers, blobPath(l.Digest))
	}
	s, err := a.source(blobPath(m.Config.Digest), layers)
	if err == nil && s.id != m.Config.Digest.String() {
		return s, fmt.Errorf("%s: its content has digest %s, not the %s its manifest names: the archive is damaged or altered",
			blobPath(m.Config.Digest), s.id, m.Config.Digest)
	}
	return s, err
}

// readBlob reads the JSON blob of digest d into v, checking the digest.
func (a *archive) readBlob(d v1.Hash, v any) ([]byte, error) {
	if d.Algorithm != "sha256" {
		return nil, fmt.Errorf("blob %s: only sha256 digests are read", d)
	}
	b, err := a.readJSON(blobPath(d), v)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != d.Hex {
		return nil, fmt.Errorf("%s: its content has digest sha256:%x, not the one its name says: the archive is damaged or altered", blobPath(d), sum)
	}
	return b, nil
}

// forThisMachine picks the manifest of an index for linux on this
// machine's architecture; one without a platform when none names it. An
// index for other machines only is refused, naming what it has: an
// image of another architecture would fail only when run (exec format
// error), or run emulated without a word.
func forThisMachine(ms []v1.Descriptor) (v1.Descriptor, error) {
	want := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	var bare *v1.Descriptor
	var has []string
	for i, c := range ms {
		switch {
		case c.Platform == nil:
			if bare == nil {
				bare = &ms[i]
			}
		case c.Platform.Satisfies(want):
			return c, nil
		case c.Platform.OS != "unknown": // attestations
			has = append(has, c.Platform.String())
		}
	}
	if bare != nil {
		return *bare, nil
	}
	if len(has) == 0 {
		has = []string{"none for any platform"}
	}
	return v1.Descriptor{}, fmt.Errorf("the index has no image for %s (it has %s)", want.String(), strings.Join(has, ", "))
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// source reads an image's config and checks it against its layers.
func (a *archive) source(configName string, layers []string) (source, error) {
	var s source
	b, err := a.readJSON(configName, new(json.RawMessage))
	if err != nil {
		return s, fmt.Errorf("the image config: %w", err)
	}
	if s.config, err = readConfig(b); err != nil {
		return s, fmt.Errorf("the image config %s: %w", configName, err)
	}
	sum := sha256.Sum256(b)
	s.id = "sha256:" + hex.EncodeToString(sum[:])
	if len(layers) == 0 {
		return s, fmt.Errorf("image %s has no layers", s.id)
	}
	if len(s.config.DiffIDs) != len(layers) {
		return s, fmt.Errorf("image %s: %d layers but %d diff_ids in its config", s.id, len(layers), len(s.config.DiffIDs))
	}
	for i, d := range s.config.DiffIDs {
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

// validDigest: d is sha256:<64 lower-case hex digits> (go-containerregistry
// parses it; it also takes upper case, which no store path may hold).
func validDigest(d string) bool {
	h, err := v1.NewHash(d)
	return err == nil && h.Algorithm == "sha256" && strings.ToLower(h.Hex) == h.Hex
}
