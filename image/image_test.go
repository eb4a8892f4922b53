package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/idmap"
	"sandbox/image/decompress"

	"golang.org/x/sys/unix"
)

func TestEntryPath(t *testing.T) {
	for in, want := range map[string]string{"a/b": "a/b", "./a//b/": "a/b", ".": "", "./": ""} {
		if got, err := entryPath(in); err != nil || got != want {
			t.Errorf("entryPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/etc/passwd", "../x", "a/../../x", "a/.."} {
		var ue *UnsafeError
		if _, err := entryPath(bad); !errors.As(err, &ue) {
			t.Errorf("entryPath(%q): want an UnsafeError, got %v", bad, err)
		}
	}
	for p, want := range map[string]bool{"a/../b": false, "a/../../b": true, "..": true, "a/b/../..": false} {
		if escapes(p) != want {
			t.Errorf("escapes(%q) = %v", p, !want)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{"a": "a:latest", "reg:5000/x/y": "reg:5000/x/y:latest", "x/y:1.2": "x/y:1.2"} {
		if got, err := NormalizeName(in); err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// ".", ".tmp-x": hidden records, never listed, swept as temporary.
	for _, bad := range []string{"", "/a", "a/../b", "a b", "a\nb", ".", ".tmp-x", "a/.b", "a//b", "_x", "-x:1"} {
		if _, err := NormalizeName(bad); err == nil {
			t.Errorf("NormalizeName(%q): want an error", bad)
		}
	}
}

type entry struct {
	h    tar.Header
	body string
}

func mkTar(t *testing.T, es []entry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := e.h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return b.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestUnpackLayer unpacks as the test's own user (its id mapped to
// itself): files, a setuid bit, links, whiteouts, a gzip'd stream, the
// digest check.
func TestUnpackLayer(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	layer := mkTar(t, []entry{
		{tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid}, ""},
		{tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: uid, Gid: gid}, "data"},
		{tar.Header{Name: "d/hl", Typeflag: tar.TypeLink, Linkname: "d/f", Uid: uid, Gid: gid}, ""},
		{tar.Header{Name: "d/sl", Typeflag: tar.TypeSymlink, Linkname: "/etc/abs", Uid: uid, Gid: gid}, ""},
		{tar.Header{Name: "d/.wh.gone", Typeflag: tar.TypeReg, Uid: uid, Gid: gid}, ""},
		{tar.Header{Name: "o/.wh..wh..opq", Typeflag: tar.TypeReg, Uid: uid, Gid: gid}, ""},
		{tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Uid: uid, Gid: gid}, ""},
	})
	own := idSet{{Inside: uint32(uid), Count: 1}}
	owng := idSet{{Inside: uint32(gid), Count: 1}}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(layer)
	zw.Close()
	root := filepath.Join(t.TempDir(), "l")
	os.Mkdir(root, 0o755)
	st, err := unpackLayer(&z, decompress.Layer, root, sum(layer), own, owng, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.SkippedDevices != 1 || st.UnmappedIDs != 0 || st.Size <= 0 {
		t.Errorf("stats: %+v", st)
	}
	var s unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "d/f"), &s); err != nil || s.Mode&0o7777 != 0o4755 || s.Nlink != 2 {
		t.Errorf("d/f: mode %o nlink %d (%v): want 4755 with 2 links", s.Mode&0o7777, s.Nlink, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "d/sl")); err != nil || l != "/etc/abs" {
		t.Errorf("d/sl: %q %v", l, err)
	}
	if err := unix.Lstat(filepath.Join(root, "d/gone"), &s); err != nil || s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != 0 {
		t.Errorf("d/gone: want a 0:0 character device, got mode %o rdev %d (%v)", s.Mode, s.Rdev, err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(root, "o"), opaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("o: want %s=y, got %q (%v)", opaqueXattr, buf[:n], err)
	}
	if exists(filepath.Join(root, "dev/null")) {
		t.Error("a device node was created")
	}

	root2 := filepath.Join(t.TempDir(), "l")
	os.Mkdir(root2, 0o755)
	if _, err := unpackLayer(bytes.NewReader(layer), decompress.Layer, root2, sum([]byte("other")), own, owng, 0); err == nil {
		t.Error("a wrong diff_id was accepted")
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestIDSet: which tar owners the unpacking keeps (the others become 0).
func TestIDSet(t *testing.T) {
	s := idSet{idmap.Mapping{Inside: 0, Outside: 1000, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}}
	for id, want := range map[int]bool{0: true, 1: true, 65536: true, 65537: false, -1: false} {
		if s.has(id) != want {
			t.Errorf("has(%d) = %v", id, !want)
		}
	}
}

// TestArchiveLayouts: docker save's new layout (symlinked layer names) and
// an OCI layout with a nested index.
func TestArchiveLayouts(t *testing.T) {
	layer := mkTar(t, []entry{{tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, "x"}})
	cfg, _ := json.Marshal(map[string]any{"created": "2026-01-01T00:00:00Z", "config": map[string]any{"Cmd": []string{"sh"}},
		"rootfs": map[string]any{"diff_ids": []string{sum(layer)}}})
	blob := func(b []byte) string { return "blobs/sha256/" + sum(b)[7:] }
	man, _ := json.Marshal(map[string]any{"config": map[string]any{"digest": sum(cfg)},
		"layers": []map[string]any{{"digest": sum(layer), "mediaType": "application/vnd.oci.image.layer.v1.tar"}}})
	inner, _ := json.Marshal(map[string]any{"manifests": []map[string]any{{"digest": sum(man),
		"platform": map[string]string{"architecture": runtime.GOARCH, "os": "linux"}}}})
	index, _ := json.Marshal(map[string]any{"manifests": []map[string]any{{"digest": sum(inner),
		"annotations": map[string]string{"org.opencontainers.image.ref.name": "x:1"}}}})
	dmanifest, _ := json.Marshal([]map[string]any{{"Config": blob(cfg), "RepoTags": []string{"d:1"}, "Layers": []string{"abc/layer.tar"}}})
	for name, members := range map[string][]entry{
		"oci": {{tar.Header{Name: "index.json"}, string(index)}, {tar.Header{Name: blob(inner)}, string(inner)},
			{tar.Header{Name: blob(man)}, string(man)}, {tar.Header{Name: blob(cfg)}, string(cfg)}, {tar.Header{Name: blob(layer)}, string(layer)}},
		"docker": {{tar.Header{Name: "manifest.json"}, string(dmanifest)}, {tar.Header{Name: blob(cfg)}, string(cfg)},
			{tar.Header{Name: blob(layer)}, string(layer)},
			{tar.Header{Name: "abc/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../" + blob(layer)}, ""}},
	} {
		t.Run(name, func(t *testing.T) {
			for i := range members {
				if members[i].h.Typeflag == 0 {
					members[i].h.Typeflag, members[i].h.Mode = tar.TypeReg, 0o644
				}
			}
			p := filepath.Join(t.TempDir(), "a.tar")
			os.WriteFile(p, mkTar(t, members), 0o644)
			a, err := openArchive(p)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			srcs, err := a.images()
			if err != nil || len(srcs) != 1 {
				t.Fatalf("images: %v %v", srcs, err)
			}
			s := srcs[0]
			if s.id != sum(cfg) || len(s.names) != 1 || s.config.Config.Cmd[0] != "sh" {
				t.Errorf("source: %+v", s)
			}
			r, _, err := a.open(s.layers[0])
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			got.ReadFrom(r)
			if !bytes.Equal(got.Bytes(), layer) {
				t.Error("the layer member reads back different bytes")
			}
		})
	}
}

// TestArchiveRefusesOtherPlatformsAndAlteredBlobs: an OCI index with no
// image for this machine is refused naming what it has (before, its first
// entry was imported without a word), and a manifest or config whose
// content does not match the digest that names it is refused as damaged
// or altered (before, only layers were checked), in OCI layouts and in
// docker save's newer layout.
func TestArchiveRefusesOtherPlatformsAndAlteredBlobs(t *testing.T) {
	other := "s390x"
	if runtime.GOARCH == other {
		other = "riscv64"
	}
	layer := mkTar(t, []entry{{tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, "x"}})
	cfg, _ := json.Marshal(map[string]any{"rootfs": map[string]any{"diff_ids": []string{sum(layer)}}})
	altered, _ := json.Marshal(map[string]any{"config": map[string]any{"User": "bob"}, "rootfs": map[string]any{"diff_ids": []string{sum(layer)}}})
	blob := func(b []byte) string { return "blobs/sha256/" + sum(b)[7:] }
	man, _ := json.Marshal(map[string]any{"config": map[string]any{"digest": sum(cfg)},
		"layers": []map[string]any{{"digest": sum(layer), "mediaType": "application/vnd.oci.image.layer.v1.tar"}}})
	ociArchive := func(arch string, manBytes, cfgBytes []byte) []entry {
		inner, _ := json.Marshal(map[string]any{"manifests": []map[string]any{
			{"digest": sum(man), "platform": map[string]string{"architecture": arch, "os": "linux"}},
			{"digest": sum(man), "platform": map[string]string{"architecture": "unknown", "os": "unknown"}}}})
		index, _ := json.Marshal(map[string]any{"manifests": []map[string]any{{"digest": sum(inner)}}})
		return []entry{{tar.Header{Name: "index.json"}, string(index)}, {tar.Header{Name: blob(inner)}, string(inner)},
			{tar.Header{Name: blob(man)}, string(manBytes)}, {tar.Header{Name: blob(cfg)}, string(cfgBytes)},
			{tar.Header{Name: blob(layer)}, string(layer)}}
	}
	dmanifest, _ := json.Marshal([]map[string]any{{"Config": blob(cfg), "Layers": []string{blob(layer)}}})
	for name, c := range map[string]struct {
		members []entry
		want    string
	}{
		"other platform":  {ociArchive(other, man, cfg), "has no image for linux/" + runtime.GOARCH + " (it has linux/" + other + ")"},
		"manifest":        {ociArchive(runtime.GOARCH, append(man, ' '), cfg), "damaged or altered"},
		"config":          {ociArchive(runtime.GOARCH, man, altered), "damaged or altered"},
		"docker's config": {[]entry{{tar.Header{Name: "manifest.json"}, string(dmanifest)}, {tar.Header{Name: blob(cfg)}, string(altered)}, {tar.Header{Name: blob(layer)}, string(layer)}}, "damaged or altered"},
	} {
		t.Run(name, func(t *testing.T) {
			for i := range c.members {
				c.members[i].h.Typeflag, c.members[i].h.Mode = tar.TypeReg, 0o644
			}
			p := filepath.Join(t.TempDir(), "a.tar")
			os.WriteFile(p, mkTar(t, c.members), 0o644)
			a, err := openArchive(p)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if srcs, err := a.images(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("images: %+v, %v; want an error with %q", srcs, err, c.want)
			}
		})
	}
	// The right platform and untouched blobs import.
	p := filepath.Join(t.TempDir(), "a.tar")
	good := ociArchive(runtime.GOARCH, man, cfg)
	for i := range good {
		good[i].h.Typeflag, good[i].h.Mode = tar.TypeReg, 0o644
	}
	os.WriteFile(p, mkTar(t, good), 0o644)
	a, err := openArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if srcs, err := a.images(); err != nil || len(srcs) != 1 || srcs[0].id != sum(cfg) {
		t.Errorf("images of a good archive: %+v, %v", srcs, err)
	}
}

// A gzip bomb (1 MiB of zeros in one file, ~1 KiB compressed) with a
// bound of 256 KiB: refused once the bound is passed, with little
// written, whether its diff_id is right or not.
func TestUnpackBombBounded(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	zeros := string(make([]byte, 1<<20))
	layer := mkTar(t, []entry{{tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Uid: uid, Gid: gid}, zeros}})
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zw.Write(layer)
	zw.Close()
	own := idSet{{Inside: uint32(uid), Count: 1}}
	owng := idSet{{Inside: uint32(gid), Count: 1}}
	const limit = 256 << 10
	for _, diffID := range []string{sum(layer), sum([]byte("wrong"))} {
		root := filepath.Join(t.TempDir(), "l")
		os.Mkdir(root, 0o755)
		_, err := unpackLayer(bytes.NewReader(z.Bytes()), decompress.Layer, root, diffID, own, owng, limit)
		var tb *TooBigError
		if !errors.As(err, &tb) {
			t.Fatalf("a %d-byte bomb of 1 MiB with a bound of %d: %v, want a TooBigError", z.Len(), limit, err)
		}
		if fi, err := os.Stat(filepath.Join(root, "zeros")); err == nil && fi.Size() > limit+64<<10 {
			t.Errorf("%d bytes written before the refusal, bound %d", fi.Size(), limit)
		}
	}
	// The same layer within its bound unpacks.
	root := filepath.Join(t.TempDir(), "l")
	os.Mkdir(root, 0o755)
	if _, err := unpackLayer(bytes.NewReader(z.Bytes()), decompress.Layer, root, sum(layer), own, owng, 2<<20); err != nil {
		t.Fatalf("within the bound: %v", err)
	}
	if got := layerLimit(int64(z.Len()), DefaultMaxExpansion); got != minLayerLimit {
		t.Errorf("layerLimit of a small layer = %d, want the floor %d", got, minLayerLimit)
	}
	if got := layerLimit(1<<30, 100); got != 100<<30 {
		t.Errorf("layerLimit(1 GiB, 100) = %d", got)
	}
}

// A blob whose content does not match the digest the archive names is
// refused before anything is unpacked.
func TestUnpackChecksBlobDigest(t *testing.T) {
	blob := mkTar(t, []entry{{tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Uid: os.Getuid(), Gid: os.Getgid()}, "x"}})
	dir := t.TempDir()
	p := filepath.Join(dir, "blob")
	os.WriteFile(p, blob, 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	final := filepath.Join(dir, "0123456789abcdef")
	l := layerJob{Size: int64(len(blob)), DiffID: sum(blob), Final: final, Digest: sum([]byte("other")), Limit: 1 << 20}
	j := job{UIDs: []idmap.Mapping{{Inside: uint32(os.Getuid()), Count: 1}}, GIDs: []idmap.Mapping{{Inside: uint32(os.Getgid()), Count: 1}}}
	if _, err := unpackInto(io.NewSectionReader(f, 0, l.Size), l, j, decompress.Layer); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("a blob with a wrong digest: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("something was unpacked: %v", ents)
	}
	l.Digest = sum(blob)
	if _, err := unpackInto(io.NewSectionReader(f, 0, l.Size), l, j, decompress.Layer); err != nil {
		t.Fatalf("the right digest: %v", err)
	}
	if blobDigest("blobs/sha256/"+sum(blob)[7:]) != sum(blob) || blobDigest("abc/layer.tar") != "" {
		t.Errorf("blobDigest does not read blobs/sha256/HEX names")
	}
}

// TestHelperWithoutDecompress: sandbox's own helper (no decompressors
// linked) refuses to unpack, naming the one that does, and still removes.
func TestHelperWithoutDecompress(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "0123456789abcdef0123")
	os.Mkdir(gone, 0o755)
	var res jobResult
	if err := doJob(job{Remove: []string{gone}}, &res, nil); err != nil {
		t.Fatalf("removing without decompress: %v", err)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("not removed: %v", err)
	}
	err := doJob(job{Archive: filepath.Join(dir, "none"), Unpack: []layerJob{{Final: filepath.Join(dir, "x")}}}, &res, nil)
	if err == nil || !strings.Contains(err.Error(), "sandbox-pull") {
		t.Errorf("unpacking without decompress: %v", err)
	}
}

// TestDefaultStoreRelativeHome: a relative HOME (and no XDG_DATA_HOME) is
// refused, not taken below the working directory.
func TestDefaultStoreRelativeHome(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "relative-home")
	if s, err := DefaultStore(); err == nil || !strings.Contains(err.Error(), `$HOME "relative-home" is not an absolute path`) {
		t.Errorf("DefaultStore with HOME=relative-home: %q, %v; want an error naming HOME", s.Dir, err)
	}
	t.Setenv("HOME", "/home/someone")
	if s, err := DefaultStore(); err != nil || s.Dir != "/home/someone/.local/share/sandbox" {
		t.Errorf("DefaultStore with HOME=/home/someone: %q, %v", s.Dir, err)
	}
}

// TestArchiveNotARegularFile: a FIFO (or a directory) given as the archive
// is refused in one line; before, opening a FIFO hung import for good.
func TestArchiveNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, dir} {
		done := make(chan error, 1)
		go func() {
			a, err := openArchive(p)
			if err == nil {
				a.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("openArchive(%s): %v, want refused as not a regular file", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("openArchive(%s) hangs", p)
		}
	}
}

// TestUnpackGNUSparseAndContiguous: GNU tar's sparse entries ('S', from
// `tar --sparse --format=gnu`) and contiguous files ('7') unpack as the
// regular files they are; before, both were "unsupported tar entry type".
func TestUnpackGNUSparseAndContiguous(t *testing.T) {
	src := t.TempDir()
	sparse := filepath.Join(src, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("end"), 1<<20)
	f.Close()
	out, err := exec.Command("tar", "--sparse", "--format=gnu", "-C", src, "-cf", "-", "sparse").Output()
	if err != nil {
		t.Fatalf("GNU tar (Debian's tar package): %v", err)
	}
	if out[156] != 'S' {
		t.Fatalf("tar wrote type %q, not a GNU sparse entry", out[156])
	}
	// A contiguous file: a regular entry retyped '7', its checksum redone.
	cont := mkTar(t, []entry{{tar.Header{Name: "cont", Typeflag: tar.TypeReg, Mode: 0o644, Uid: os.Getuid(), Gid: os.Getgid()}, "contiguous"}})
	cont[156] = '7'
	copy(cont[148:156], "        ")
	var chk int64
	for _, c := range cont[:512] {
		chk += int64(c)
	}
	copy(cont[148:156], fmt.Sprintf("%06o\x00 ", chk))
	for name, layer := range map[string][]byte{"sparse": out, "cont": cont} {
		root := filepath.Join(t.TempDir(), "l")
		os.Mkdir(root, 0o755)
		own := idSet{{Inside: uint32(os.Getuid()), Count: 1}}
		owng := idSet{{Inside: uint32(os.Getgid()), Count: 1}}
		if _, err := unpackLayer(bytes.NewReader(layer), decompress.Layer, root, sum(layer), own, owng, 0); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, name))
		switch {
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case name == "sparse" && (len(b) != 1<<20+3 || string(b[1<<20:]) != "end" || bytes.Count(b[:1<<20], []byte{0}) != 1<<20):
			t.Errorf("sparse: %d bytes, want 1 MiB of zeros and \"end\"", len(b))
		case name == "cont" && string(b) != "contiguous":
			t.Errorf("cont: %q", b)
		}
	}
}
