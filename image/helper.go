package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"sandbox/confine"
	"sandbox/idmap"
	"sandbox/userns"

	"golang.org/x/sys/unix"
)

// HelperArg0 is argv[0] of the re-executed unpack helper; cmd/sandbox
// hands such a process to HelperChild.
const HelperArg0 = "sandbox-unpack"

// helperTimeout bounds one helper run (unpacking big images takes a while).
const helperTimeout = 30 * time.Minute

// job is what the helper is asked to do, sent on its stdin once its id
// maps are written.
type job struct {
	Archive string          `json:"archive,omitempty"`
	Unpack  []layerJob      `json:"unpack,omitempty"`
	Measure []string        `json:"measure,omitempty"` // layer dirs already there: their sizes
	Remove  []string        `json:"remove,omitempty"`  // directories to remove (renamed away first)
	UIDs    []idmap.Mapping `json:"uids"`
	GIDs    []idmap.Mapping `json:"gids"`
}

// layerJob is one layer to unpack from the archive into Final.
type layerJob struct {
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	DiffID string `json:"diff_id"`
	Final  string `json:"final"`
	// Digest is the blob's own (compressed) digest when the archive names
	// it, checked before anything is unpacked; Limit bounds the bytes the
	// layer unpacks to.
	Digest string `json:"digest,omitempty"`
	Limit  int64  `json:"limit,omitempty"`
}

// jobResult is the helper's answer on its stdout.
type jobResult struct {
	Unpacked []LayerStats `json:"unpacked"`
	Measured []int64      `json:"measured"`
	Err      string       `json:"error,omitempty"`
	Unsafe   bool         `json:"unsafe,omitempty"`
}

// Helper runs jobs in a user namespace with the caller's id mapping.
type Helper struct {
	Maps idmap.Prepared
	// Exe is the program re-executed as HelperArg0 ("": this one). It
	// must link image/decompress to unpack layers: sandbox names
	// sandbox-pull for an import.
	Exe string
}

// NewHelper plans the mapping as `sandbox run --map=auto` does with the
// caller as root inside: full (the caller's subordinate ids) where
// possible, else only the caller (Maps.Warning says so).
func NewHelper() (Helper, error) {
	uid, gid := os.Getuid(), os.Getgid()
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return Helper{}, fmt.Errorf("looking up your user (uid %d): %w", uid, err)
	}
	maps, err := idmap.DefaultSource().Prepare(idmap.Auto, u.Username, uint32(uid), uint32(gid), 0, 0)
	if err != nil {
		return Helper{}, err
	}
	return Helper{Maps: maps}, nil
}

// Full says whether ids other than 0 are mapped.
func (h Helper) Full() bool { return len(h.Maps.UIDs) > 1 || h.Maps.UIDs[0].Count > 1 }

// run starts the helper, writes its maps, sends it j and reads its answer.
func (h Helper) run(j job) (jobResult, error) {
	var res jobResult
	j.UIDs, j.GIDs = h.Maps.UIDs, h.Maps.GIDs
	last, err := confine.LastCap()
	if err != nil {
		return res, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return res, err
	}
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		return res, err
	}
	defer outR.Close()
	exe := h.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	c, err := userns.Start(userns.Options{
		Path: exe, Args: []string{HelperArg0}, Env: []string{},
		Cloneflags: syscall.CLONE_NEWUSER, LastCap: last,
		Stdin: inR, Stdout: outW, Stderr: os.Stderr,
	})
	inR.Close()
	outW.Close()
	if err != nil {
		return res, fmt.Errorf("starting the unpack helper in a user namespace: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = idmap.Apply(ctx, c.Pid, h.Maps.UIDs, h.Maps.GIDs, h.Maps.ViaHelpers)
	cancel()
	if err != nil {
		unix.Kill(c.Pid, unix.SIGKILL)
		c.Wait()
		return res, fmt.Errorf("writing the unpack helper's id maps: %w", err)
	}
	go func() {
		json.NewEncoder(inW).Encode(j)
		inW.Close()
	}()
	timer := time.AfterFunc(helperTimeout, func() { unix.Kill(c.Pid, unix.SIGKILL) })
	defer timer.Stop()
	out, rerr := io.ReadAll(outR)
	ws, err := c.Wait()
	if err == nil && rerr != nil {
		err = rerr
	}
	if err == nil && (!ws.Exited() || ws.ExitStatus() != 0) {
		err = fmt.Errorf("the unpack helper ended with %v", ws)
	}
	if err == nil {
		err = json.Unmarshal(out, &res)
	}
	if err != nil {
		return res, err
	}
	if res.Err != "" {
		if res.Unsafe {
			return res, &UnsafeError{Why: res.Err}
		}
		return res, errors.New(res.Err)
	}
	return res, nil
}

// Decompress reads a layer's blob (image/decompress.Layer).
type Decompress func(io.Reader) (io.Reader, error)

// HelperChild is the helper in its user namespace, root with the caller's
// mapping: it reads a job on stdin and prints a jobResult. decompress nil
// (sandbox itself, which does not link the decompressors) does all but
// unpacking layers: Helper.Exe names the program that does (sandbox-pull).
func HelperChild(decompress Decompress) int {
	var j job
	var res jobResult
	if err := json.NewDecoder(os.Stdin).Decode(&j); err != nil {
		res.Err = fmt.Sprintf("reading the job: %v", err)
	} else if err := doJob(j, &res, decompress); err != nil {
		res.Err = err.Error()
		var ue *UnsafeError
		res.Unsafe = errors.As(err, &ue)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", HelperArg0, err)
		return 1
	}
	return 0
}

func doJob(j job, res *jobResult, decompress Decompress) error {
	unix.Umask(0o022)
	for _, d := range j.Remove {
		if err := removeDir(d); err != nil {
			return err
		}
	}
	if len(j.Unpack) > 0 {
		if decompress == nil {
			return errors.New("this program does not unpack layers (sandbox-pull's helper does)")
		}
		f, err := os.Open(j.Archive)
		if err != nil {
			return fmt.Errorf("opening the archive: %w", err)
		}
		defer f.Close()
		for _, l := range j.Unpack {
			st, err := unpackInto(io.NewSectionReader(f, l.Offset, l.Size), l, j, decompress)
			if err != nil {
				return fmt.Errorf("layer %s: %w", l.DiffID, err)
			}
			res.Unpacked = append(res.Unpacked, st)
		}
	}
	for _, d := range j.Measure {
		n, err := diskUsage(d)
		if err != nil {
			return err
		}
		res.Measured = append(res.Measured, n)
	}
	return nil
}

// unpackInto unpacks into a temporary directory next to l.Final and
// renames it there once complete: a killed import leaves only a .tmp-
// directory, which no run uses and the next import or rm removes.
func unpackInto(r *io.SectionReader, l layerJob, j job, decompress Decompress) (LayerStats, error) {
	if l.Digest != "" {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return LayerStats{}, fmt.Errorf("reading the layer: %w", err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.Digest {
			return LayerStats{}, fmt.Errorf("the layer's blob has digest %s, the archive names it %s: the archive is damaged or altered (nothing was unpacked)", got, l.Digest)
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return LayerStats{}, err
		}
	}
	tmp := tmpName(l.Final)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return LayerStats{}, err
	}
	st, err := unpackLayer(r, decompress, tmp, l.DiffID, j.UIDs, j.GIDs, l.Limit)
	if err == nil {
		err = os.Rename(tmp, l.Final)
	}
	if err != nil {
		os.RemoveAll(tmp)
	}
	return st, err
}

func tmpName(final string) string {
	b := make([]byte, 4)
	unix.Getrandom(b, 0)
	return filepath.Join(filepath.Dir(final), ".tmp-"+filepath.Base(final)[:12]+"-"+hex.EncodeToString(b))
}

// removeDir renames d away first, so that no half-removed layer is ever
// found under its name.
func removeDir(d string) error {
	gone := d
	if base := filepath.Base(d); len(base) < 5 || base[:5] != ".tmp-" {
		gone = tmpName(d)
		if err := os.Rename(d, gone); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("removing %s: %w", d, err)
		}
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("removing %s: %w", d, err)
	}
	return nil
}
