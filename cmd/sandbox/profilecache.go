package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sandbox/internal/userfile"
	"sandbox/state"
)

// profileID is the SHA-256 of the embedded profile decoder
// (scripts/build.sh): cached answers are this decoder's. Empty in a plain
// build, which caches nothing.
var profileID string

// The decoder's answers are cached in the state directory, by the SHA-256
// of the decoder and the document: a run with the profile it ran with
// before reads the answer back instead of starting the decoder (~9 ms
// here), and pays no more than when sandbox parsed profiles itself. Only
// answers without an error are kept; an unreadable or malformed one is
// decoded again and replaced.
const (
	profileCacheDir  = ".profile-cache" // never a sandbox's name: state ignores it
	profileCacheKeep = 32               // answers kept, the most recently written
	profileCacheTemp = ".tmp-"
)

// profileCache is the cache's directory, made if need be; "" when there is
// none to use (a plain build, no state directory).
func profileCache() string {
	if profileID == "" {
		return ""
	}
	base, err := state.BaseDir()
	if err != nil {
		return ""
	}
	dir := filepath.Join(base, profileCacheDir)
	if state.PrivateDir(dir) != nil {
		return ""
	}
	return dir
}

// profileKey names a document's answer in the cache.
func profileKey(format string, data []byte) string {
	h := sha256.New()
	io.WriteString(h, profileID+"\x00"+format+"\x00")
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)) + ".json"
}

// cachedAnswer is the answer stored under key, if there is one to read
// (a regular file, not through a symlink, bounded as the decoder's).
func cachedAnswer(dir, key string) ([]byte, bool) {
	b, err := userfile.ReadNoFollow(filepath.Join(dir, key), maxProfileAnswer)
	return b, err == nil
}

// storeAnswer keeps answer under key (written whole, then renamed into
// place) and drops the oldest answers past profileCacheKeep. Best effort:
// a cache that cannot be written is one that is not used.
func storeAnswer(dir, key string, answer []byte) {
	f, err := os.CreateTemp(dir, profileCacheTemp)
	if err != nil {
		return
	}
	_, werr := f.Write(answer)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), filepath.Join(dir, key)) != nil {
		os.Remove(f.Name())
		return
	}
	pruneProfileCache(dir)
}

// pruneProfileCache removes the answers past the profileCacheKeep most
// recent, and temporary files a killed write left (older than a minute).
func pruneProfileCache(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type answer struct {
		name string
		mod  time.Time
	}
	var answers []answer
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		switch name := e.Name(); {
		case strings.HasPrefix(name, profileCacheTemp):
			if time.Since(fi.ModTime()) > time.Minute {
				os.Remove(filepath.Join(dir, name))
			}
		case strings.HasSuffix(name, ".json"):
			answers = append(answers, answer{name, fi.ModTime()})
		}
	}
	if len(answers) <= profileCacheKeep {
		return
	}
	slices.SortFunc(answers, func(a, b answer) int { return b.mod.Compare(a.mod) })
	for _, a := range answers[profileCacheKeep:] {
		os.Remove(filepath.Join(dir, a.name))
	}
}
