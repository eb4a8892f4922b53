package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry is a registry served by the test process on 127.0.0.1:
// go-containerregistry's in-memory one behind hooks that break it on demand.
type testRegistry struct {
	srv  *httptest.Server
	host string
	// hook, when set, may answer a request instead of the registry (true).
	hook atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	tr   http.RoundTripper
}

func newRegistry(t *testing.T, tlsOn bool, auth bool) *testRegistry {
	tr := &testRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := tr.hook.Load(); f != nil && (*f)(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	})
	var handler http.Handler = h
	if auth {
		handler = bearer(tr, h)
	}
	if tlsOn {
		tr.srv = httptest.NewTLSServer(handler)
	} else {
		tr.srv = httptest.NewServer(handler)
	}
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(strings.TrimPrefix(tr.srv.URL, "https://"), "http://")
	tr.tr = tr.srv.Client().Transport
	if auth {
		tr.tr = authed{tr.tr}
	}
	return tr
}

// bearer wraps the registry with a minimal token service: /token trades
// the basic credentials user:secret for a token, every /v2/ request needs it.
const testToken = "tok-3f1a"

func bearer(tr *testRegistry, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret" {
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"token": testToken})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, tr.srv.URL))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authed is the test's own client of an auth'd registry (to push).
type authed struct{ base http.RoundTripper }

func (a authed) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+testToken)
	return a.base.RoundTrip(r)
}

func (tr *testRegistry) setHook(f func(w http.ResponseWriter, r *http.Request) bool) {
	if f == nil {
		tr.hook.Store(nil)
		return
	}
	tr.hook.Store(&f)
}

// image builds a v1.Image of plain tar layers, gzip'd (or zstd'd).
func testV1Image(t *testing.T, arch string, zstd bool, env []string, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		opts := []tarball.LayerOption{}
		if zstd {
			opts = append(opts, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
		}
		b := l
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Env, cf.Config.Cmd = env, []string{"sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if zstd {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	return img
}

func (tr *testRegistry) push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(tr.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithTransport(tr.tr)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d.String()
}

func configDigest(t *testing.T, img v1.Image) string {
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func layerDirs(t *testing.T, store string) (layers, temps []string) {
	ents, _ := os.ReadDir(filepath.Join(store, "layers", "sha256"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			temps = append(temps, e.Name())
		} else {
			layers = append(layers, e.Name())
		}
	}
	return layers, temps
}

func fileLayer(t testing.TB, path, body string) []byte {
	return layerTar(t, []tarEntry{{name: filepath.Dir(path) + "/", typ: tar.TypeDir}, {name: path, body: body}})
}

// TestImagePull: a plain-HTTP registry named insecure: by tag, by digest,
// shared layers with an imported tarball stored once, a zstd layer, a
// multi-arch index (the host's platform and --platform), ls, run, prune.
func TestImagePull(t *testing.T) {
	full, why := fullMapPossible()
	requireOrSkip(t, full, why)
	o, store := imageStore(t)
	reg := newRegistry(t, false, false)
	base, upper := baseLayer(t), upperLayer(t)
	img := testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin", "FROM=registry"}, base, upper)
	dg := reg.push(t, "test/busy:1", img)

	// Plain HTTP only when named: without the flag, TLS is tried and fails.
	r := runOpts(t, o, "image", "pull", reg.host+"/test/busy:1")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "--insecure-registry "+reg.host) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("a plain-HTTP registry not named insecure: want one line naming --insecure-registry: %s", r)
	}

	// An imported tarball shares the base layer: the pull fetches only the upper one.
	dir := tempDir(t)
	ociLayout(t, filepath.Join(dir, "base.tar"), testImage{name: "base", layers: [][]byte{base}, env: []string{"PATH=/bin"}})
	mustRun(t, o, "image", "import", filepath.Join(dir, "base.tar"))
	ins := "--insecure-registry=" + reg.host
	r = mustRun(t, o, "image", "pull", ins, reg.host+"/test/busy:1")
	want := reg.host + "/test/busy:1 " + dg + "\n"
	if r.stdout != want {
		t.Errorf("pull printed %q, want %q", r.stdout, want)
	}
	if n := strings.Count(r.stderr, "layer "); n != 1 || !strings.Contains(r.stderr, "layer 1/1 ") {
		t.Errorf("the pull should fetch only the layer the imported image lacks (one progress line): %s", r)
	}
	if ls, tmp := layerDirs(t, store); len(ls) != 2 || len(tmp) != 0 {
		t.Errorf("store layers %v, temporaries %v: want the 2 distinct layers once, no temporaries", ls, tmp)
	}
	rows := imageLs(t, o)
	row := rows[reg.host+"/test/busy:1"]
	if row.Ref != reg.host+"/test/busy:1" || row.Digest != dg || row.ID != configDigest(t, img) || row.Layers != 2 {
		t.Errorf("image ls: %+v; want ref, digest %s, id %s, 2 layers", row, dg, configDigest(t, img))
	}
	r = mustRun(t, o, "image", "ls")
	if !strings.Contains(r.stdout, "DIGEST") || !strings.Contains(r.stdout, strings.TrimPrefix(dg, "sha256:")[:12]) {
		t.Errorf("image ls shows no digest: %s", r)
	}
	r = mustRun(t, o, "run", "--image", reg.host+"/test/busy:1", "--cwd=none", "--", "sh", "-c", "echo $FROM; cat /home/user/mine; test -e /etc/gone || echo whited-out")
	if r.stdout != "registry\nowned by 1000\nwhited-out\n" {
		t.Errorf("the pulled image inside: %s", r)
	}

	// --platform names what a single-platform image must be.
	r = runOpts(t, o, "image", "pull", ins, "--platform=linux/s390x", reg.host+"/test/busy:1")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "no image for linux/s390x (it has linux/"+runtime.GOARCH+")") {
		t.Errorf("--platform not matching a single-platform image: %s", r)
	}

	// By digest: nothing fetched, stored under the digest reference.
	r = mustRun(t, o, "image", "pull", ins, reg.host+"/test/busy@"+dg)
	if r.stdout != reg.host+"/test/busy@"+dg+" "+dg+"\n" || strings.Contains(r.stderr, "layer ") {
		t.Errorf("pull by digest: %s", r)
	}

	// A zstd layer.
	zimg := testV1Image(t, runtime.GOARCH, true, []string{"PATH=/bin"}, base, fileLayer(t, "z/file", "zstd content\n"))
	reg.push(t, "test/zstd:1", zimg)
	mustRun(t, o, "image", "pull", ins, reg.host+"/test/zstd:1")
	r = mustRun(t, o, "run", "--image", reg.host+"/test/zstd:1", "--cwd=none", "--", "cat", "/z/file")
	if r.stdout != "zstd content\n" {
		t.Errorf("the zstd layer inside: %s", r)
	}

	// A multi-arch index: the host's platform by default, --platform picks.
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	mine := testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin", "ARCH=mine"}, base, fileLayer(t, "arch/x", "mine\n"))
	theirs := testV1Image(t, other, false, []string{"PATH=/bin", "ARCH=other"}, base, fileLayer(t, "arch/x", "other\n"))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
	idxRef, _ := name.ParseReference(reg.host + "/test/multi:1")
	if err := remote.WriteIndex(idxRef, idx, remote.WithTransport(reg.tr)); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	mref := reg.host + "/test/multi:1"
	r = mustRun(t, o, "image", "pull", ins, mref)
	if r.stdout != mref+" "+idxDigest.String()+"\n" {
		t.Errorf("pull of an index printed %q, want the index digest %s", r.stdout, idxDigest)
	}
	if got := imageLs(t, o)[mref].ID; got != configDigest(t, mine) {
		t.Errorf("the index resolved to config %s, want the host's (%s) %s", got, runtime.GOARCH, configDigest(t, mine))
	}
	mustRun(t, o, "image", "pull", ins, "--platform=linux/"+other, mref)
	if got := imageLs(t, o)[mref].ID; got != configDigest(t, theirs) {
		t.Errorf("--platform linux/%s resolved to config %s, want %s", other, got, configDigest(t, theirs))
	}
	r = runOpts(t, o, "image", "pull", ins, "--platform=linux/s390x", mref)
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "sandbox: image: pulling "+mref) || !strings.Contains(r.stderr, "no image for linux/s390x") || !strings.Contains(r.stderr, "--platform") {
		t.Errorf("a platform the index lacks: %s", r)
	}

	// prune: the layer of the host's image, replaced by --platform, goes
	// (image rm removes its own image's layers; prune those left unused).
	before, _ := layerDirs(t, store)
	r = mustRun(t, o, "image", "prune")
	after, _ := layerDirs(t, store)
	if len(after) != len(before)-1 || !strings.Contains(r.stdout, "removed 1 unused layers") {
		t.Errorf("prune: %d layers before, %d after: %s (want the host image's arch layer, replaced by --platform, removed)", len(before), len(after), r)
	}
	mustRun(t, o, "run", "--image", reg.host+"/test/busy:1", "--cwd=none", "--", "true")
	mustRun(t, o, "run", "--image", reg.host+"/test/zstd:1", "--cwd=none", "--", "cat", "/z/file")

	// On a terminal: a live line (redrawn with \r) with bytes and rate.
	reg.push(t, "test/tty:1", testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin"}, base, fileLayer(t, "tty/x", "tty\n")))
	master, slave := openPty(t, 24, 100)
	o.prepare = func(c *exec.Cmd) { c.Stderr = slave }
	p := start(t, o, "image", "pull", ins, reg.host+"/test/tty:1")
	slave.Close()
	var out syncBuffer
	go io.Copy(&out, master)
	r = p.wait()
	wantCode(t, r, 0)
	time.Sleep(100 * time.Millisecond)
	if s := out.String(); !strings.Contains(s, "\rlayer 1/1 ") || !strings.Contains(s, "B/s") || !strings.Contains(s, "\x1b[K") {
		t.Errorf("no live progress line on a terminal: %q", s)
	}
}

// TestImagePullTLSAuth: TLS with a test CA (SSL_CERT_FILE), bearer-token
// auth with a credentials file (DOCKER_CONFIG).
func TestImagePullTLSAuth(t *testing.T) {
	o, _ := imageStore(t)
	reg := newRegistry(t, true, true)
	img := testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin"}, fileLayer(t, "etc/hello", "hi\n"))
	dg := reg.push(t, "private/app:2", img)
	ref := reg.host + "/private/app:2"

	dir := tempDir(t)
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: reg.srv.Certificate().Raw})), 0o644)
	cfgDir := filepath.Join(dir, "docker")
	os.MkdirAll(cfgDir, 0o755)
	cred := base64.StdEncoding.EncodeToString([]byte("user:secret"))
	writeFile(t, filepath.Join(cfgDir, "config.json"), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.host, cred), 0o600)
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)

	// No CA: a TLS error naming SSL_CERT_FILE.
	o1 := o
	o1.env = append(o.env, "DOCKER_CONFIG="+cfgDir, "SSL_CERT_FILE="+filepath.Join(dir, "none.pem"))
	r := runOpts(t, o1, "image", "pull", ref)
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "sandbox: image: pulling "+ref+": TLS to "+reg.host) || !strings.Contains(r.stderr, "SSL_CERT_FILE") {
		t.Errorf("an unknown CA: %s", r)
	}
	// The CA, no credentials: refused, naming the credentials files.
	o2 := o
	o2.env = append(o.env, "DOCKER_CONFIG="+empty, "HOME="+empty, "SSL_CERT_FILE="+ca, "XDG_RUNTIME_DIR="+empty, "XDG_CONFIG_HOME="+empty)
	r = runOpts(t, o2, "image", "pull", ref)
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "refused access") || !strings.Contains(r.stderr, "config.json") {
		t.Errorf("no credentials: %s", r)
	}
	// The CA and the credentials file.
	o3 := o
	o3.env = append(o.env, "DOCKER_CONFIG="+cfgDir, "HOME="+empty, "SSL_CERT_FILE="+ca)
	r = mustRun(t, o3, "image", "pull", ref)
	if r.stdout != ref+" "+dg+"\n" {
		t.Errorf("pull over TLS with token auth: %s", r)
	}
}

// TestImagePullBroken: a registry serving a wrong digest, one that dies
// mid-layer, a pull killed mid-layer; the bad-input list; the store stays
// consistent and a retry works.
func TestImagePullBroken(t *testing.T) {
	o, store := imageStore(t)
	reg := newRegistry(t, false, false)
	ins := "--insecure-registry=" + reg.host
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	layer := layerTar(t, []tarEntry{{name: "data/", typ: tar.TypeDir}, {name: "data/big", body: string(big)}})
	img := testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin"}, layer)
	reg.push(t, "test/big:1", img)
	ref := reg.host + "/test/big:1"
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := ls[0].Digest()
	blobPath := "/v2/test/big/blobs/" + ld.String()
	blob, _ := ls[0].Compressed()
	blobBytes, _ := io.ReadAll(blob)

	noneKept := func(what string) {
		t.Helper()
		if l, tmp := layerDirs(t, store); len(l) != 0 || len(tmp) != 0 {
			t.Errorf("%s: the store keeps layers %v, temporaries %v", what, l, tmp)
		}
		if _, err := os.Stat(filepath.Join(store, "images")); err == nil {
			if ents, _ := os.ReadDir(filepath.Join(store, "images")); len(ents) != 0 {
				t.Errorf("%s: the store keeps records %v", what, ents)
			}
		}
	}

	// Wrong bytes for the layer's digest.
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != blobPath {
			return false
		}
		bad := bytes.Clone(blobBytes)
		bad[len(bad)/2] ^= 0xff
		w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
		w.Write(bad)
		return true
	})
	r := runOpts(t, o, "image", "pull", ins, ref)
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "sandbox: image: pulling "+ref) || !strings.Contains(r.stderr, "digest") {
		t.Errorf("a wrong digest: %s", r)
	}
	noneKept("after a wrong digest")

	// half sends the blob's first half, announcing all of it.
	half := func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", fmt.Sprint(len(blobBytes)))
		w.Write(blobBytes[:len(blobBytes)/2])
		w.(http.Flusher).Flush()
	}
	// Dies mid-layer: half the blob, then the connection drops.
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != blobPath {
			return false
		}
		half(w)
		panic(http.ErrAbortHandler)
	})
	r = runOpts(t, o, "image", "pull", ins, ref)
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "sandbox: image: pulling "+ref) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
		t.Errorf("a registry dying mid-layer: %s", r)
	}
	noneKept("after a registry died mid-layer")

	// Killed mid-layer: a temporary is left, the next pull removes it.
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != blobPath {
			return false
		}
		half(w)
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		panic(http.ErrAbortHandler)
	})
	p := start(t, o, "image", "pull", ins, ref)
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("the pull never fetched the layer")
	}
	time.Sleep(200 * time.Millisecond)
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	close(release)
	if r := p.wait(); !r.signaled {
		t.Fatalf("the pull was not killed: %s", r)
	}
	if l, tmp := layerDirs(t, store); len(l) != 0 || len(tmp) != 1 || !strings.HasPrefix(tmp[0], ".tmp-pull-") {
		t.Errorf("a killed pull left layers %v, temporaries %v: want only its .tmp-pull- file", l, tmp)
	}
	wantCode(t, runOpts(t, o, "run", "--image", ref, "--", "true"), 125)
	mustRun(t, o, "image", "prune")
	if l, tmp := layerDirs(t, store); len(l) != 0 || len(tmp) != 0 {
		t.Errorf("after prune: layers %v, temporaries %v: want none", l, tmp)
	}
	reg.setHook(nil)
	r = mustRun(t, o, "image", "pull", ins, ref)
	if l, tmp := layerDirs(t, store); len(l) != 1 || len(tmp) != 0 {
		t.Errorf("the retried pull: layers %v, temporaries %v: want the layer, no temporaries", l, tmp)
	}
	mustRun(t, o, "image", "rm", ref)

	// Bad input: one line naming the reference and the fix, exit 125.
	hc := newRegistry(t, false, false)
	art := mutate.ConfigMediaType(testV1Image(t, runtime.GOARCH, false, nil, fileLayer(t, "x/y", "z")), "application/vnd.cncf.helm.config.v1+json")
	hc.push(t, "chart:1", art)
	s1, _ := name.ParseReference(hc.host + "/old:1")
	if err := remote.Put(s1, rawManifest{`{"schemaVersion":1,"name":"old","tag":"1","fsLayers":[]}`, types.DockerManifestSchema1}, remote.WithTransport(hc.tr)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ref, want string }{
		{"UPPER/Case::x", "malformed"},
		{"no-such-host.invalid/x:1", "unknown"},
		{reg.host + "/test/big:nosuchtag", "no such image"},
		{reg.host + "/nosuchrepo:1", "no such image"},
		{hc.host + "/chart:1", "media type"},
		{hc.host + "/old:1", `its manifest has media type "application/vnd.docker.distribution.manifest.v1+json"`},
		{"127.0.0.1:1/x:1", "cannot reach"},
	} {
		r := runOpts(t, o, "image", "pull", ins, "--insecure-registry="+hc.host, c.ref)
		wantCode(t, r, 125)
		t.Logf("%s", strings.TrimSpace(r.stderr))
		if !strings.HasPrefix(r.stderr, "sandbox: image: pulling "+c.ref+": ") && !strings.HasPrefix(r.stderr, "sandbox: image: reference ") ||
			!strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("pull %s: want one line naming it and %q: %s", c.ref, c.want, r)
		}
	}
	noneKept("after the bad input")
}

// rawManifest is a manifest pushed as it is.
type rawManifest struct {
	body string
	mt   types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return []byte(m.body), nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
