package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Store is the directory of unpacked layers and image records:
//
//	layers/sha256/<hex>/   one layer, unpacked; <hex> is its diff_id (the
//	                       uncompressed tar's digest, checked on unpacking)
//	images/<name>.json     one image: its layers bottom first, its config
//	lock                   import and rm hold it exclusively
type Store struct{ Dir string }

// Image is one imported image, as images/<name>.json records it.
type Image struct {
	Name     string    `json:"name"`
	Ref      string    `json:"ref,omitempty"`    // the registry reference it was pulled from (normalized)
	Digest   string    `json:"digest,omitempty"` // its manifest's digest, when pulled
	ID       string    `json:"id"`               // digest of its config
	Created  string    `json:"created,omitempty"`
	Imported time.Time `json:"imported"`
	Layers   []Layer   `json:"layers"` // bottom first
	Config   Config    `json:"config"`
}

// Layer is one layer of an image.
type Layer struct {
	DiffID string `json:"diff_id"`
	Size   int64  `json:"size"` // bytes on disk
}

// DefaultStore is $XDG_DATA_HOME/sandbox, else ~/.local/share/sandbox.
func DefaultStore() (Store, error) {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return Store{filepath.Join(d, "sandbox")}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Store{}, fmt.Errorf("finding the image store: %w (set XDG_DATA_HOME)", err)
	}
	if !filepath.IsAbs(home) {
		// Else a store below whatever the working directory is.
		return Store{}, fmt.Errorf("finding the image store: $HOME %q is not an absolute path (set HOME or XDG_DATA_HOME)", home)
	}
	return Store{filepath.Join(home, ".local", "share", "sandbox")}, nil
}

func (s Store) layersDir() string { return filepath.Join(s.Dir, "layers", "sha256") }
func (s Store) imagesDir() string { return filepath.Join(s.Dir, "images") }

// LayerDir is where the layer with this diff_id is unpacked.
func (s Store) LayerDir(diffID string) string {
	return filepath.Join(s.layersDir(), strings.TrimPrefix(diffID, "sha256:"))
}

func (s Store) imageFile(name string) string {
	return filepath.Join(s.imagesDir(), url.PathEscape(name)+".json")
}

// NormalizeName checks NAME[:TAG] and adds the tag latest when none is given.
func NormalizeName(n string) (string, error) {
	if n == "" || len(n) > 255 || strings.HasPrefix(n, "/") || strings.Contains(n, "..") {
		return "", fmt.Errorf("image name %q: use NAME[:TAG] (letters, digits, '.', '_', '-', '/', ':', '@')", n)
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-/:@", c)) {
			return "", fmt.Errorf("image name %q: %q is not allowed (use NAME[:TAG] with letters, digits, '.', '_', '-', '/', ':', '@')", n, c)
		}
	}
	for _, part := range strings.Split(n, "/") {
		// As a reference's components do; and "." or ".tmp-x" would be
		// a hidden record, never listed and taken for a temporary one.
		if part == "" || !(part[0] >= 'a' && part[0] <= 'z' || part[0] >= 'A' && part[0] <= 'Z' || part[0] >= '0' && part[0] <= '9') {
			return "", fmt.Errorf("image name %q: each part between '/' must start with a letter or a digit", n)
		}
	}
	if !strings.Contains(n[strings.LastIndex(n, "/")+1:], ":") {
		n += ":latest"
	}
	return n, nil
}

// ErrNoImage is a name the store does not have.
var ErrNoImage = errors.New("no such image")

// Load reads one image's record.
func (s Store) Load(name string) (Image, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Image{}, err
	}
	var img Image
	b, err := os.ReadFile(s.imageFile(n))
	if errors.Is(err, fs.ErrNotExist) {
		return img, fmt.Errorf("%w: %s (sandbox image ls lists the imported ones; sandbox image import FILE adds one)", ErrNoImage, n)
	}
	if err != nil {
		return img, fmt.Errorf("reading image %s: %w", n, err)
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return img, fmt.Errorf("image %s: %s: %w", n, s.imageFile(n), err)
	}
	return img, nil
}

// Images lists all images, by name.
func (s Store) Images() ([]Image, error) {
	ents, err := os.ReadDir(s.imagesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	var out []Image
	for _, e := range ents {
		esc, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(esc, ".") {
			continue
		}
		name, err := url.PathUnescape(esc)
		if err != nil {
			continue
		}
		img, err := s.Load(name)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// save writes an image's record atomically (temp file, rename).
func (s Store) save(img Image) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.imagesDir(), ".tmp-")
	if err != nil {
		return fmt.Errorf("saving image %s: %w", img.Name, err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.imageFile(img.Name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("saving image %s: %w", img.Name, err)
	}
	return nil
}

// lock takes the store's lock (import and rm: one at a time).
func (s Store) lock() (*os.File, error) {
	for _, d := range []string{s.layersDir(), s.imagesDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("making the image store: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the image store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the image store: %w", err)
	}
	return f, nil
}

// held keeps the shared locks of the layers a run uses until the process
// ends (the kernel drops them then).
var held []*os.File

// Resolve finds an image for a run: the image and its layer directories,
// bottom first. It changes nothing; LockLayers keeps them while the run
// lasts.
func (s Store) Resolve(name string) (Image, []string, error) {
	img, err := s.Load(name)
	if err != nil {
		return img, nil, err
	}
	dirs := make([]string, 0, len(img.Layers))
	for _, l := range img.Layers {
		dirs = append(dirs, s.LayerDir(l.DiffID))
	}
	return img, dirs, nil
}

// LockLayers locks each layer directory shared until this process ends
// (the kernel drops the locks then), so that `sandbox image rm` leaves
// them alone while the run lasts. A layer removed since Resolve fails.
func LockLayers(dirs []string) error {
	for _, d := range dirs {
		f, err := os.Open(d)
		if err == nil {
			if err = unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
				f.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("image layer %s: %w (sandbox image import the image again)", filepath.Base(d), err)
		}
		held = append(held, f)
	}
	return nil
}

// unused lists the layer directories no image in imgs refers to.
func (s Store) unused(imgs []Image) ([]string, error) {
	refs := map[string]bool{}
	for _, img := range imgs {
		for _, l := range img.Layers {
			refs[strings.TrimPrefix(l.DiffID, "sha256:")] = true
		}
	}
	ents, err := os.ReadDir(s.layersDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !refs[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(s.layersDir(), e.Name()))
		}
	}
	return out, nil
}

// stale lists temporary directories a crashed import or rm left behind.
func (s Store) stale() []string {
	ents, _ := os.ReadDir(s.layersDir())
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			out = append(out, filepath.Join(s.layersDir(), e.Name()))
		}
	}
	return out
}

// sweepRecords removes the temporary image records (.tmp-*) a killed
// import left; with the store's lock held.
func (s Store) sweepRecords() {
	ents, _ := os.ReadDir(s.imagesDir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(s.imagesDir(), e.Name()))
		}
	}
}

// Sweep removes what a killed import or rm left (.tmp- layer directories
// and records) when no import or rm runs: their temporaries are then all
// dead ones. Import and rm sweep under their own lock; `image ls` calls
// this. newHelper is called only when a layer directory is left (its files
// belong to subordinate ids: the helper removes them).
func (s Store) Sweep(newHelper func() (Helper, error)) error {
	f, err := os.OpenFile(filepath.Join(s.Dir, "lock"), os.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil // no store yet, or never locked: nothing to sweep
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // an import or rm runs: its temporaries are alive
	}
	s.sweepRecords()
	dirs := s.stale()
	if len(dirs) == 0 {
		return nil
	}
	h, err := newHelper()
	if err != nil {
		return err
	}
	if _, err := h.run(job{Remove: dirs}); err != nil {
		return fmt.Errorf("removing what a killed import left: %w", err)
	}
	return nil
}

// Remove deletes an image's record and every layer no remaining image
// uses, unless a running sandbox holds one (nothing is changed then).
func (s Store) Remove(name string, h Helper) ([]string, error) {
	lk, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	img, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	all, err := s.Images()
	if err != nil {
		return nil, err
	}
	var rest []Image
	for _, o := range all {
		if o.Name != img.Name {
			rest = append(rest, o)
		}
	}
	drop, err := s.unused(rest)
	if err != nil {
		return nil, err
	}
	for _, d := range drop {
		f, err := os.Open(d)
		if err != nil {
			return nil, fmt.Errorf("locking layer %s: %w", d, err)
		}
		defer f.Close()
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("image %s: its layer %s is in use by a running sandbox (stop it first: sandbox ps lists them)", img.Name, filepath.Base(d))
			}
			return nil, fmt.Errorf("locking layer %s: %w", d, err)
		}
	}
	if err := os.Remove(s.imageFile(img.Name)); err != nil {
		return nil, fmt.Errorf("removing image %s: %w", img.Name, err)
	}
	s.sweepRecords()
	// Layers hold files of ids other than the caller's: removed by the helper.
	if _, err := h.run(job{Remove: append(drop, s.stale()...)}); err != nil {
		return nil, fmt.Errorf("removing the layers of %s: %w", img.Name, err)
	}
	return drop, nil
}

// HumanSize writes n bytes as 512B, 1.5KiB, 23.4MiB, … (image ls, the
// pull's progress).
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, suffix := float64(n), "KMGT"
	i := -1
	for f >= unit && i < len(suffix)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f%ciB", f, suffix[i])
}
