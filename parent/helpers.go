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

// preload is init's memfd, made once per process (one run).
var preload struct {
	once sync.Once
	done chan struct{}
	m    *memexec.File
	err  error
}

// PreloadInit starts copying init into its memfd, so that the copy runs
// while the caller plans the run; Run then takes it.
func PreloadInit() {
	if InitELF == "" {
		return
	}
	preload.once.Do(func() {
		preload.done = make(chan struct{})
		go func() {
			defer close(preload.done)
			preload.m, preload.err = memexec.New(wire.InitArg0, InitELF)
		}()
	})
}

// initCommand is the path that starts init, and a file to close once it
// has started (the sealed memfd of the embedded copy), at minFD or above
// (see childFDFloor).
func initCommand(minFD int) (string, io.Closer, error) {
	if InitELF == "" {
		return "/proc/self/exe", nil, nil
	}
	PreloadInit()
	<-preload.done
	if preload.err != nil {
		return "", nil, preload.err
	}
	p, err := preload.m.PathAbove(minFD)
	if err != nil {
		preload.m.Close()
		return "", nil, err
	}
	return p, preload.m, nil
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
