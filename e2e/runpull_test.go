package e2e

import (
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// withUser is img with its config's User set.
func withUser(t *testing.T, img v1.Image, user string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.User = user
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestRunImagePull: run --image REF pulls from a registry when the image is
// missing (--pull=missing, the default), never with --pull=never (125 with
// the fix), again with --pull=always; --insecure-registry, --platform and
// SANDBOX_DEFAULT_REGISTRY reach the pull; the pulled image's User and Env
// apply.
func TestRunImagePull(t *testing.T) {
	full, why := fullMapPossible()
	requireOrSkip(t, full, why)
	o, _ := imageStore(t)
	reg := newRegistry(t, false, false)
	var manifests atomic.Int32 // manifest requests: one per pull
	reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			manifests.Add(1)
		}
		return false
	})
	base, users := baseLayer(t), usersLayer(t)
	v1img := withUser(t, testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin", "FROM=v1"}, base, users), "app:staff")
	reg.push(t, "test/app:1", v1img)
	ref := reg.host + "/test/app:1"
	ins := "--insecure-registry=" + reg.host
	script := []string{"--cwd=none", "--", "sh", "-c", "echo $(id -u) $(id -g) $HOME $FROM"}
	runImg := func(o opts, flags ...string) result {
		t.Helper()
		return runOpts(t, o, append(append([]string{"run", "--image"}, flags...), script...)...)
	}

	// --pull=never: nothing asked of the registry; the fix is named.
	manifests.Store(0)
	r := runImg(o, ref, ins, "--pull=never")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "sandbox image pull "+ref) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || manifests.Load() != 0 {
		t.Errorf("--pull=never of a missing image: want one line naming `sandbox image pull %s` and no request (%d made): %s", ref, manifests.Load(), r)
	}
	// A pull's socket never stands in for a --preserve-fds fd the caller left closed.
	r = runImg(o, ref, ins, "--preserve-fds=1")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "--preserve-fds 1: file descriptor 3 is not open") || manifests.Load() != 0 {
		t.Errorf("--preserve-fds with fd 3 closed: want 125 before any pull (%d requests made): %s", manifests.Load(), r)
	}
	// Plain HTTP only with --insecure-registry, as for image pull.
	r = runImg(o, ref)
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "--insecure-registry "+reg.host) {
		t.Errorf("a plain-HTTP registry without --insecure-registry: %s", r)
	}
	// Missing: pulled, its User (app:staff from its own files) and Env applied.
	r = runImg(o, ref, ins)
	wantCode(t, r, 0)
	if r.stdout != "1000 50 /home/app v1\n" || !strings.Contains(r.stderr, "layer ") {
		t.Errorf("run --image %s: want the pull's progress and `1000 50 /home/app v1`, got %s", ref, r)
	}
	if _, ok := imageLs(t, o)[ref]; !ok {
		t.Errorf("the pulled image is not in image ls: %v", imageLs(t, o))
	}
	// A newer image under the tag: missing keeps the stored one without
	// asking the registry; always pulls it.
	reg.push(t, "test/app:1", withUser(t, testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin", "FROM=v2"}, base, users), "1000"))
	manifests.Store(0)
	if r := runImg(o, ref, ins); r.code != 0 || r.stdout != "1000 50 /home/app v1\n" || manifests.Load() != 0 {
		t.Errorf("--pull=missing with the image stored: want the stored one and no request (%d made), got %s", manifests.Load(), r)
	}
	if r := runImg(o, ref, ins, "--pull=always"); r.code != 0 || r.stdout != "1000 1001 /home/app v2\n" || manifests.Load() == 0 {
		t.Errorf("--pull=always: want the registry's newer image, got %s", r)
	}
	// From the environment as any run flag: SANDBOX_PULL, SANDBOX_INSECURE_REGISTRY;
	// a short name goes to SANDBOX_DEFAULT_REGISTRY.
	reg.push(t, "test/other:2", withUser(t, testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin", "FROM=short"}, base, users), "app"))
	o2 := o
	o2.env = append(append([]string{}, o.env...), "SANDBOX_PULL=never", "SANDBOX_INSECURE_REGISTRY="+reg.host, "SANDBOX_DEFAULT_REGISTRY="+reg.host)
	if r := runImg(o2, "test/other:2"); r.code != 125 || !strings.Contains(r.stderr, "--pull=never") {
		t.Errorf("SANDBOX_PULL=never: %s", r)
	}
	if r := runImg(o2, "test/other:2", "--pull=missing"); r.code != 0 || r.stdout != "1000 1001 /home/app short\n" {
		t.Errorf("a short name from SANDBOX_DEFAULT_REGISTRY over SANDBOX_INSECURE_REGISTRY: %s", r)
	}
	if _, ok := imageLs(t, o)[reg.host+"/test/other:2"]; !ok {
		t.Errorf("the short name's image is not stored under its full reference: %v", imageLs(t, o))
	}
	// A short Docker Hub name finds the image stored under its full name.
	dir := tempDir(t)
	dockerSave(t, filepath.Join(dir, "hub.tar"), testImage{name: "hub", layers: [][]byte{base}, env: []string{"PATH=/bin", "FROM=hub"}})
	mustRun(t, o, "image", "import", "--name", "docker.io/library/hubimg:1", filepath.Join(dir, "hub.tar"))
	if r := runImg(o, "hubimg:1", "--pull=never"); r.code != 0 || r.stdout != "0 0 /root hub\n" {
		t.Errorf("hubimg:1 stored as docker.io/library/hubimg:1: %s", r)
	}
	// --platform picks from an index.
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: testV1Image(t, runtime.GOARCH, false, []string{"PATH=/bin", "FROM=mine"}, base),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
		mutate.IndexAddendum{Add: testV1Image(t, other, false, []string{"PATH=/bin", "FROM=" + other}, base),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}})
	idxRef, _ := name.ParseReference(reg.host + "/test/multi:1")
	if err := remote.WriteIndex(idxRef, idx, remote.WithTransport(reg.tr)); err != nil {
		t.Fatal(err)
	}
	if r := runImg(o, reg.host+"/test/multi:1", ins, "--platform=linux/"+other); r.code != 0 || r.stdout != "0 0 /root "+other+"\n" {
		t.Errorf("--platform linux/%s: %s", other, r)
	}
	if r := runImg(o, reg.host+"/test/multi:1", ins, "--platform=linux"); r.code != 125 || !strings.Contains(r.stderr, "--platform") {
		t.Errorf("a malformed --platform: %s", r)
	}
}
