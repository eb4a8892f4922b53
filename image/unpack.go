package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"sandbox/idmap"
	"sandbox/internal/oneline"

	"golang.org/x/sys/unix"
)

// UnsafeError is a layer that tries to reach outside itself.
type UnsafeError struct{ Entry, Why string }

func (e *UnsafeError) Error() string {
	if e.Entry == "" {
		return e.Why // the unpack helper's whole message, which names the entry
	}
	return fmt.Sprintf("unsafe layer entry %q: %s", e.Entry, e.Why)
}

// LayerStats is what unpacking one layer did.
type LayerStats struct {
	Size           int64 `json:"size"`            // bytes on disk
	SkippedDevices int   `json:"skipped_devices"` // device nodes left out
	UnmappedIDs    int   `json:"unmapped_ids"`    // entries whose owner is not mapped: given to uid/gid 0
}

// idSet is the ids mapped inside the helper's user namespace.
type idSet []idmap.Mapping

func (s idSet) has(id int) bool {
	for _, m := range s {
		if id >= 0 && uint64(id) >= uint64(m.Inside) && uint64(id) < uint64(m.Inside)+uint64(m.Count) {
			return true
		}
	}
	return false
}

// unpacker writes one layer under root. It runs as root of a user
// namespace with the caller's full id mapping, so chown gives each file
// the host id its owner has inside a sandbox.
type unpacker struct {
	root       string
	uids, gids idSet
	stats      LayerStats
	dirs       []*tar.Header // directory times are set last: entries below change them
	written    *budget       // the files' bytes, bounded as the stream is
}

// unpackLayer unpacks the layer tar r (plain or compressed: decompress
// reads it, see HelperChild) into the new
// directory root and checks that the uncompressed stream's digest is diffID.
// limit (0: none) bounds both the uncompressed stream and the bytes written
// into files (a sparse tar entry expands too): a decompression bomb stops
// there, long before its end, where the digest would be checked.
func unpackLayer(r io.Reader, decompress Decompress, root, diffID string, uids, gids idSet, limit int64) (_ LayerStats, err error) {
	defer func() {
		if err != nil { // it may quote the layer's names
			err = escapedError{err}
		}
	}()
	u := &unpacker{root: root, uids: uids, gids: gids}
	dec, err := decompress(r)
	if err != nil {
		return u.stats, err
	}
	if limit > 0 {
		dec = &budget{r: dec, left: limit, what: "uncompressed bytes"}
		u.written = &budget{left: limit, what: "file contents", fs: root}
	}
	h := sha256.New()
	tee := io.TeeReader(dec, h)
	tr := tar.NewReader(tee)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u.stats, fmt.Errorf("reading the layer: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return u.stats, err
		}
	}
	// The digest covers the whole stream, padding after the end included.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return u.stats, fmt.Errorf("reading the layer: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID {
		return u.stats, fmt.Errorf("the layer's content has digest %s, its image config says %s: the archive is damaged", got, diffID)
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		// A later entry may have replaced a directory above d, by a
		// symlink to "/" say: d is then gone, and its path could name a
		// directory outside the layer.
		if rel, _ := entryPath(d.Name); u.parent(rel, false) != nil {
			continue
		}
		if err := setTimes(filepath.Join(root, d.Name), d); err != nil {
			return u.stats, err
		}
	}
	u.stats.Size, err = diskUsage(root)
	return u.stats, err
}

// escapedError is err with the control characters of its message escaped:
// the names it quotes are the layer's, and one with a newline or a
// terminal escape must not forge lines of the user's output.
type escapedError struct{ err error }

func (e escapedError) Error() string { return oneline.Escape(e.err.Error()) }
func (e escapedError) Unwrap() error { return e.err }

// entryPath checks a member name: relative, no "..". "" is the root.
func entryPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", &UnsafeError{name, "absolute path"}
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", &UnsafeError{name, "'..' in the path"}
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// parent makes sure every directory above rel exists and none is a
// symlink (a write through one could land outside the layer).
func (u *unpacker) parent(rel string, create bool) error {
	dir := u.root
	parts := strings.Split(path.Dir(rel), "/")
	if path.Dir(rel) == "." {
		return nil
	}
	for _, p := range parts {
		dir = filepath.Join(dir, p)
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := os.Mkdir(dir, 0o755); err != nil {
				return fmt.Errorf("unpacking %s: %w", rel, err)
			}
		case err != nil:
			return fmt.Errorf("unpacking %s: %w", rel, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return &UnsafeError{rel, "its parent " + strings.TrimPrefix(dir, u.root+"/") + " is a symlink (a write through it could leave the layer)"}
		case !fi.IsDir():
			return fmt.Errorf("unpacking %s: %s is not a directory", rel, dir)
		}
	}
	return nil
}

func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	rel, err := entryPath(h.Name)
	if err != nil || rel == "" {
		return err // the root keeps the store's owner and mode
	}
	if err := u.parent(rel, true); err != nil {
		return err
	}
	dir, base := filepath.Join(u.root, path.Dir(rel)), path.Base(rel)
	if handled, err := whiteout(dir, base); handled || err != nil {
		return err
	}
	target := filepath.Join(u.root, rel)
	if h.Typeflag == tar.TypeDir {
		if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
			u.dirs = append(u.dirs, h)
			return u.meta(target, h)
		}
	}
	switch h.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		u.stats.SkippedDevices++
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	}
	if err := os.RemoveAll(target); err != nil {
		return fmt.Errorf("unpacking %s: %w", rel, err)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o700); err != nil {
			return fmt.Errorf("unpacking %s: %w", rel, err)
		}
		u.dirs = append(u.dirs, h)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		// GNU tar's sparse files ('S': the reader gives their holes as
		// zeros, counted against the bound as any byte written) and its
		// contiguous files ('7', a regular file to every reader) too.
		if u.written != nil {
			u.written.r = r
			r = u.written
		}
		if err := writeFile(target, r); err != nil {
			var te *TooBigError
			if errors.As(err, &te) {
				return err
			}
			return fmt.Errorf("unpacking %s: %w", rel, err)
		}
	case tar.TypeSymlink:
		if !strings.HasPrefix(h.Linkname, "/") && escapes(path.Join(path.Dir(rel), h.Linkname)) {
			return &UnsafeError{rel, "symlink to " + h.Linkname + " points outside the layer"}
		}
		if err := os.Symlink(h.Linkname, target); err != nil {
			return fmt.Errorf("unpacking %s: %w", rel, err)
		}
	case tar.TypeLink:
		return u.hardlink(rel, target, h)
	case tar.TypeFifo:
		if err := unix.Mkfifo(target, 0o600); err != nil {
			return fmt.Errorf("unpacking %s: %w", rel, err)
		}
	default:
		return fmt.Errorf("unpacking %s: unsupported tar entry type %q", rel, h.Typeflag)
	}
	return u.meta(target, h)
}

// escapes says whether a cleaned relative path climbs above its root.
func escapes(p string) bool {
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../") || strings.HasPrefix(c, "/")
}

func (u *unpacker) hardlink(rel, target string, h *tar.Header) error {
	src, err := entryPath(h.Linkname)
	if err != nil || src == "" {
		return &UnsafeError{rel, "hard link to " + h.Linkname + " outside the layer"}
	}
	if err := u.parent(src, false); err != nil {
		return &UnsafeError{rel, "hard link to " + h.Linkname + ", which is not in the layer"}
	}
	// linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its target.
	if err := unix.Linkat(unix.AT_FDCWD, filepath.Join(u.root, src), unix.AT_FDCWD, target, 0); err != nil {
		return fmt.Errorf("unpacking %s (a hard link to %s): %w", rel, src, err)
	}
	return nil
}

// TooBigError is a layer that unpacks to more than its bound.
type TooBigError struct {
	What  string
	Limit int64
	Why   string // set when the disk, not the bound, stopped it
}

func (e *TooBigError) Error() string {
	if e.Why != "" {
		return e.Why
	}
	return fmt.Sprintf("the layer's %s exceed %d bytes, its bound: stopped unpacking (a decompression bomb? sandbox image import --max-expansion N raises the bound)", e.What, e.Limit)
}

// budget passes at most left bytes of r on, then fails with a TooBigError.
// With fs set it also stops when the file system holding fs runs low
// (checked every 16 MiB), so that no layer fills the disk.
type budget struct {
	r       io.Reader
	left    int64
	limit   int64
	what    string
	fs      string
	sinceFS int64
}

func (b *budget) Read(p []byte) (int, error) {
	if b.limit == 0 {
		b.limit = b.left
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, &TooBigError{What: b.what, Limit: b.limit}
	}
	if b.fs != "" {
		if b.sinceFS += int64(n); b.sinceFS >= 16<<20 {
			b.sinceFS = 0
			var st unix.Statfs_t
			if unix.Statfs(b.fs, &st) == nil {
				avail, total := int64(st.Bavail)*int64(st.Bsize), int64(st.Blocks)*int64(st.Bsize) // Bsize is int32 or uint32 on some arches
				if avail < 64<<20 || avail < total/100 {
					return n, &TooBigError{What: b.what, Limit: b.limit,
						Why: fmt.Sprintf("the file system of the image store has %d MiB left: stopped unpacking before it is full", avail>>20)}
				}
			}
		}
	}
	return n, err
}

func writeFile(target string, r io.Reader) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// meta sets owner, then mode (chown clears setuid bits: they are kept,
// the sandbox's no_new_privs makes them inert), then times.
func (u *unpacker) meta(target string, h *tar.Header) error {
	uid, gid := h.Uid, h.Gid
	if !u.uids.has(uid) || !u.gids.has(gid) {
		u.stats.UnmappedIDs++
		if !u.uids.has(uid) {
			uid = 0
		}
		if !u.gids.has(gid) {
			gid = 0
		}
	}
	if err := os.Lchown(target, uid, gid); err != nil {
		return fmt.Errorf("unpacking %s: %w", h.Name, err)
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(target, uint32(h.Mode&0o7777)); err != nil {
			return fmt.Errorf("unpacking %s: %w", h.Name, err)
		}
	}
	if h.Typeflag == tar.TypeDir {
		return nil
	}
	return setTimes(target, h)
}

func setTimes(target string, h *tar.Header) error {
	ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	if !h.AccessTime.IsZero() {
		ts[0] = unix.NsecToTimespec(h.AccessTime.UnixNano())
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting the times of %s: %w", target, err)
	}
	return nil
}

// diskUsage is the bytes root's files take on disk, hard links once.
func diskUsage(root string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring %s: %w", root, err)
	}
	return total, nil
}
