package sandbox

import (
	"sandbox/confine"
	"sandbox/netns"
	"sandbox/rootfs"
	"sandbox/seccomp"
)

// childConfig is what the parent sends the child once the maps are
// written (proto.KindConfig).
type childConfig struct {
	Args     []string     `json:"args"`
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
	Seccomp     *seccomp.Program       `json:"seccomp,omitempty"` // nil: unconfined

	// HostnameAsked: --hostname was given (else a hostname the kernel
	// refuses is kept as it is).
	HostnameAsked bool `json:"hostname_asked,omitempty"`
}

// childError is proto.KindError: the step that failed and the exit status
// to use (125, or 126/127 when the command could not be executed).
type childError struct {
	Step   string `json:"step"`
	Msg    string `json:"msg"`
	Status int    `json:"status"`
	// Init is init's share of the report up to the failure.
	Init *initReport `json:"init,omitempty"`
}

// netReady is proto.KindNet: the network is up, or why not.
type netReady struct {
	Err string `json:"err,omitempty"`
}

// childExit is proto.KindExit: how the payload ended.
type childExit struct {
	Code   int `json:"code"`
	Signal int `json:"signal,omitempty"`
}

func (e *childError) Error() string { return e.Msg }
