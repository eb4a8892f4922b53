package hostcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/internal/locked"

	"golang.org/x/sys/unix"
)

// ErrNotProbed marks a probe step that did not run (an earlier one failed).
var ErrNotProbed = errors.New("not probed")

// probeTimeout bounds each live probe.
const probeTimeout = 30 * time.Second

// RunProbe is what `sandbox run -- true` did.
type RunProbe struct {
	Err    error // nil: it exited 0
	Stderr string
	Took   time.Duration
}

// ProbeRun runs a real sandbox with run's defaults (`exe run -- true`).
func ProbeRun(exe, trueBin string) RunProbe {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "run", "--cwd=none", "--", trueBin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	return RunProbe{Err: err, Stderr: oneLine(stderr.String()), Took: time.Since(start).Round(100 * time.Microsecond)}
}

// netProbeTimeout bounds each network driver's trial run.
const netProbeTimeout = 10 * time.Second

// ProbeNet tries each installed network driver with a real sandbox
// (`exe run --net=NAME -- true`, bounded): a driver found is not yet one
// that starts here. tunOK false: nothing is tried (no driver can start).
// The trials run at once: check takes the slowest one's time.
func ProbeNet(exe, trueBin string, ds []NetDriver, tunOK bool) {
	var wg sync.WaitGroup
	for i := range ds {
		if ds[i].Err != nil || !tunOK {
			continue
		}
		wg.Add(1)
		go func(d *NetDriver) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), netProbeTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "run", "--cwd=none", "--net="+d.Name, "--", trueBin)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.WaitDelay = time.Second
			err := cmd.Run()
			d.Probed = true
			if err != nil {
				if msg := oneLine(stderr.String()); msg != "" {
					err = fmt.Errorf("%v: %s", err, msg)
				}
				d.Trial = err
			}
		}(&ds[i])
	}
	wg.Wait()
}

// oneLine joins the lines of s with " | ": a result is one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(s), "\n", " | ")), " ")
}

func judgeRun(p RunProbe) Result {
	switch {
	case errors.Is(p.Err, ErrNotProbed):
		return warn("run", "`sandbox run -- true` was not tried: "+p.Err.Error(), "put `true` (coreutils) on PATH and run check from the installed binary")
	case p.Err != nil:
		return fail("run", fmt.Sprintf("`sandbox run -- true` failed (%v): %s", p.Err, p.Stderr),
			"see the lines above; `sandbox run -v -- true` shows each step")
	case p.Stderr != "":
		return warn("run", fmt.Sprintf("`sandbox run -- true` works (%v), with: %s", p.Took, p.Stderr), "see the lines above")
	}
	return ok("run", fmt.Sprintf("`sandbox run -- true` works (%v)", p.Took))
}

// ProbeArg0 is argv[0] of the re-executed namespace probe; cmd/sandbox
// hands such a process to ProbeChild.
const ProbeArg0 = "sandbox-check-probe"

// NSProbe is what the namespace probe found: nil where a step worked.
type NSProbe struct {
	UserNS  error // creating a user and mount namespace with only the caller mapped (to root)
	Caps    error // using root's capabilities there: private mounts, a tmpfs
	Overlay error // kernel overlayfs with userxattr: mount, copy-up, whiteout
	Pivot   error // pivot_root into the tmpfs
	Took    time.Duration
}

// The files of the probe's lower layer.
const (
	probeKept = "kept" // appended to through the overlay: copy-up
	probeGone = "gone" // removed through the overlay: a whiteout
	probeText = "lower\n"
)

// ProbeNamespaces re-executes exe as ProbeArg0 in a new user and mount
// namespace (the caller mapped to root, as --map=single does) and lets it
// do what run does first: make the mounts private, mount a tmpfs, mount
// kernel overlayfs over a lower directory on the host's filesystem with
// the upper layer on that tmpfs, write through it, and pivot_root. Every
// mount dies with the probe's namespace; the directory is removed after.
func ProbeNamespaces(exe string) NSProbe {
	start := time.Now()
	p := probeNamespaces(exe)
	p.Took = time.Since(start).Round(100 * time.Microsecond)
	return p
}

func probeNamespaces(exe string) NSProbe {
	notProbed := func(err error) NSProbe {
		return NSProbe{UserNS: err, Caps: ErrNotProbed, Overlay: ErrNotProbed, Pivot: ErrNotProbed}
	}
	// Failing to prepare is not the host's verdict: not probed.
	dir, err := os.MkdirTemp("", "sandbox-check-")
	if err != nil {
		return notProbed(fmt.Errorf("%w: making its directory: %v", ErrNotProbed, err))
	}
	defer os.RemoveAll(dir)
	lower := filepath.Join(dir, "lower")
	for _, d := range []string{lower, filepath.Join(dir, "stage")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return notProbed(fmt.Errorf("%w: making its directory: %v", ErrNotProbed, err))
		}
	}
	for _, name := range []string{probeKept, probeGone} {
		if err := os.WriteFile(filepath.Join(lower, name), []byte(probeText), 0o644); err != nil {
			return notProbed(fmt.Errorf("%w: making its lower layer: %v", ErrNotProbed, err))
		}
	}
	cmd := exec.Command(exe, dir)
	cmd.Args[0] = ProbeArg0
	cmd.Env = []string{}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	proc, err := locked.Start(cmd)
	if err != nil {
		return notProbed(fmt.Errorf("creating a user and mount namespace: %w", err))
	}
	select {
	case <-proc.Done():
	case <-time.After(probeTimeout):
		proc.Stop()
		return notProbed(fmt.Errorf("the probe in its new namespaces did not finish within %v", probeTimeout))
	}
	var rep probeReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || proc.Err() != nil {
		return notProbed(fmt.Errorf("the probe in its new namespaces failed (%v): %s", proc.Err(), oneLine(stderr.String())))
	}
	return NSProbe{Caps: rep.Caps.err(), Overlay: rep.Overlay.err(), Pivot: rep.Pivot.err()}
}

// probeReport is what the probe child prints: one entry per step.
type probeReport struct {
	Caps, Overlay, Pivot *stepResult
}

// stepResult is a failed or skipped step (nil: it worked).
type stepResult struct {
	Msg       string `json:"msg"`
	Errno     int    `json:"errno,omitempty"`
	NotProbed bool   `json:"not_probed,omitempty"`
}

func newStep(err error) *stepResult {
	if err == nil {
		return nil
	}
	s := &stepResult{Msg: err.Error(), NotProbed: errors.Is(err, ErrNotProbed)}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s.Errno = int(errno)
	}
	return s
}

func (s *stepResult) err() error {
	switch {
	case s == nil:
		return nil
	case s.NotProbed:
		return ErrNotProbed
	case s.Errno != 0:
		return &stepError{s.Msg, syscall.Errno(s.Errno)}
	}
	return errors.New(s.Msg)
}

// stepError is a step's message with its errno, for the judges to match.
type stepError struct {
	msg   string
	errno syscall.Errno
}

func (e *stepError) Error() string { return e.msg }
func (e *stepError) Unwrap() error { return e.errno }

// ProbeChild is the probe in its new namespaces (args: the probe's
// directory). It prints a probeReport and exits 0; anything else is a
// failure of the probe itself.
func ProbeChild(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "%s: want one argument, the probe's directory\n", ProbeArg0)
		return 2
	}
	caps, overlay, pivot := probeSteps(args[0])
	if err := json.NewEncoder(os.Stdout).Encode(probeReport{newStep(caps), newStep(overlay), newStep(pivot)}); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ProbeArg0, err)
		return 1
	}
	return 0
}

func probeSteps(dir string) (caps, overlay, pivot error) {
	stage := filepath.Join(dir, "stage")
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the mounts private: %w", err), ErrNotProbed, ErrNotProbed
	}
	if err := unix.Mount("tmpfs", stage, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mounting a tmpfs: %w", err), ErrNotProbed, ErrNotProbed
	}
	return nil, overlayRoundTrip(filepath.Join(dir, "lower"), stage), pivotInto(stage)
}

// overlayRoundTrip mounts lower with an upper layer in stage and checks
// that writes land in the upper layer only.
func overlayRoundTrip(lower, stage string) error {
	upper, work, merged := filepath.Join(stage, "upper"), filepath.Join(stage, "work"), filepath.Join(stage, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := fuseoverlay.MountKernel(fuseoverlay.Layers{Lower: []string{lower}, Upper: upper, Work: work}, merged); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(merged, probeKept), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("copy-up: %w", err)
	}
	_, err = f.WriteString("upper\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy-up: %w", err)
	}
	if err := os.Remove(filepath.Join(merged, probeGone)); err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(upper, probeKept)); err != nil || string(b) != probeText+"upper\n" {
		return fmt.Errorf("copy-up: the upper layer has %q (%v)", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(lower, probeKept)); err != nil || string(b) != probeText {
		return fmt.Errorf("the write reached the lower layer: %q (%v)", b, err)
	}
	if _, err := os.Lstat(filepath.Join(merged, probeGone)); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("whiteout: a removed file is still there (%v)", err)
	}
	if _, err := os.Lstat(filepath.Join(lower, probeGone)); err != nil {
		return fmt.Errorf("whiteout: the removal reached the lower layer (%v)", err)
	}
	return nil
}

// pivotInto does what run does to enter its new root.
func pivotInto(newRoot string) error {
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return nil
}
