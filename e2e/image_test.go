package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tarEntry is one member of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
}

func layerTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, Linkname: e.link,
			Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// testImage is an image to write into an archive: its layers (plain tars)
// and its config.
type testImage struct {
	name   string
	layers [][]byte
	env    []string
	cmd    []string
	wd     string
	user   string
}

func (im testImage) config(t testing.TB) []byte {
	var ids []string
	for _, l := range im.layers {
		ids = append(ids, digest(l))
	}
	b, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
		"config": map[string]any{"Env": im.env, "Cmd": im.cmd, "WorkingDir": im.wd, "User": im.user},
		"rootfs": map[string]any{"type": "layers", "diff_ids": ids},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type outerTar struct {
	t  testing.TB
	tw *tar.Writer
	f  *os.File
}

func newOuter(t testing.TB, p string) *outerTar {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	return &outerTar{t, tar.NewWriter(f), f}
}

func (o *outerTar) add(name string, b []byte) {
	if err := o.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		o.t.Fatal(err)
	}
	if _, err := o.tw.Write(b); err != nil {
		o.t.Fatal(err)
	}
}

func (o *outerTar) close() {
	if err := o.tw.Close(); err != nil {
		o.t.Fatal(err)
	}
	if err := o.f.Close(); err != nil {
		o.t.Fatal(err)
	}
}

// dockerSave writes im as `docker save` does (the old layout: <id>/layer.tar,
// <config digest>.json, manifest.json), layers uncompressed.
func dockerSave(t testing.TB, p string, im testImage) {
	o := newOuter(t, p)
	cfg := im.config(t)
	cfgName := strings.TrimPrefix(digest(cfg), "sha256:") + ".json"
	o.add(cfgName, cfg)
	var layers []string
	for _, l := range im.layers {
		n := strings.TrimPrefix(digest(l), "sha256:") + "/layer.tar"
		o.add(n, l)
		layers = append(layers, n)
	}
	m, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{im.name}, "Layers": layers}})
	o.add("manifest.json", m)
	o.close()
}

// ociLayout writes im as an OCI image layout with gzip'd layers.
func ociLayout(t testing.TB, p string, im testImage) {
	o := newOuter(t, p)
	o.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	blob := func(b []byte) string {
		d := digest(b)
		o.add("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b)
		return d
	}
	cfg := im.config(t)
	var layers []map[string]any
	for _, l := range im.layers {
		z := gzipped(t, l)
		layers = append(layers, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(z), "size": len(z)})
	}
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
		"layers": layers})
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(man), "size": len(man),
		"annotations": map[string]string{"org.opencontainers.image.ref.name": im.name}}}})
	o.add("index.json", idx)
	o.close()
}

// baseLayer is a small busybox tree: /bin/busybox and its links, /etc/passwd,
// a file the next layer removes and a directory it makes opaque.
func baseLayer(t testing.TB) []byte {
	bb, err := os.ReadFile("/bin/busybox")
	requireOrSkip(t, err == nil, "busybox-static (/bin/busybox) for the image tests")
	es := []tarEntry{{name: "bin/", typ: tar.TypeDir}, {name: "bin/busybox", body: string(bb), mode: 0o755}}
	for _, app := range []string{"sh", "ls", "cat", "echo", "pwd", "test", "stat", "id", "env", "true", "sleep", "head"} {
		es = append(es, tarEntry{name: "bin/" + app, typ: tar.TypeSymlink, link: "busybox"})
	}
	return layerTar(t, append(es,
		tarEntry{name: "etc/", typ: tar.TypeDir},
		tarEntry{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"},
		tarEntry{name: "etc/gone", body: "base\n"},
		tarEntry{name: "opq/", typ: tar.TypeDir},
		tarEntry{name: "opq/base-a", body: "a\n"},
		tarEntry{name: "opq/base-b", body: "b\n"},
	))
}

// upperLayer adds a file of uid 1000, whites out etc/gone, makes opq opaque.
func upperLayer(t testing.TB) []byte {
	return layerTar(t, []tarEntry{
		{name: "home/", typ: tar.TypeDir},
		{name: "home/user/", typ: tar.TypeDir, uid: 1000, gid: 1000},
		{name: "home/user/mine", body: "owned by 1000\n", uid: 1000, gid: 1000},
		{name: "etc/.wh.gone"},
		{name: "opq/", typ: tar.TypeDir},
		{name: "opq/.wh..wh..opq"},
		{name: "opq/upper", body: "u\n"},
		{name: "app/", typ: tar.TypeDir},
	})
}

// imageStore sets up a private store ($XDG_DATA_HOME) and removes its
// contents at the end through a sandbox (files of subordinate ids).
func imageStore(t *testing.T) (opts, string) {
	data := tempDir(t)
	store := filepath.Join(data, "sandbox")
	o := opts{env: []string{"XDG_DATA_HOME=" + data}, timeout: 2 * time.Minute}
	t.Cleanup(func() {
		if exists(store) {
			runOpts(t, opts{}, "run", "--cwd=none", "--bind", data+":/data", "--", "rm", "-rf", "/data/sandbox")
		}
	})
	return o, store
}

// storeBytes is the disk usage of the store's layers, measured inside a
// sandbox (root there reads every layer whatever its owner).
func storeBytes(t *testing.T, store string) int64 {
	t.Helper()
	r := mustRun(t, opts{}, "run", "--cwd=none", "--bind", store+":/store:ro", "--", "du", "-s", "-B1", "/store/layers")
	n, err := strconv.ParseInt(strings.Fields(r.stdout)[0], 10, 64)
	if err != nil {
		t.Fatalf("du: %v: %q", err, r.stdout)
	}
	return n
}

type lsRow struct {
	Name       string `json:"name"`
	Ref        string `json:"ref"`
	Digest     string `json:"digest"`
	ID         string `json:"id"`
	Layers     int    `json:"layers"`
	SizeUnique int64  `json:"size_unique"`
	SizeShared int64  `json:"size_shared"`
	Created    string `json:"created"`
}

func imageLs(t *testing.T, o opts) map[string]lsRow {
	t.Helper()
	r := mustRun(t, o, "image", "ls", "--json")
	var rows []lsRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("image ls --json: %v\n%s", err, r)
	}
	out := map[string]lsRow{}
	for _, row := range rows {
		out[row.Name] = row
	}
	return out
}

// TestImage: two images sharing a base layer, one a docker-save tarball, one
// an OCI layout with gzip'd layers: import, dedup, run, ls, rm.
func TestImage(t *testing.T) {
	full, why := fullMapPossible()
	requireOrSkip(t, full, why)
	o, store := imageStore(t)
	dir := tempDir(t)
	base, upper := baseLayer(t), upperLayer(t)
	other := layerTar(t, []tarEntry{{name: "b-only", body: strings.Repeat("b", 100000)}})
	a := testImage{name: "test/a:1", layers: [][]byte{base, upper}, env: []string{"PATH=/bin", "GREETING=hello from a"},
		cmd: []string{"sh", "-c", "echo cmd ran in $(pwd): $GREETING"}, wd: "/app"}
	b := testImage{name: "test/b", layers: [][]byte{base, other}, env: []string{"PATH=/bin"}, cmd: []string{"cat", "/b-only"}}
	dockerSave(t, filepath.Join(dir, "a.tar"), a)
	ociLayout(t, filepath.Join(dir, "b.tar"), b)

	mustRun(t, o, "image", "import", filepath.Join(dir, "a.tar"))
	afterA := storeBytes(t, store)
	r := mustRun(t, o, "image", "import", filepath.Join(dir, "a.tar"))
	if !strings.Contains(r.stdout, "0 layers unpacked") || storeBytes(t, store) != afterA {
		t.Errorf("a second import of the same image unpacked again (store %d bytes, was %d): %s", storeBytes(t, store), afterA, r)
	}
	r = mustRun(t, o, "image", "import", "--name", "test/b:2", filepath.Join(dir, "b.tar"))
	if !strings.Contains(r.stdout, "1 layers unpacked") || !strings.Contains(r.stdout, "1 already in the store") {
		t.Errorf("importing b should unpack only its own layer: %s", r)
	}
	afterB := storeBytes(t, store)
	rows := imageLs(t, o)
	t.Logf("store after importing a: %d bytes; after b (sharing a's base): %d bytes (+%d); base layer %d bytes on disk, b's own layer %d",
		afterA, afterB, afterB-afterA, rows["test/b:2"].SizeShared, rows["test/b:2"].SizeUnique)
	if len(rows) != 2 || rows["test/a:1"].Layers != 2 || rows["test/b:2"].Layers != 2 {
		t.Fatalf("image ls: want test/a:1 and test/b:2 with 2 layers each, got %+v", rows)
	}
	baseSize := rows["test/a:1"].SizeShared
	if baseSize < int64(len(base))/2 || baseSize != rows["test/b:2"].SizeShared {
		t.Errorf("the shared base should count about %d bytes in both images: %+v", len(base), rows)
	}
	if grow := afterB - afterA; grow >= baseSize || grow < rows["test/b:2"].SizeUnique {
		t.Errorf("importing b grew the store by %d bytes: want b's own layer (%d), not the shared base again (%d)",
			grow, rows["test/b:2"].SizeUnique, baseSize)
	}
	if rows["test/a:1"].Created != "2026-01-02T03:04:05Z" || !strings.HasPrefix(rows["test/a:1"].ID, "sha256:") {
		t.Errorf("image ls: created/id of a: %+v", rows["test/a:1"])
	}
	if r := mustRun(t, o, "image", "ls"); !strings.Contains(r.stdout, "test/a:1") || !strings.Contains(r.stdout, "SHARED") {
		t.Errorf("image ls: %s", r)
	}

	// The upper layer's file, its owner, the whiteout and the opaque directory.
	o2 := o
	o2.env = append(o2.env, "LEAK=caller", "TERM=xterm-test")
	r = mustRun(t, o2, "run", "--image", "test/a:1", "--cwd=none", "-e", "EXTRA=1", "--", "sh", "-c",
		`ls -n /home/user/mine; test -e /etc/gone && echo GONE-PRESENT; echo opq: $(ls -A /opq); cat /etc/passwd | head -1; echo "env: $GREETING|$LEAK|$TERM|$EXTRA"; pwd`)
	out := r.stdout
	if f := strings.Fields(out); len(f) < 4 || f[2] != "1000" || f[3] != "1000" {
		t.Errorf("ls -n inside: want the file owned by 1000:1000, got %q", out)
	}
	for _, want := range []string{"opq: upper\n", "root:x:0:0", "env: hello from a||xterm-test|1\n", "\n/app\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("run --image: want %q in the output, got:\n%s", want, out)
		}
	}
	if strings.Contains(out, "GONE-PRESENT") {
		t.Errorf("the whited-out /etc/gone is visible: %s", out)
	}
	uids := expectedRanges("/etc/subuid")
	var st syscall.Stat_t
	mine := filepath.Join(store, "layers", "sha256", strings.TrimPrefix(digest(upper), "sha256:"), "home", "user", "mine")
	if err := syscall.Lstat(mine, &st); err != nil {
		t.Fatalf("the layer's file on the host: %v", err)
	}
	if want := uids[0].start + 999; int64(st.Uid) != want {
		t.Errorf("on the host %s is owned by %d, want %d (subuid start %d + 999)", mine, st.Uid, want, uids[0].start)
	}
	// The image's default command and working directory.
	if r := mustRun(t, o, "run", "--image", "test/a:1", "--cwd=none"); r.stdout != "cmd ran in /app: hello from a\n" {
		t.Errorf("the image's Cmd: %s", r)
	}
	if r := mustRun(t, o, "run", "--image", "test/b:2", "--cwd=none"); r.stdout != strings.Repeat("b", 100000) {
		t.Errorf("image b's Cmd: %s", clip(r.stdout))
	}
	wantCode(t, runOpts(t, o, "run", "--image", "test/a:1", "--rootfs", dir, "--", "true"), 125)
	r = runOpts(t, o, "run", "--image", "nosuch", "--pull=never", "--", "true")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "sandbox image pull nosuch") {
		t.Errorf("--pull=never of a missing image should name the fix: %s", r)
	}

	// rm: a running sandbox keeps its layers; the last rm empties the store.
	p := start(t, o, "run", "--image", "test/b:2", "--cwd=none", "--", "sh", "-c", "echo up; sleep 60")
	if !p.waitStdout("up", 30*time.Second) {
		t.Fatalf("the sandbox did not start: %s", p.wait())
	}
	r = runOpts(t, o, "image", "rm", "test/b:2")
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "in use by a running sandbox") {
		t.Errorf("rm of an image in use: %s", r)
	}
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	p.wait()
	mustRun(t, o, "image", "rm", "test/b:2")
	if rows := imageLs(t, o); len(rows) != 1 {
		t.Errorf("after rm of b: %+v", rows)
	}
	if !exists(filepath.Join(store, "layers", "sha256", strings.TrimPrefix(digest(base), "sha256:"))) {
		t.Errorf("rm of b removed the base layer a still uses")
	}
	mustRun(t, o, "run", "--image", "test/a:1", "--cwd=none", "--", "true")
	mustRun(t, o, "image", "rm", "test/a:1")
	wantCode(t, runOpts(t, o, "image", "rm", "test/a:1"), 125)
	for _, d := range []string{"layers/sha256", "images"} {
		if ents, err := os.ReadDir(filepath.Join(store, d)); err != nil || len(ents) != 0 {
			t.Errorf("after rm of both images %s holds %d entries (%v)", d, len(ents), err)
		}
	}
}

// TestImageUnsafe: layers that reach outside themselves are refused, and
// nothing is written outside the store.
func TestImageUnsafe(t *testing.T) {
	o, store := imageStore(t)
	dir := tempDir(t)
	outside := slashTmpDir(t)
	cases := map[string][]tarEntry{
		"dotdot":   {{name: "a/../../escape", body: "x"}},
		"absolute": {{name: filepath.Join(outside, "abs"), body: "x"}},
		"symlink-write": {
			{name: "esc", typ: tar.TypeSymlink, link: outside},
			{name: "esc/pwned", body: "x"},
		},
		"symlink-relative": {{name: "d/esc", typ: tar.TypeSymlink, link: "../../.."}},
		"hardlink":         {{name: "hl", typ: tar.TypeLink, link: "../../../etc/passwd"}},
		"hardlink-abs":     {{name: "hl", typ: tar.TypeLink, link: "/etc/passwd"}},
	}
	for name, es := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".tar")
			dockerSave(t, p, testImage{name: "bad/" + name, layers: [][]byte{layerTar(t, es)}})
			r := runOpts(t, o, "image", "import", p)
			wantCode(t, r, 125)
			// Once: the helper's message was wrapped again as an entry
			// named "" ("unsafe layer entry \"\": layer …: unsafe …").
			if strings.Count(r.stderr, "unsafe layer entry") != 1 || strings.Contains(r.stderr, `entry ""`) {
				t.Errorf("want the refusal to name the unsafe entry, once: %s", r)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("the import wrote %s outside the store", ents[0].Name())
			}
			for _, d := range []string{"layers/sha256", "images"} {
				if ents, _ := os.ReadDir(filepath.Join(store, d)); len(ents) != 0 {
					t.Errorf("the refused import left %s in %s", ents[0].Name(), d)
				}
			}
		})
	}
	for _, p := range []string{filepath.Join(dir, "escape"), "/escape"} {
		if exists(p) {
			t.Errorf("%s was written", p)
		}
	}
}

// TestImageKilledImport: SIGKILL during the unpacking leaves no layer a later
// run or import would use; the next import cleans up and succeeds. The layer
// has many files, so that its unpacking lasts long enough to be caught.
func TestImageKilledImport(t *testing.T) {
	o, store := imageStore(t)
	dir := tempDir(t)
	const files = 20000
	es := []tarEntry{{name: "many/", typ: tar.TypeDir}}
	for i := range files {
		es = append(es, tarEntry{name: fmt.Sprintf("many/f%05d", i), body: "x"})
	}
	many := layerTar(t, es)
	im := testImage{name: "many", layers: [][]byte{baseLayer(t), many}, env: []string{"PATH=/bin"}}
	ociLayout(t, filepath.Join(dir, "many.tar"), im)
	hexID := strings.TrimPrefix(digest(many), "sha256:")
	layers := filepath.Join(store, "layers", "sha256")
	p := start(t, o, "image", "import", filepath.Join(dir, "many.tar"))
	killed := false
	for deadline := time.Now().Add(60 * time.Second); !killed && time.Now().Before(deadline) && !p.exited(); time.Sleep(2 * time.Millisecond) {
		ents, _ := os.ReadDir(layers)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-"+hexID[:12]) && !killed {
				time.Sleep(100 * time.Millisecond)
				syscall.Kill(-p.pid(), syscall.SIGKILL)
				killed = true
			}
		}
	}
	r := p.wait()
	if !killed || !r.signaled {
		t.Fatalf("the import was not killed while unpacking the layer of %d files: %s", files, r)
	}
	if exists(filepath.Join(layers, hexID)) {
		t.Fatalf("a killed import left the layer under its final name")
	}
	if exists(filepath.Join(store, "images", "many%3Alatest.json")) {
		t.Fatalf("a killed import recorded the image")
	}
	wantCode(t, runOpts(t, o, "run", "--image", "many", "--pull=never", "--", "true"), 125)
	t0 := time.Now()
	mustRun(t, o, "image", "import", filepath.Join(dir, "many.tar"))
	t.Logf("a whole import of the %d-file layer takes %v", files, time.Since(t0).Round(time.Millisecond))
	if ents, _ := os.ReadDir(layers); len(ents) != 2 {
		t.Errorf("after the second import the store holds %d entries, want the 2 layers (the dead import's temp dir removed)", len(ents))
	}
	r = mustRun(t, o, "run", "--image", "many", "--cwd=none", "--", "sh", "-c", fmt.Sprintf("test -f /many/f00000 && test -f /many/f%05d && echo complete", files-1))
	if r.stdout != "complete\n" {
		t.Errorf("the layer inside: %s", r)
	}
	mustRun(t, o, "image", "rm", "many")
}
