package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandbox/internal/oneline"

	"golang.org/x/sys/unix"
)

// FuzzEntryPath checks entryPath, the only gate between a member name of
// a hostile layer and a path under the layer's root: it never panics,
// refuses with a one-line UnsafeError, and what it accepts is "" (the
// root) or a clean relative path with no ".." component, the same file
// the name names, so that joining it to the root stays under the root.
func FuzzEntryPath(f *testing.F) {
	for _, s := range []string{
		"", ".", "./", "a", "a/b", "./a//b/", "/", "/abs", "//x", "../x", "..", "a/..", "a/../b",
		"a/../../x", "./../x", "a/./../..", "...", "..a", "a..", ".wh..", ".wh..wh..opq", "a\x00b",
		"a\nb", "\xff/..", strings.Repeat("a/", 2100), strings.Repeat("../", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := entryPath(name)
		if err != nil {
			var ue *UnsafeError
			if !errors.As(err, &ue) || p != "" || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("entryPath(%q) = %q, %q: want \"\" and a one-line UnsafeError", name, p, err)
			}
			return
		}
		if p == "" {
			if path.Clean(name) != "." {
				t.Fatalf("entryPath(%q) = the root", name)
			}
			return
		}
		if path.IsAbs(p) || path.Clean(p) != p || p == "." || p != path.Clean(name) {
			t.Fatalf("entryPath(%q) = %q: not the clean relative form of the name", name, p)
		}
		for _, c := range strings.Split(p, "/") {
			if c == ".." {
				t.Fatalf("entryPath(%q) = %q, which climbs", name, p)
			}
		}
		if j := filepath.Join("/root", p); !strings.HasPrefix(j, "/root/") {
			t.Fatalf("entryPath(%q) = %q, joined to /root: %q", name, p, j)
		}
		if again, err := entryPath(p); again != p || err != nil {
			t.Fatalf("entryPath(%q) = %q, but entryPath(%q) = %q, %v", name, p, p, again, err)
		}
	})
}

// fuzzLimit is the bound FuzzUnpackLayer unpacks with: small, so that a
// bomb is refused after little work.
const fuzzLimit = 32 << 10

// fuzzEntry is one layer member as FuzzUnpackLayer's input describes it:
// the fuzzer mutates the structure of a layer, not tar's checksums.
type fuzzEntry struct {
	kind  byte // index into fuzzKinds
	flags byte // bits 0-2: mode (fuzzModes), 3: an unmapped owner, 4: 20 KiB of body, 5-6: tar format
	name  string
	link  string
	body  string
}

// Typeflags; 'w' and 'o' are a whiteout of the name and an opaque marker
// in it, both plain files with a special name.
var fuzzKinds = []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock,
	tar.TypeFifo, 'w', 'o', tar.TypeXGlobalHeader, tar.TypeCont, 'Z'}

const (
	kReg byte = iota
	kDir
	kSymlink
	kLink
	kChar
	kBlock
	kFifo
	kWhiteout
	kOpaque
)

var fuzzModes = []int64{0o644, 0o755, 0, 0o7777, 0o4755, 0o1777, 0o200, 0o555}

var fuzzFormats = []tar.Format{tar.FormatUnknown, tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU}

// encodeEntries is the fuzz input for es: per entry its kind, flags and
// three fields, each a length byte (255: a 2-byte big-endian length
// follows) then the bytes.
func encodeEntries(es ...fuzzEntry) []byte {
	var b []byte
	for _, e := range es {
		b = append(b, e.kind, e.flags)
		for _, s := range []string{e.name, e.link, e.body} {
			if len(s) < 255 {
				b = append(b, byte(len(s)))
			} else {
				b = append(b, 255, byte(len(s)>>8), byte(len(s)))
			}
			b = append(b, s...)
		}
	}
	return b
}

// decodeEntries reads encodeEntries' form; a short input ends the list
// with what it has.
func decodeEntries(b []byte) []fuzzEntry {
	next := func() byte {
		if len(b) == 0 {
			return 0
		}
		c := b[0]
		b = b[1:]
		return c
	}
	field := func() string {
		n := int(next())
		if n == 255 {
			n = int(next())<<8 | int(next())
		}
		n = min(n, len(b))
		s := string(b[:n])
		b = b[n:]
		return s
	}
	var es []fuzzEntry
	for len(b) > 0 && len(es) < 64 {
		e := fuzzEntry{kind: next() % byte(len(fuzzKinds)), flags: next()}
		e.name, e.link, e.body = field(), field(), field()
		es = append(es, e)
	}
	return es
}

// fuzzTar writes es as a tar stream, up to the first entry tar.Writer
// refuses. A symlink's absolute target gets host in place of its leading
// "/": the test's stand-in for the host's root, where a write through it
// would show.
func fuzzTar(es []fuzzEntry, host string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Typeflag: fuzzKinds[e.kind], Name: e.name, Linkname: e.link, Mode: fuzzModes[e.flags&7],
			Uid: os.Getuid(), Gid: os.Getgid(), ModTime: time.Unix(1e9, int64(e.flags)), Format: fuzzFormats[e.flags>>5&3]}
		if e.flags&8 != 0 {
			h.Uid, h.Gid = 4242, 4242
		}
		body := e.body
		if e.flags&16 != 0 {
			body += string(make([]byte, 20<<10))
		}
		switch e.kind {
		case kSymlink:
			if strings.HasPrefix(e.link, "/") {
				h.Linkname = host + e.link
			}
		case kWhiteout:
			i := strings.LastIndex(e.name, "/")
			h.Typeflag, h.Name = tar.TypeReg, e.name[:i+1]+whiteoutPrefix+e.name[i+1:]
		case kOpaque:
			h.Typeflag, h.Name = tar.TypeReg, e.name+"/"+opaqueMarker
			if e.name == "" {
				h.Name = opaqueMarker
			}
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeCont, 'Z':
			h.Size = int64(len(body))
		default:
			body = ""
		}
		if tw.WriteHeader(h) != nil {
			break
		}
		if _, err := io.WriteString(tw, body); err != nil {
			break
		}
	}
	tw.Close()
	return b.Bytes()
}

// fileState is what FuzzUnpackLayer compares of a file outside the layer.
type fileState struct {
	ino, nlink         uint64
	mode, uid, gid     uint32
	size               int64
	mtime, ctime       unix.Timespec
	link               string
	sum                [sha256.Size]byte
	readErr, statError string
}

// snapshot is the state of every file under dir but skip's subtree.
func snapshot(t *testing.T, dir, skip string) map[string]fileState {
	m := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		var s fileState
		if err := unix.Lstat(p, &st); err != nil {
			s.statError = err.Error()
		}
		s.ino, s.nlink, s.mode, s.uid, s.gid, s.size, s.mtime, s.ctime = st.Ino, uint64(st.Nlink), st.Mode, st.Uid, st.Gid, st.Size, st.Mtim, st.Ctim
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			s.link, _ = os.Readlink(p)
		case unix.S_IFREG: // never a fifo: opening one would block
			b, err := os.ReadFile(p)
			if err != nil {
				s.readErr = err.Error()
			}
			s.sum = sha256.Sum256(b)
		}
		m[p] = s
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return m
}

// makeRemovable gives every directory under root rwx for its owner (a
// layer's mode 0 directory would stop t.TempDir's cleanup when the tests
// run unprivileged); it never follows a symlink.
func makeRemovable(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			unix.Fchmodat(unix.AT_FDCWD, p, 0o700, 0)
		}
		return nil
	})
}

// plain is the Decompress of a layer that is not compressed.
func plain(r io.Reader) (io.Reader, error) { return r, nil }

// FuzzUnpackLayer unpacks hostile layers (entries decoded from the input,
// or with raw set the input as the tar stream itself) into a directory
// next to an "outside" one, checking what a layer from a registry must
// never get: a panic or a hang; an error message with a control character
// (an entry name's newline could forge lines of the user's output); any change outside
// the layer's root, such as a write, a removal, a chmod, a time set or a
// hard link through an escaping name, a symlink or a hard link; a hard
// link inside the root to a file outside it; more than the bound unpacked.
func FuzzUnpackLayer(f *testing.F) {
	e := func(kind, flags byte, name, link, body string) fuzzEntry {
		return fuzzEntry{kind, flags, name, link, body}
	}
	long := strings.Repeat("n", 300)
	seeds := [][]fuzzEntry{
		{e(kDir, 1, "d/", "", ""), e(kReg, 4, "d/f", "", "data"), e(kLink, 0, "d/hl", "d/f", ""),
			e(kSymlink, 0, "d/sl", "/etc/abs", ""), e(kWhiteout, 0, "d/gone", "", ""), e(kOpaque, 0, "o", "", ""),
			e(kChar, 0, "dev/null", "", ""), e(kFifo, 0, "p", "", "")},
		{e(kReg, 0, "../x", "", "x")},
		{e(kReg, 0, "/abs", "", "x")},
		{e(kReg, 0, "a/../../x", "", "x")},
		{e(kReg, 0, "../outside/sentinel", "", "x")},
		{e(kSymlink, 0, "l", "/", ""), e(kReg, 0, "l/x", "", "x")},
		{e(kSymlink, 0, "l", "/", ""), e(kReg, 0, "l/outside/sentinel", "", "x")},
		{e(kSymlink, 0, "l", "/outside", ""), e(kReg, 0, "l/sentinel", "", "x"), e(kDir, 2, "l/", "", ""),
			e(kWhiteout, 0, "l/sentinel", "", ""), e(kOpaque, 0, "l", "", "")},
		{e(kSymlink, 0, "l", "..", ""), e(kReg, 0, "l/x", "", "x")},
		{e(kSymlink, 0, "l", "../outside", "")},
		{e(kSymlink, 0, "a/l", "../../outside", "")},
		{e(kSymlink, 0, "s", "/outside/sentinel", ""), e(kLink, 0, "h", "s", ""), e(kReg, 0, "h", "", "x"),
			e(kDir, 0, "s", "", "")},
		{e(kLink, 0, "h", "../outside/sentinel", "")},
		{e(kLink, 0, "h", "/outside/sentinel", "")},
		{e(kSymlink, 0, "l", "/", ""), e(kLink, 0, "h", "l/outside/sentinel", "")},
		{e(kWhiteout, 0, "..", "", "")},
		{e(kWhiteout, 0, "a/..", "", "")},
		{e(kWhiteout, 0, ".", "", "")},
		{e(kWhiteout, 0, "", "", "")},
		{e(kReg, 0, ".wh..", "", "")},
		{e(kReg, 0, "a/.wh...", "", "")},
		{e(kReg, 0, ".wh..wh.plnk", "", "")},
		{e(kOpaque, 0, "..", "", "")},
		{e(kReg, 0, "f", "", "one"), e(kReg, 0, "f", "", "two"), e(kDir, 0, "f", "", ""), e(kReg, 0, "f", "", "3")},
		{e(kDir, 1, "d", "", ""), e(kReg, 0, "d/f", "", "x"), e(kSymlink, 0, "d", "/outside", ""),
			e(kReg, 0, "d/sentinel", "", "x")},
		{e(kDir, 1, "d", "", ""), e(kSymlink, 0, "d", "/", ""), e(kDir, 1, "d/outside", "", "")},
		{e(kDir, 1, "a", "", ""), e(kDir, 1, "a/outside", "", ""), e(kSymlink, 0, "a", "/", "")},
		{e(kDir, 1, "a", "", ""), e(kDir, 1, "a/b", "", ""), e(kReg, 0, "a", "", "x")},
		{e(kDir, 2, "ro", "", ""), e(kReg, 0, "ro/f", "", "x"), e(kDir, 0o7, "ro/", "", "")},
		{e(kDir, 2, "ro", "", ""), e(kDir, 2, "ro/sub", "", "")},
		{e(kReg, 0x10, "big1", "", ""), e(kReg, 0x10, "big2", "", "")},
		{e(kReg, 0x10|0x40, "big", "", "")},
		{e(kReg, 0x40, long+"/"+long, "", "x"), e(kSymlink, 0x40, "l", long, "")},
		{e(kReg, 0x20, strings.Repeat("d/", 2100)+"f", "", "x")},
		{e(kReg, 0x40, "a\x00b", "", ""), e(kSymlink, 0x40, "l", "x\x00y", "")},
		{e(kReg, 0x40, "new\nline", "", ""), e(kSymlink, 0x40, "l", "../\nx", ""), e(kReg, 0x40, "\x1b[2J", "", "")},
		{e(kReg, 8, "foreign", "", "x"), e(kDir, 8, "fd", "", "")},
		{e(kBlock, 0, "sda", "", ""), e(9, 0x40, "g", "", ""), e(10, 0, "cont", "", "x"), e(11, 0, "unknown", "", "x")},
		{e(kReg, 0, ".", "", "x"), e(kDir, 0, ".", "", ""), e(kSymlink, 0, "./", "/", "")},
	}
	for _, s := range seeds {
		f.Add(false, encodeEntries(s...))
		// The raw forms but the big ones: the fuzzer spends its time
		// minimizing what grows from a big input.
		if b := fuzzTar(s, "/nonexistent-fuzz-host"); len(b) <= 8<<10 {
			f.Add(true, b)
		}
	}
	f.Add(true, []byte{})
	f.Add(true, make([]byte, 1024))

	uids, gids := idSet{{Inside: uint32(os.Getuid()), Count: 1}}, idSet{{Inside: uint32(os.Getgid()), Count: 1}}
	f.Fuzz(func(t *testing.T, raw bool, data []byte) {
		tmp := t.TempDir()
		root, outside := filepath.Join(tmp, "layer"), filepath.Join(tmp, "outside")
		for _, d := range []string{root, outside, filepath.Join(outside, "dir")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(outside, "sentinel"), []byte("sentinel"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { makeRemovable(root) })
		layer := data
		if !raw {
			layer = fuzzTar(decodeEntries(data), tmp)
		}
		before := snapshot(t, tmp, root)

		done := make(chan error, 1)
		go func() {
			_, err := unpackLayer(bytes.NewReader(layer), plain, root, sum(layer), uids, gids, fuzzLimit)
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("unpacking a %d-byte layer still runs after 30 s", len(layer))
		}

		if err != nil && oneline.Escape(err.Error()) != err.Error() {
			t.Errorf("an error with a control character (a newline, a terminal escape): %q", err)
		}
		if err == nil && len(layer) > fuzzLimit {
			t.Errorf("a %d-byte layer unpacked with a bound of %d", len(layer), fuzzLimit)
		}
		after := snapshot(t, tmp, root)
		for p, s := range before {
			if a, ok := after[p]; !ok {
				t.Errorf("%s was removed (error %v)", p, err)
			} else if a != s {
				t.Errorf("%s was changed: %+v, then %+v (error %v)", p, s, a, err)
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok {
				t.Errorf("%s was created outside the layer (error %v)", p, err)
			}
		}

		// Every link to a file of the layer is in the layer, and its
		// files hold no more than the bound (plus a copy buffer).
		makeRemovable(root)
		links := map[uint64]uint64{}
		nlink := map[uint64]uint64{}
		var size int64
		filepath.WalkDir(root, func(p string, d fs.DirEntry, werr error) error {
			var st unix.Stat_t
			if werr != nil || d.IsDir() || unix.Lstat(p, &st) != nil {
				return nil
			}
			if links[st.Ino]++; links[st.Ino] == 1 && st.Mode&unix.S_IFMT == unix.S_IFREG {
				size += st.Size
			}
			nlink[st.Ino] = uint64(st.Nlink)
			return nil
		})
		for ino, n := range nlink {
			if links[ino] != n {
				t.Errorf("inode %d has %d links, %d of them in the layer", ino, n, links[ino])
			}
		}
		if size > fuzzLimit+64<<10 {
			t.Errorf("%d bytes written with a bound of %d", size, fuzzLimit)
		}
	})
}
