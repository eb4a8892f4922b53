package wire

import (
	"strings"
	"unicode"

	"sandbox/confine"
	"sandbox/internal/hostpath"
	"sandbox/internal/oneline"
	"sandbox/netns"
	"sandbox/rootfs"
	"sandbox/seccomp/bpf"
)

// Exit statuses of `sandbox run` besides the payload's own.
const (
	StatusError       = 125 // the sandbox itself failed
	StatusNotExec     = 126 // the command exists but cannot be executed
	StatusNotFound    = 127 // the command was not found
	StatusSignalStart = 128 // 128+N: the command died of signal N
)

// InitArg0 is argv[0] of the re-executed child; main dispatches on it
// before parsing any flags.
const InitArg0 = "sandbox-init"

// ChildFailure is an error the child reported; Error prints its message
// as the one line the user sees.
type ChildFailure struct{ E ChildError }

func (f *ChildFailure) Error() string {
	msg := f.E.Msg
	if f.E.Step != "" {
		msg = f.E.Step + ": " + msg
	}
	return oneline.Escape(msg) // init's text: no lines or terminal controls of its own
}

// Status returns the exit status the failure stands for.
func (f *ChildFailure) Status() int { return f.E.Status }

// InitFD is where the parent puts the child's end of the socketpair
// (exec.Cmd.ExtraFiles[0]).
const InitFD = 3

// PreserveEnv carries --preserve-fds to init, which must keep those fds
// open before it can read its configuration.
const PreserveEnv = "SANDBOX_PRESERVE_FDS"

// DefaultPath is PATH for a cleared environment.
const DefaultPath = hostpath.Default

// ChildConfig is what the parent sends the child once the maps are
// written (proto.KindConfig).
type ChildConfig struct {
	Args     []string     `json:"args"` // any byte but NUL, as every string here (proto.Encode)
	Env      []string     `json:"env"`
	Hostname string       `json:"hostname"`
	LoopUp   bool         `json:"lo_up"`
	Net      *netns.Child `json:"net,omitempty"`
	Plan     *rootfs.Plan `json:"plan"`
	TTY      bool         `json:"tty"`
	Rows     uint16       `json:"rows,omitempty"`
	Cols     uint16       `json:"cols,omitempty"`
	Verbose  bool         `json:"verbose"`
	Umask    int          `json:"umask"`
	// Exec: the Config message carries a listening socket on which init
	// serves `sandbox exec` while the payload runs.
	Exec bool `json:"exec,omitempty"`
	// LogFormat and Start (CLOCK_MONOTONIC ns of the run's start) make
	// init's lines and step times match the parent's.
	LogFormat string `json:"log_format,omitempty"`
	Start     int64  `json:"start"`

	Caps        []int                  `json:"caps"`
	LastCap     int                    `json:"last_cap"`
	Landlock    *confine.LandlockRules `json:"landlock,omitempty"`
	PreserveFDs int                    `json:"preserve_fds,omitempty"`
	Seccomp     *bpf.Program           `json:"seccomp,omitempty"` // nil: unconfined
	// SeccompWatch: init says Confining and waits for Watched before it
	// installs Seccomp (see wire.go): the filter may kill a single thread,
	// or is a user's profile, whose time to start the payload the parent
	// bounds.
	SeccompWatch bool `json:"seccomp_watch,omitempty"`

	// HostnameAsked: --hostname was given (else a hostname the kernel
	// refuses is kept as it is).
	HostnameAsked bool `json:"hostname_asked,omitempty"`

	// Report: the run writes a report, so Started carries init's share of
	// it (without one, formatting and encoding ~70 steps that nobody reads
	// delayed Started; Error carries it always).
	Report bool `json:"report,omitempty"`
}

// ChildError is proto.KindError: the step that failed and the exit status
// to use (125, or 126/127 when the command could not be executed).
type ChildError struct {
	Step   string `json:"step"`
	Msg    string `json:"msg"`
	Status int    `json:"status"`
	// Init is init's share of the report up to the failure.
	Init *InitReport `json:"init,omitempty"`
}

// NetReady is proto.KindNet: the network is up, or why not.
type NetReady struct {
	Err string `json:"err,omitempty"`
}

// ChildExit is proto.KindExit: how the payload ended.
type ChildExit struct {
	Code   int `json:"code"`
	Signal int `json:"signal,omitempty"`
}

// Status is the exit status `sandbox run` or `sandbox exec` reports for
// it: the code, or 128+N for death by signal N.
func (e ChildExit) Status() int {
	if e.Signal > 0 {
		return StatusSignalStart + e.Signal
	}
	return e.Code
}

func (e *ChildError) Error() string { return e.Msg }

// Fallback is a second choice the run took.
type Fallback struct {
	Area  string `json:"area"`  // identity, network, cwd, cgroup, root, landlock
	Taken string `json:"taken"` // what was done instead
	Why   string `json:"why"`
}

// InitReport is init's share of the report, sent with Started or Error.
type InitReport struct {
	Steps     []TimedStep `json:"steps"`
	Warnings  []string    `json:"warnings,omitempty"`
	Fallbacks []Fallback  `json:"fallbacks,omitempty"`
	Enter     string      `json:"enter,omitempty"`
	Started   int64       `json:"started,omitempty"` // CLOCK_MONOTONIC ns of the payload's start
	// Overlays: what each overlay mount really used.
	Overlays []rootfs.OverlayUse `json:"overlays,omitempty"`
}

// TimedStep is a step on CLOCK_MONOTONIC.
type TimedStep struct {
	At  int64  `json:"at"`
	Msg string `json:"msg"`
}

// ChildStarted is proto.KindStarted.
type ChildStarted struct {
	PID  int         `json:"pid"`
	Init *InitReport `json:"init,omitempty"` // only with ChildConfig.Report
}

// ExecRequest is proto.KindExec: a command to start in the running
// sandbox, as its payload was (same root, namespaces, cgroup, confinement).
type ExecRequest struct {
	Args  []string `json:"args"`
	Env   []string `json:"env,omitempty"`   // KEY=VALUE set over the payload's environment
	Chdir string   `json:"chdir,omitempty"` // "" = the payload's working directory
	TTY   bool     `json:"tty,omitempty"`
	Rows  uint16   `json:"rows,omitempty"`
	Cols  uint16   `json:"cols,omitempty"`
}

// Signal is proto.KindSignal: a signal for the exec'd command (from its
// client), or for the payload (from the parent, which caught it).
type Signal struct {
	Signal int `json:"signal"`
}

// BadEnvName says whether k, a variable's name given by the user, holds a
// control character: `env` and /proc/PID/environ readers would show a
// newline in it as a second variable.
func BadEnvName(k string) bool { return strings.IndexFunc(k, unicode.IsControl) >= 0 }
