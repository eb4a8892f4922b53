package parent

import (
	"io"
	"sync"

	"sandbox/internal/memexec"
	"sandbox/internal/wire"
	"sandbox/spec"
)

// InitELF is sandbox-init (cmd/sandbox-init), embedded by cmd/sandbox when
// built with scripts/build.sh: PID 1 then costs what a small program
// costs to start. Without it (a plain `go build`), init is this binary
// again, re-executed as wire.InitArg0.
var InitELF string

// loadInit copies init into its memfd, once per process (one run); a
// second caller waits for the first.
var loadInit = sync.OnceValues(func() (*memexec.File, error) {
	return memexec.New(wire.InitArg0, InitELF)
})

// PreloadInit starts copying init into its memfd, so that the copy runs
// while the caller plans the run; Run then takes it.
func PreloadInit() {
	if InitELF != "" {
		go loadInit()
	}
}

// initCommand is the path that starts init, and a file to close once it
// has started (the sealed memfd of the embedded copy), at minFD or above
// (see childFDFloor).
func initCommand(minFD int) (string, io.Closer, error) {
	if InitELF == "" {
		return "/proc/self/exe", nil, nil
	}
	m, err := loadInit()
	if err != nil {
		return "", nil, err
	}
	p, err := m.PathAbove(minFD)
	if err != nil {
		m.Close()
		return "", nil, err
	}
	return p, m, nil
}

// netstackCommand is the path that starts the builtin network helper and a
// file to close once it has started (the sealed memfd of the embedded
// copy).
func netstackCommand() (string, io.Closer, error) {
	if spec.NetstackELF == "" {
		p, err := spec.NetstackPath()
		if err != nil {
			return "", nil, nil // Start reports the missing helper
		}
		return p, nil, nil
	}
	m, err := memexec.New(spec.NetstackName, spec.NetstackELF)
	if err != nil {
		return "", nil, err
	}
	// Above the fds the helper's fork moves its files through (its socket
	// was made before, at a lower number; see childFDFloor).
	p, err := m.PathAbove(256)
	if err != nil {
		m.Close()
		return "", nil, err
	}
	return p, m, nil
}
