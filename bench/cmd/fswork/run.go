package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// The metadata workload: smallFiles files of smallSize bytes in smallDirs
// directories.
const (
	smallDirs  = 100
	smallFiles = 20000
	smallSize  = 1024
)

// Result is one workload's number in one run.
type Result struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"` // "ms" (lower is better), "MiB/s" or "IOPS" (higher is better)
	Value float64 `json:"value"`
}

// Run is what `fswork run` prints: one place, one repetition.
type Run struct {
	Place   string   `json:"place"`
	Run     int      `json:"run"`
	Results []Result `json:"results"`
	Skipped []string `json:"skipped,omitempty"`
}

type runOpts struct {
	dir        string // empty directory the workloads write in
	tarball    string
	lower      string // an already extracted tree to walk (optional)
	fioSeconds int
	fioSize    string
}

func runCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fswork run", flag.ContinueOnError)
	place := fs.String("place", "", "name of the place (required)")
	n := fs.Int("run", 0, "repetition number")
	var o runOpts
	fs.StringVar(&o.dir, "dir", "", "directory to work in; created, must not exist (required)")
	fs.StringVar(&o.tarball, "tar", "", "tarball to extract (required)")
	fs.StringVar(&o.lower, "lower", "", "extracted tree to walk without writing (optional)")
	fs.IntVar(&o.fioSeconds, "fio-seconds", 10, "seconds per fio job; 0 leaves fio out")
	fs.StringVar(&o.fioSize, "fio-size", "512M", "fio file size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *place == "" || o.dir == "" || o.tarball == "" {
		return errors.New("-place, -dir and -tar are required")
	}
	r, err := runAll(*place, *n, o)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

// runAll runs every workload in o.dir and removes what it wrote.
func runAll(place string, n int, o runOpts) (Run, error) {
	r := Run{Place: place, Run: n}
	if err := os.Mkdir(o.dir, 0o755); err != nil {
		return r, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(o.dir)

	meta, err := metadata(filepath.Join(o.dir, "meta"))
	if err != nil {
		return r, err
	}
	r.Results = append(r.Results, meta...)

	tree := filepath.Join(o.dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return r, err
	}
	// Not as root's tar would: no chown per file, so every place does the
	// same work whoever the process is inside.
	ms, err := timeCmd("tar", "--no-same-owner", "--no-same-permissions", "-xf", o.tarball, "-C", tree)
	if err != nil {
		return r, err
	}
	r.Results = append(r.Results, Result{"untar", "ms", ms})
	if ms, err = walk(tree); err != nil {
		return r, err
	}
	r.Results = append(r.Results, Result{"walk", "ms", ms})
	if o.lower != "" {
		if ms, err = walk(o.lower); err != nil {
			return r, err
		}
		r.Results = append(r.Results, Result{"walk lower", "ms", ms})
	}
	if err := os.RemoveAll(tree); err != nil {
		return r, fmt.Errorf("removing the extracted tree: %w", err)
	}

	switch _, err := exec.LookPath("fio"); {
	case o.fioSeconds <= 0:
		r.Skipped = append(r.Skipped, "fio: -fio-seconds 0")
	case err != nil:
		r.Skipped = append(r.Skipped, "fio: not installed (apt-get install fio; scripts/setup-host.sh)")
	default:
		res, err := fio(o.dir, o.fioSeconds, o.fioSize)
		if err != nil {
			return r, err
		}
		r.Results = append(r.Results, res...)
	}
	return r, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// metadata creates, stats, reads back and deletes the small files, timing
// each phase.
func metadata(root string) ([]Result, error) {
	paths := make([]string, 0, smallFiles)
	dirs := make([]string, 0, smallDirs)
	for d := 0; d < smallDirs; d++ {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		dirs = append(dirs, dir)
		for f := 0; f < smallFiles/smallDirs; f++ {
			paths = append(paths, filepath.Join(dir, fmt.Sprintf("f%04d", f)))
		}
	}
	data := bytes.Repeat([]byte("x"), smallSize)
	var out []Result

	start := time.Now()
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	for _, p := range paths {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
	}
	out = append(out, Result{"create", "ms", msSince(start)})

	start = time.Now()
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		if fi.Size() != smallSize {
			return nil, fmt.Errorf("%s: size %d, want %d", p, fi.Size(), smallSize)
		}
	}
	out = append(out, Result{"stat", "ms", msSince(start)})

	start = time.Now()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if len(b) != smallSize {
			return nil, fmt.Errorf("%s: read %d bytes, want %d", p, len(b), smallSize)
		}
	}
	out = append(out, Result{"read", "ms", msSince(start)})

	start = time.Now()
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return nil, err
		}
	}
	for _, d := range append(dirs, root) {
		if err := os.Remove(d); err != nil {
			return nil, err
		}
	}
	out = append(out, Result{"delete", "ms", msSince(start)})
	return out, nil
}

// walk is find over the tree with a stat of every entry (%s needs it).
func walk(dir string) (float64, error) {
	return timeCmd("find", dir, "-printf", "%s\n")
}

// timeCmd runs a command with its output discarded and returns its
// wall-clock time.
func timeCmd(name string, args ...string) (float64, error) {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // stdout nil: /dev/null
	start := time.Now()
	err := cmd.Run()
	ms := msSince(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %s", cmd, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return ms, nil
}

// fioJobs are run one after the other (stonewall) on one file, in this order;
// the first lays the file out for the others.
var fioJobs = []struct {
	name, rw, bs string
	unit         string // MiB/s or IOPS
	write        bool
}{
	{"fio seq write 1M", "write", "1M", "MiB/s", true},
	{"fio seq read 1M", "read", "1M", "MiB/s", false},
	{"fio rand read 4k", "randread", "4k", "IOPS", false},
	{"fio rand write 4k", "randwrite", "4k", "IOPS", true},
}

func fioArgs(dir string, seconds int, size, output string) []string {
	args := []string{
		"--output-format=json", "--output=" + output,
		"--directory=" + dir, "--filename=fio.dat", "--size=" + size,
		"--ioengine=psync", "--direct=0", "--end_fsync=1", "--fallocate=none",
		// Reads come from the page cache on every place alike: fio would
		// otherwise drop only the top layer's cache (a fuse file's, not the
		// file under it), and a shared disk's noise would hide the stack.
		"--invalidate=0",
		"--time_based", fmt.Sprintf("--runtime=%d", seconds),
	}
	for _, j := range fioJobs {
		args = append(args, "--name="+j.name, "--rw="+j.rw, "--bs="+j.bs, "--stonewall")
	}
	return args
}

type fioSide struct {
	BwBytes float64 `json:"bw_bytes"`
	IOPS    float64 `json:"iops"`
}

type fioOutput struct {
	Jobs []struct {
		Name  string  `json:"jobname"`
		Error int     `json:"error"`
		Read  fioSide `json:"read"`
		Write fioSide `json:"write"`
	} `json:"jobs"`
}

// parseFio turns fio's JSON into one result per job of fioJobs.
func parseFio(b []byte) ([]Result, error) {
	var o fioOutput
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decoding fio's JSON: %w", err)
	}
	var out []Result
	for _, j := range fioJobs {
		found := false
		for _, got := range o.Jobs {
			if got.Name != j.name {
				continue
			}
			if got.Error != 0 {
				return nil, fmt.Errorf("fio job %q: error %d", j.name, got.Error)
			}
			side := got.Read
			if j.write {
				side = got.Write
			}
			v := side.IOPS
			if j.unit == "MiB/s" {
				v = side.BwBytes / (1 << 20)
			}
			out = append(out, Result{j.name, j.unit, v})
			found = true
		}
		if !found {
			return nil, fmt.Errorf("fio's JSON has no job %q", j.name)
		}
	}
	return out, nil
}

func fio(dir string, seconds int, size string) ([]Result, error) {
	outFile := filepath.Join(dir, "fio.json")
	if _, err := timeCmd("fio", fioArgs(dir, seconds, size, outFile)...); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		return nil, err
	}
	return parseFio(b)
}
