package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"sandbox/image"
	"sandbox/internal/hostpath"
	"sandbox/internal/memexec"

	"golang.org/x/sys/unix"
)

// pullName is the registry client's executable (cmd/sandbox-pull): the
// registry code lives there so that its package initialisation is paid by
// pulls only, not by every `sandbox run`.
const pullName = "sandbox-pull"

// pullOptions are a pull's choices (see image/registry.Options).
type pullOptions struct {
	Platform string   // "os/arch[/variant]"; "" = this machine's
	Insecure []string // registries that may be reached over plain HTTP
	Progress io.Writer
}

// pullImage pulls ref into the default store (from $SANDBOX_DEFAULT_REGISTRY
// for a short name) through sandbox-pull and returns the stored image.
// The error is one line naming ref and the fix.
func pullImage(ctx context.Context, ref string, o pullOptions) (image.Image, error) {
	args := []string{}
	if o.Platform != "" {
		args = append(args, "--platform", o.Platform)
	}
	for _, h := range o.Insecure {
		args = append(args, "--insecure-registry", h)
	}
	a, err := callPull(ctx, append(args, ref), o.Progress)
	if err != nil {
		return image.Image{}, err
	}
	if a.Image == nil {
		return image.Image{}, fmt.Errorf("pulling %s: %s answered no image", ref, pullName)
	}
	return *a.Image, nil
}

// normalizeRef is the fully qualified reference a pull of ref records
// (docker.io/library/alpine:latest for alpine).
func normalizeRef(ctx context.Context, ref string) (string, error) {
	a, err := callPull(ctx, []string{"--normalize", ref}, nil)
	return a.Name, err
}

type pullAnswer struct {
	Image *image.Image `json:"image"`
	Name  string       `json:"name"`
	Err   string       `json:"error"`
}

func callPull(ctx context.Context, args []string, progress io.Writer) (pullAnswer, error) {
	var a pullAnswer
	path, closer, err := pullCommand()
	if err != nil {
		return a, err
	}
	if closer != nil {
		defer closer.Close()
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Args[0] = pullName
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = progress
	if progress == nil {
		cmd.Stderr = os.Stderr // its own failures (a crash) must show
	}
	// Interrupted, it finishes its cleanup (the .tmp- files) on SIGTERM.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if jerr := json.Unmarshal(out.Bytes(), &a); jerr != nil {
		if err == nil {
			err = jerr
		}
		return a, fmt.Errorf("running %s: %w", pullName, err)
	}
	if a.Err != "" {
		return a, errors.New(a.Err)
	}
	if err != nil {
		return a, fmt.Errorf("running %s: %w", pullName, err)
	}
	return a, nil
}

// pullCommand is the path of sandbox-pull (see helperCommand).
func pullCommand() (string, io.Closer, error) {
	return helperCommand(pullName, pullELF, "the registry client")
}

// helperCommand is the path of the helper executable name (what it is:
// for the error): the embedded copy elf in a sealed memfd (closed once it
// ran), else the executable next to sandbox or in PATH.
func helperCommand(name, elf, what string) (string, io.Closer, error) {
	if elf != "" {
		m, err := memexec.New(name, elf)
		if err != nil {
			return "", nil, err
		}
		// Above stdio, which a child's start sets up before its exec
		// opens the path (sandbox may have been started without fd 0).
		p, err := m.PathAbove(3)
		if err != nil {
			m.Close()
			return "", nil, err
		}
		return p, m, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil, nil
		}
	}
	p, err := hostpath.Look(name)
	if err != nil {
		return "", nil, fmt.Errorf("%s, %s, is neither embedded (scripts/build.sh) nor next to sandbox nor in PATH", name, what)
	}
	return p, nil, nil
}
