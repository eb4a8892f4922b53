package parent

import (
	"io"

	"sandbox/internal/memexec"
	"sandbox/internal/wire"
	"sandbox/spec"
)

// InitELF is sandbox-init (cmd/sandbox-init), embedded by cmd/sandbox when
// built with scripts/build.sh: PID 1 then costs what a small program
// costs to start. Without it (a plain `go build`), init is this binary
// again, re-executed as wire.InitArg0.
var InitELF []byte

// initCommand is the path and argv[0] that start init, and a file to
// close once it has started (the sealed memfd of the embedded copy).
func initCommand() (string, io.Closer, error) {
	if InitELF == nil {
		return "/proc/self/exe", nil, nil
	}
	m, err := memexec.New(wire.InitArg0, InitELF)
	if err != nil {
		return "", nil, err
	}
	return m.Path(), m, nil
}

// netstackCommand is the path that starts the builtin network helper and a
// file to close once it has started (the sealed memfd of the embedded
// copy).
func netstackCommand() (string, io.Closer, error) {
	if spec.NetstackELF == nil {
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
	return m.Path(), m, nil
}
