package registry

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"sandbox/image"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		ref, def, want string
	}{
		{"alpine", "", "docker.io/library/alpine:latest"},
		{"alpine:3.20", "", "docker.io/library/alpine:3.20"},
		{"user/app", "", "docker.io/user/app:latest"},
		{"docker.io/alpine", "", "docker.io/library/alpine:latest"},
		{"index.docker.io/library/alpine:1", "", "docker.io/library/alpine:1"},
		{"quay.io/x/y:1", "", "quay.io/x/y:1"},
		{"localhost:5000/x", "", "localhost:5000/x:latest"},
		{"alpine@" + dg, "", "docker.io/library/alpine@" + dg},
		{"alpine", "reg.example:5000", "reg.example:5000/alpine:latest"},
		{"a/b:2", "reg.example", "reg.example/a/b:2"},
		{"quay.io/x", "reg.example", "quay.io/x:latest"},
	} {
		got, err := Normalize(c.ref, Config{DefaultRegistry: c.def})
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q, %q) = %q, %v; want %q", c.ref, c.def, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a::b", " alpine", "alpine@sha256:12", "a b"} {
		if got, err := Normalize(bad, Config{}); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("Normalize(%q) = %q, %v; want a malformed reference", bad, got, err)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]v1.Platform{
		"":             {OS: "linux", Architecture: runtime.GOARCH},
		"linux/arm64":  {OS: "linux", Architecture: "arm64"},
		"linux/arm/v7": {OS: "linux", Architecture: "arm", Variant: "v7"},
	} {
		if got, err := ParsePlatform(in); err != nil || got.String() != want.String() {
			t.Errorf("ParsePlatform(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q): want an error", bad)
		}
	}
}

type recorder struct{ urls []string }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.urls = append(r.urls, req.URL.String())
	return nil, errors.New("recorded")
}

// TestHTTPSOnly: plain HTTP only to the registries named insecure, even on
// loopback (where go-containerregistry would use it by itself).
func TestHTTPSOnly(t *testing.T) {
	rec := &recorder{}
	tr := httpsOnly{base: rec, insecure: []string{"127.0.0.1:5000"}}
	for _, u := range []string{"http://127.0.0.1:5001/v2/", "http://127.0.0.1:5000/v2/", "https://127.0.0.1:5000/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		tr.RoundTrip(req)
	}
	want := []string{"https://127.0.0.1:5001/v2/", "http://127.0.0.1:5000/v2/", "https://127.0.0.1:5000/v2/"}
	if strings.Join(rec.urls, " ") != strings.Join(want, " ") {
		t.Errorf("requests went to %q, want %q", rec.urls, want)
	}
}

// TestPick: an index resolves to the platform asked for; one it lacks is
// an error listing those it has.
func TestPick(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	amd, _ := random.Image(64, 1)
	arm, _ := random.Image(64, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}}})
	ref, _ := name.ParseReference(host + "/multi:1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithContext(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]v1.Image{"linux/amd64": amd, "linux/arm": arm, "linux/arm/v7": arm} {
		plat, _ := ParsePlatform(p)
		got, err := pick(desc, plat)
		if err != nil {
			t.Fatalf("pick %s: %v", p, err)
		}
		gd, _ := got.Digest()
		wd, _ := want.Digest()
		if gd != wd {
			t.Errorf("pick %s = %s, want %s", p, gd, wd)
		}
	}
	plat, _ := ParsePlatform("linux/arm/v6")
	if _, err := pick(desc, plat); err == nil || !strings.Contains(err.Error(), "it has linux/amd64, linux/arm/v7") {
		t.Errorf("pick linux/arm/v6: %v", err)
	}
}

// TestPullBadInput: what fails before the store is touched.
func TestPullBadInput(t *testing.T) {
	for _, c := range []struct{ ref, plat, want string }{
		{"UPPER", "", `reference "UPPER" is malformed`},
		{"alpine", "linux", "--platform"},
	} {
		if _, err := Pull(context.Background(), image.Store{Dir: t.TempDir()}, c.ref, Options{Platform: c.plat}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Pull(%q, %q): %v; want %q", c.ref, c.plat, err, c.want)
		}
	}
}
