package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/netns/egress"
	"sandbox/rootfs"

	"sandbox/internal/wire"

	"golang.org/x/sys/unix"
)

// ReportVersion is the version of the Report document; it changes when a
// field changes meaning or goes away (new fields may appear in any version).
const ReportVersion = 1

// Report is the document `sandbox run --report` writes, one per run: what
// the sandbox was made of and how the run went. Each field is described in
// docs/cli.md ("Run report").
type Report struct {
	Version  int             `json:"version"`
	Name     string          `json:"name"`
	Hostname string          `json:"hostname"`
	Command  []string        `json:"command"`
	Identity *IdentityReport `json:"identity"` // null when the run failed in Prepare
	Root     *RootReport     `json:"root"`
	Network  *NetworkReport  `json:"network"`
	Cgroup   *CgroupReport   `json:"cgroup"`
	// Fallbacks are the second choices the run took, each with why.
	Fallbacks []wire.Fallback `json:"fallbacks"`
	Warnings  []string        `json:"warnings"`
	// Steps are the setup steps of the parent ("sandbox") and of init, in
	// time order on one clock.
	Steps []StepReport `json:"steps"`
	// StartupMS is the time from the start of `sandbox run` to the
	// payload's start; null when it never started.
	StartupMS  *float64     `json:"startup_ms"`
	DurationMS float64      `json:"duration_ms"`
	Exit       ExitReport   `json:"exit"`
	Error      *ErrorReport `json:"error"` // null unless the sandbox itself failed

	// Set by the parent and spec as the run goes; not part of the JSON.
	LimitsMode  string           `json:"-"` // strict or best-effort, until the cgroup part exists
	payloadExit *wire.ChildExit  // the payload's end, from init
	InitShare   *wire.InitReport `json:"-"` // init's share, from Started or Error
	OomKills    int64            `json:"-"`
}

// IdentityReport is the id mapping of the user namespace.
type IdentityReport struct {
	Requested string   `json:"requested"` // --map: auto, full or single
	Mode      string   `json:"mode"`      // full or single
	Why       string   `json:"why"`
	Via       string   `json:"via"` // newuidmap (newuidmap/newgidmap) or direct
	UID       uint32   `json:"uid"` // the caller's ids inside
	GID       uint32   `json:"gid"`
	UIDMap    []string `json:"uid_map"` // lines as /proc/PID/uid_map has them: inside outside count
	GIDMap    []string `json:"gid_map"`
}

// RootReport is how the root filesystem was made.
type RootReport struct {
	Source        string   `json:"source"` // host (the host's directories) or rootfs
	Rootfs        string   `json:"rootfs"`
	Layers        []string `json:"layers"`
	Upper         string   `json:"upper"` // persistent --upper directory; "" = in memory
	ReadOnly      bool     `json:"read_only"`
	OverlayDriver string   `json:"overlay_driver"` // kernel, fuse, mixed (some of each), or none (a read-only root of binds)
	FuseMounts    []string `json:"fuse_mounts"`    // the overlays fuse-overlayfs served
	Enter         string   `json:"enter"`          // pivot_root or MS_MOVE+chroot; "" when not reached
	Cwd           string   `json:"cwd"`            // the shared working directory, "" when not shared
	CwdMode       string   `json:"cwd_mode"`       // rw, ro or none
	Chdir         string   `json:"chdir"`
	MountSteps    int      `json:"mount_steps"`
	ProcUnmasked  bool     `json:"proc_unmasked"` // --unmask-proc: /proc's entries not masked
	// Ephemeral is where the run's ephemeral writes went.
	Ephemeral *EphemeralReport `json:"ephemeral"`
}

// EphemeralReport is the sandbox's ephemeral writable storage: the root's
// ephemeral upper layers, /tmp, /run, /dev, /dev/shm, the homes, --tmpfs.
type EphemeralReport struct {
	Place     string `json:"place"`      // memory (one tmpfs) or disk (a directory)
	SizeBytes int64  `json:"size_bytes"` // memory: the tmpfs's size (0 on disk: its file system's free space)
	Size      string `json:"size"`       // the same, as --ephemeral-size writes it ("" on disk)
	Inodes    int64  `json:"inodes"`     // memory: the tmpfs's nr_inodes
	Dir       string `json:"dir"`        // disk: the run's directory, removed when it ends
}

// NetworkReport is the network namespace and its driver.
type NetworkReport struct {
	Requested         string   `json:"requested"` // --net
	Driver            string   `json:"driver"`    // pasta, slirp4netns, builtin, none or host
	Interface         string   `json:"interface"`
	SandboxIP         string   `json:"sandbox_ip"`
	PrefixLen         int      `json:"prefix_len"`
	Gateway           string   `json:"gateway"`
	DNS               string   `json:"dns"`
	MTU               int      `json:"mtu"`
	Published         []string `json:"published"`
	AllowHostLoopback bool     `json:"allow_host_loopback"`
	AllowLinkLocal    bool     `json:"allow_link_local"`
	// Policy is the egress policy, Blocked what it blocked; both null
	// without one.
	Policy  *egress.Policy  `json:"policy"`
	Blocked *egress.Blocked `json:"blocked"`
}

// CgroupReport is the sandbox's cgroup and its limits.
type CgroupReport struct {
	Path       string        `json:"path"`     // "" when the run had no cgroup of its own
	InitVia    string        `json:"init_via"` // clone3 or cgroup.procs
	LimitsMode string        `json:"limits_mode"`
	Applied    []LimitReport `json:"applied"`
	Skipped    []LimitReport `json:"skipped"`
}

// LimitReport is one cgroup file write, applied or skipped (with why).
type LimitReport struct {
	Flag  string `json:"flag"`
	File  string `json:"file"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

// StepReport is one setup step.
type StepReport struct {
	Stage     string  `json:"stage"`      // sandbox (the parent) or init
	ElapsedMS float64 `json:"elapsed_ms"` // since `sandbox run` started
	StepMS    float64 `json:"step_ms"`    // since the stage's previous step (first: since the start)
	Msg       string  `json:"msg"`
}

// ExitReport is how the run ended.
type ExitReport struct {
	Status int `json:"status"` // exit status of `sandbox run`
	// Cause: exited, signaled, oom-killed, not-found, not-executable or
	// sandbox-error.
	Cause      string `json:"cause"`
	Code       *int   `json:"code"` // the command's exit code; null unless it exited
	Signal     int    `json:"signal"`
	SignalName string `json:"signal_name"`
	OOMKills   int64  `json:"oom_kills"`
}

// ErrorReport is the sandbox's own failure.
type ErrorReport struct {
	Step string `json:"step"`
	Msg  string `json:"msg"`
}

// Exit causes.
const (
	CauseExited        = "exited"
	CauseSignaled      = "signaled"
	CauseOOMKilled     = "oom-killed"
	CauseNotFound      = "not-found"
	CauseNotExecutable = "not-executable"
	CauseSandboxError  = "sandbox-error"
)

// stepError names the parent's step that failed, for the report; its
// Message is the error's own.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.err.Error() }

func (e *stepError) Unwrap() error { return e.err }

func AtStep(step string, err error) error { return &stepError{step, err} }

// OverlaysUsed sets OverlayDriver from what init really mounted (planned
// auto is kernel until then); built says init entered the root it built,
// so none mounted is none (--read-only plans overlays it may skip).
func (r *RootReport) OverlaysUsed(used []rootfs.OverlayUse, built bool) {
	kernel := false
	for _, u := range used {
		if u.Driver == fuseoverlay.Fuse {
			r.FuseMounts = append(r.FuseMounts, u.Target)
		} else {
			kernel = true
		}
	}
	switch {
	case len(used) == 0:
		if built {
			r.OverlayDriver = "none"
		}
	case len(r.FuseMounts) == 0:
		r.OverlayDriver = "kernel"
	case kernel:
		r.OverlayDriver = "mixed"
	default:
		r.OverlayDriver = "fuse"
	}
}

// PrepareFailed is the report of a run that Prepare refused.
func PrepareFailed(args []string, err error) *Report {
	r := &Report{Version: ReportVersion, Command: args}
	r.Finish(nil, wire.StatusError, AtStep("checking the options and the host", err))
	return r
}

// CgroupPart returns the cgroupPart part, made on first use.
func (r *Report) CgroupPart() *CgroupReport {
	if r.Cgroup == nil {
		r.Cgroup = &CgroupReport{LimitsMode: r.LimitsMode, Applied: []LimitReport{}, Skipped: []LimitReport{}}
	}
	return r.Cgroup
}

// SkipLimit records a limit not applied, and why.
func (r *Report) SkipLimit(l LimitReport, why string) {
	if r != nil {
		c := r.CgroupPart()
		l.Why = why
		c.Skipped = append(c.Skipped, l)
	}
}

// ApplyLimit records a limit written.
func (r *Report) ApplyLimit(l LimitReport) {
	if r != nil {
		c := r.CgroupPart()
		c.Applied = append(c.Applied, l)
	}
}

// Started records init's share of the report, sent with Started (nil
// unless the run writes a report: wire.ChildConfig.Report).
func (r *Report) Started(share *wire.InitReport) {
	if share != nil {
		r.InitShare = share
	}
}

// NetBlocked records what the egress policy blocked (b nil: the network
// helper did not say, which is warned about).
func (r *Report) NetBlocked(lg *Logger, b *egress.Blocked) {
	if b == nil {
		lg.Warn("the network helper did not say what the egress policy blocked: the report's network.blocked is incomplete")
		return
	}
	if b.Records == nil {
		b.Records = []egress.Record{}
	}
	if b.Targets == nil {
		b.Targets = []egress.TargetCount{}
	}
	if r.Network != nil {
		r.Network.Blocked = b
	}
	if s := b.Summary(); s != "" {
		lg.Notice(s)
	}
}

// exited records how the payload ended.
func (r *Report) Exited(ex *wire.ChildExit) { r.payloadExit = ex }

// finish completes the report once the run is over: status and err are
// Run's final results.
func (r *Report) Finish(lg *Logger, status int, err error) {
	var cf *wire.ChildFailure
	if errors.As(err, &cf) && cf.E.Init != nil {
		r.InitShare = cf.E.Init
	}
	var start int64
	steps, warnings, fallbacks := []wire.TimedStep(nil), []string(nil), []wire.Fallback(nil)
	if lg != nil {
		start = lg.Start
		steps, warnings, fallbacks = lg.journal()
		r.DurationMS = msOf(MonoNow() - start)
	}
	r.Steps = []StepReport{}
	r.addSteps("sandbox", steps, start)
	r.Warnings = append([]string{}, warnings...)
	r.Fallbacks = append([]wire.Fallback{}, fallbacks...)
	if in := r.InitShare; in != nil {
		r.addSteps("init", in.Steps, start)
		r.Warnings = append(r.Warnings, in.Warnings...)
		r.Fallbacks = append(r.Fallbacks, in.Fallbacks...)
		if r.Root != nil {
			r.Root.Enter = in.Enter
			r.Root.OverlaysUsed(in.Overlays, in.Enter != "")
		}
		if in.Started != 0 {
			ms := msOf(in.Started - start)
			r.StartupMS = &ms
		}
	}
	slices.SortStableFunc(r.Steps, func(a, b StepReport) int {
		switch {
		case a.ElapsedMS < b.ElapsedMS:
			return -1
		case a.ElapsedMS > b.ElapsedMS:
			return 1
		}
		return 0
	})
	r.Exit = exitReport(status, r.payloadExit, err, r.OomKills)
	r.Error = errorReport(err)
}

func (r *Report) addSteps(stage string, steps []wire.TimedStep, start int64) {
	prev := start
	for _, s := range steps {
		r.Steps = append(r.Steps, StepReport{Stage: stage, ElapsedMS: msOf(s.At - start), StepMS: msOf(s.At - prev), Msg: s.Msg})
		prev = s.At
	}
}

// exitReport says how a run ended: status and err are Run's results, ex
// what init reported of the payload (nil if nothing), ooms the OOM kills in
// the sandbox's cgroup.
func exitReport(status int, ex *wire.ChildExit, err error, ooms int64) ExitReport {
	r := ExitReport{Status: status, OOMKills: ooms}
	signal := func(n int) {
		r.Signal, r.SignalName = n, unix.SignalName(syscall.Signal(n))
	}
	switch {
	case ooms > 0 && status == wire.StatusSignalStart+int(unix.SIGKILL):
		r.Cause = CauseOOMKilled
		signal(int(unix.SIGKILL))
	case err != nil && status == wire.StatusNotFound:
		r.Cause = CauseNotFound
	case err != nil && status == wire.StatusNotExec:
		r.Cause = CauseNotExecutable
	case err != nil || ex == nil:
		r.Cause = CauseSandboxError
	case ex.Signal > 0:
		r.Cause = CauseSignaled
		signal(ex.Signal)
	default:
		r.Cause = CauseExited
		code := ex.Code
		r.Code = &code
	}
	return r
}

// errorReport is the sandbox's own error, with the step that failed.
func errorReport(err error) *ErrorReport {
	if err == nil {
		return nil
	}
	var cf *wire.ChildFailure
	if errors.As(err, &cf) {
		step := cf.E.Step
		if step == "" {
			step = "starting the command"
		}
		msg := err.Error()
		if err == error(cf) {
			msg = cf.E.Msg
		}
		return &ErrorReport{Step: step, Msg: msg}
	}
	var se *stepError
	if errors.As(err, &se) {
		return &ErrorReport{Step: se.step, Msg: err.Error()}
	}
	return &ErrorReport{Step: "running the sandbox", Msg: err.Error()}
}

// ReportFile is where --report writes: a file opened before the run
// starts, or stdout.
type ReportFile struct {
	f    *os.File
	name string
}

// OpenReport opens --report's target: "-" is stdout, "" none (nil). A
// path that cannot be written is a usage error, so the run stops before
// anything starts.
func OpenReport(path string) (*ReportFile, error) {
	switch path {
	case "":
		return nil, nil
	case "-":
		return &ReportFile{f: os.Stdout, name: "stdout"}, nil
	}
	// Not blocking in open: a FIFO no process reads would hold the run
	// there for ever (ENXIO instead); its reader, started beside the run
	// (jq . <fifo &), gets a moment to open it. The writes block as usual.
	fd, err := openReport(path)
	if err == unix.ENXIO && isFIFO(path) {
		return nil, Usagef("--report %s: a FIFO that no process reads (start its reader first, or give a file)", path)
	}
	if err == nil {
		if err = unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		return nil, Usagef("--report %s: %v (give a writable file, or - for stdout)", path, UnwrapSyscall(err))
	}
	return &ReportFile{f: os.NewFile(uintptr(fd), path), name: path}, nil
}

// reportReaderWait bounds the wait for a FIFO's reader.
const reportReaderWait = 2 * time.Second

// openReport opens path for writing without blocking, trying again for a
// while when it is a FIFO that no process reads yet.
func openReport(path string) (int, error) {
	deadline := time.Now().Add(reportReaderWait)
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
		if err != unix.ENXIO || !isFIFO(path) || time.Now().After(deadline) {
			return fd, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isFIFO says whether path is a FIFO (ENXIO also comes from a socket).
func isFIFO(path string) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// Write writes r as one line of JSON and closes the file.
func (o *ReportFile) Write(r *Report) error {
	if o == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err == nil {
		_, err = o.f.Write(append(b, '\n'))
	}
	if o.f != os.Stdout {
		if cerr := o.f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("writing the report to %s: %w", o.name, err)
	}
	return nil
}

func OrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// with completes init's share from its logger.
func InitWith(r wire.InitReport, lg *Logger) *wire.InitReport {
	j := lg.initReport()
	j.Enter, j.Started, j.Overlays = r.Enter, r.Started, r.Overlays
	return j
}
