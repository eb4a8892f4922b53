// Package registry pulls images from container registries into the image
// store, on go-containerregistry (references, the distribution protocol,
// token auth, manifests, indexes and digests): the layers are verified
// against their digests while they stream into one temporary file, then
// unpacked by the store's unprivileged helper as an import's are.
package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"sandbox/image"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options of a pull.
type Options struct {
	Platform string    // "os/arch[/variant]"; "" = the host's (runtime.GOOS/GOARCH)
	Insecure []string  // registries (host[:port]) that may be reached over plain HTTP
	Progress io.Writer // nil: quiet; a terminal: a live display (layers, bytes, rate); a non-terminal: one line per layer at most
	Config   Config    // default registry and short-name handling
}

// Config says where a short name goes. Default: docker.io, with
// "library/" before one-component names (docker's rules; a registry other
// than docker.io takes the name as it is).
type Config struct{ DefaultRegistry string }

// DockerHub is the default registry.
const DockerHub = "docker.io"

func (c Config) registry() string {
	if c.DefaultRegistry == "" {
		return DockerHub
	}
	return c.DefaultRegistry
}

// Bounds of what a pull reads into memory.
const (
	maxManifest = 4 << 20
	maxConfig   = 8 << 20
	// stallTimeout ends a pull whose registry sends nothing for that long.
	stallTimeout = 60 * time.Second
)

const refForms = "use NAME[:TAG], REGISTRY/NAME[:TAG] or NAME@sha256:<64 hex digits>"

// parse reads ref with the default registry; a registry named in insecure
// is reached over plain HTTP.
func parse(ref string, c Config, insecure []string) (name.Reference, error) {
	if strings.TrimSpace(ref) != ref || ref == "" {
		return nil, fmt.Errorf("reference %q is malformed: %s", ref, refForms)
	}
	opts := []name.Option{name.WithDefaultRegistry(c.registry())}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("reference %q is malformed (%v): %s", ref, err, refForms)
	}
	if isInsecure(r.Context().RegistryStr(), insecure) {
		r, err = name.ParseReference(ref, append(opts, name.Insecure)...)
		if err != nil {
			return nil, fmt.Errorf("reference %q is malformed (%v): %s", ref, err, refForms)
		}
	}
	return r, nil
}

func isInsecure(host string, insecure []string) bool {
	for _, h := range insecure {
		if h == host || h == DockerHub && host == name.DefaultRegistry {
			return true
		}
	}
	return false
}

// display is the reference as the store records it: docker.io rather
// than go-containerregistry's index.docker.io.
func display(r name.Reference) string {
	s := r.Name()
	if rest, ok := strings.CutPrefix(s, name.DefaultRegistry+"/"); ok {
		return DockerHub + "/" + rest
	}
	return s
}

// Normalize turns REF (name[:tag], registry/name[:tag], name@sha256:…)
// into the fully qualified reference the store records it under
// (docker.io/library/alpine:latest).
func Normalize(ref string, c Config) (string, error) {
	r, err := parse(ref, c, nil)
	if err != nil {
		return "", err
	}
	return display(r), nil
}

// hostPlatform is the platform a pull picks when none is asked for.
func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// ParsePlatform reads "os/arch[/variant]".
func ParsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return hostPlatform(), nil
	}
	parts := strings.Split(s, "/")
	p, err := v1.ParsePlatform(s)
	if err != nil || len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return v1.Platform{}, fmt.Errorf("--platform %q: use OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7", s)
	}
	return *p, nil
}

// httpsOnly sends every request over TLS unless its host is a registry
// named insecure: go-containerregistry itself would use plain HTTP for
// loopback and private addresses.
type httpsOnly struct {
	base     http.RoundTripper
	insecure []string
}

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isInsecure(req.URL.Host, t.insecure) {
		r := req.Clone(req.Context())
		r.URL.Scheme = "https"
		return t.base.RoundTrip(r)
	}
	return t.base.RoundTrip(req)
}

// Pull fetches REF into the store (layers verified against their digests,
// shared with imported images, nothing usable left half-done) and returns
// the stored image, recorded under Normalize(ref).
func Pull(ctx context.Context, s image.Store, ref string, o Options) (image.Image, error) {
	r, err := parse(ref, o.Config, o.Insecure)
	if err != nil {
		return image.Image{}, err
	}
	img, err := pull(ctx, s, r, o)
	if err != nil {
		return img, explain(ref, r, err)
	}
	return img, nil
}

func pull(ctx context.Context, s image.Store, r name.Reference, o Options) (image.Image, error) {
	plat, err := ParsePlatform(o.Platform)
	if err != nil {
		return image.Image{}, err
	}
	h, err := image.NewHelper()
	if err != nil {
		return image.Image{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	base := remote.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = stallTimeout
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(httpsOnly{base: base, insecure: o.Insecure}),
		remote.WithPlatform(plat),
		remote.WithUserAgent("sandbox"),
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return image.Image{}, err
	}
	if len(desc.Manifest) > maxManifest {
		return image.Image{}, fmt.Errorf("its manifest is %d bytes, more than the %d a pull accepts", len(desc.Manifest), maxManifest)
	}
	var im v1.Image
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		im, err = pick(desc, plat)
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		im, err = desc.Image()
	default:
		return image.Image{}, &unsupported{what: "manifest", mt: string(desc.MediaType)}
	}
	if err != nil {
		return image.Image{}, err
	}
	m, err := im.Manifest()
	if err != nil {
		return image.Image{}, err
	}
	switch m.Config.MediaType {
	case types.DockerConfigJSON, types.OCIConfigJSON:
	default:
		return image.Image{}, &unsupported{what: "config", mt: string(m.Config.MediaType)}
	}
	if m.Config.Size > maxConfig {
		return image.Image{}, fmt.Errorf("its config is %d bytes, more than the %d a pull accepts", m.Config.Size, maxConfig)
	}
	raw, err := im.RawConfigFile()
	if err != nil {
		return image.Image{}, err
	}
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != m.Config.Digest.String() || int64(len(raw)) != m.Config.Size {
		return image.Image{}, fmt.Errorf("the registry sent a config that does not match its digest %s (nothing was kept)", m.Config.Digest)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return image.Image{}, fmt.Errorf("its config: %w", err)
	}
	// An image of a single platform is what it is: one asked for by name
	// must be that one (an index gave the one asked for already).
	if have := (v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}); o.Platform != "" && cf.OS != "" && !have.Satisfies(plat) {
		return image.Image{}, &noPlatform{want: plat.String(), have: []string{have.String()}}
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return image.Image{}, fmt.Errorf("its manifest has %d layers but its config %d diff_ids", len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	rec := image.Image{Name: display(r), Ref: display(r), Digest: desc.Digest.String(), ID: m.Config.Digest.String()}
	rec.Config, rec.Created = image.ConfigOf(cf)
	var blobs []image.Blob
	for i, l := range m.Layers {
		switch l.MediaType {
		case types.DockerLayer, types.OCILayer, types.OCILayerZStd, types.DockerUncompressedLayer, types.OCIUncompressedLayer:
		default:
			return image.Image{}, &unsupported{what: "layer", mt: string(l.MediaType)}
		}
		rec.Layers = append(rec.Layers, image.Layer{DiffID: cf.RootFS.DiffIDs[i].String()})
		blobs = append(blobs, image.Blob{Digest: l.Digest.String(), Size: l.Size})
	}
	pr := newProgress(o.Progress)
	fetch := func(w io.Writer, b image.Blob, i, n int) error {
		hash, err := v1.NewHash(b.Digest)
		if err != nil {
			return err
		}
		l, err := im.LayerByDigest(hash)
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		defer rc.Close()
		// A registry that stops sending ends the pull, not hangs it.
		stall := time.AfterFunc(stallTimeout, func() {
			cancel(fmt.Errorf("the registry sent nothing for %v", stallTimeout))
		})
		defer stall.Stop()
		pr.start(b, i, n)
		_, err = io.Copy(w, &watched{r: rc, stall: stall, pr: pr})
		if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		pr.done(err)
		if err != nil {
			return fmt.Errorf("layer %s: %w (nothing was kept: retry the pull)", b.Digest, err)
		}
		return nil
	}
	if _, err := s.Add(rec, blobs, fetch, h); err != nil {
		return image.Image{}, err
	}
	return s.Load(rec.Name)
}

// pick resolves an index to the image of the platform asked for.
func pick(desc *remote.Descriptor, plat v1.Platform) (v1.Image, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		if m.MediaType != types.OCIManifestSchema1 && m.MediaType != types.DockerManifestSchema2 {
			continue // attestations, nested indexes
		}
		if m.Platform.Satisfies(plat) {
			return idx.Image(m.Digest)
		}
		if m.Platform.OS != "unknown" {
			have = append(have, m.Platform.String())
		}
	}
	return nil, &noPlatform{want: plat.String(), have: have}
}

type noPlatform struct {
	want string
	have []string
}

func (e *noPlatform) Error() string {
	return fmt.Sprintf("it has no image for %s (it has %s): choose one with --platform OS/ARCH[/VARIANT]", e.want, strings.Join(e.have, ", "))
}

type unsupported struct{ what, mt string }

func (e *unsupported) Error() string {
	return fmt.Sprintf("its %s has media type %q, which sandbox cannot use (it pulls docker v2 and OCI images: manifests, indexes, gzip/zstd/plain layers)", e.what, e.mt)
}

// watched is a blob's body: each read shows progress and delays the stall.
type watched struct {
	r     io.Reader
	stall *time.Timer
	pr    *progress
}

func (w *watched) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.stall.Reset(stallTimeout)
		w.pr.add(n)
	}
	return n, err
}

// explain makes err one line naming the reference and the fix.
func explain(ref string, r name.Reference, err error) error {
	host := r.Context().RegistryStr()
	if host == name.DefaultRegistry {
		host = DockerHub
	}
	var (
		terr  *transport.Error
		dns   *net.DNSError
		x509u x509.UnknownAuthorityError
		x509h x509.HostnameError
		cverr *tls.CertificateVerificationError
		rec   tls.RecordHeaderError
	)
	why := err.Error()
	switch {
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusNotFound || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode)):
		why = fmt.Sprintf("%s has no such image (%s): check the name and the tag or digest", host, oneLine(terr))
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		why = fmt.Sprintf("%s refused access (%s): log in to it (credentials are read from ~/.docker/config.json, $DOCKER_CONFIG, $REGISTRY_AUTH_FILE or $XDG_RUNTIME_DIR/containers/auth.json), or check the name", host, oneLine(terr))
	case errors.As(err, &dns):
		why = fmt.Sprintf("registry %s is unknown (%v): check the reference's registry, or the default registry (SANDBOX_DEFAULT_REGISTRY)", host, dns)
	case errors.As(err, &x509u), errors.As(err, &x509h), errors.As(err, &cverr):
		why = fmt.Sprintf("TLS to %s failed (%v): give its CA certificate with SSL_CERT_FILE (or SSL_CERT_DIR)", host, rootCause(err))
	case errors.As(err, &rec) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		why = fmt.Sprintf("TLS to %s failed (it does not speak TLS): name it with --insecure-registry %s if it is a plain-HTTP registry you trust", host, host)
	case errors.Is(err, syscall.ECONNREFUSED):
		why = fmt.Sprintf("cannot reach %s (connection refused): check the registry's address and that it runs", host)
	case errors.Is(err, image.ErrTooBigBlob):
		why = fmt.Sprintf("%v: the registry is broken or the blob was altered (nothing was kept)", err)
	}
	return fmt.Errorf("pulling %s: %s", ref, oneLine(errors.New(why)))
}

func hasCode(e *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range e.Errors {
		if slices.Contains(codes, d.Code) {
			return true
		}
	}
	return false
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
