package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hookDefaultTimeout bounds a hook that names no timeout of its own.
const hookDefaultTimeout = 10 * time.Second

// hookOutMax bounds what of a hook's output is kept for its error.
const hookOutMax = 4096

type boundedBuf struct{ bytes.Buffer }

func (b *boundedBuf) Write(p []byte) (int, error) {
	if room := hookOutMax - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// runHooks runs each hook of one kind in order, the state JSON on its
// stdin; the first failure stops them. kind names the field in errors.
func runHooks(kind string, hooks []specs.Hook, st *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("hooks.%s: %w", kind, err)
	}
	for i, h := range hooks {
		if err := runHook(h, data); err != nil {
			return fmt.Errorf("hooks.%s[%d] (%s): %w", kind, i, h.Path, err)
		}
	}
	return nil
}

func runHook(h specs.Hook, state []byte) error {
	timeout := hookDefaultTimeout
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("timeout %d: must be positive", *h.Timeout)
		}
		timeout = time.Duration(*h.Timeout) * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = args
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out boundedBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	// A grandchild holding the output open must not hold us.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("timed out after %v", timeout)
	}
	if err != nil {
		msg := oneLine(out.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return fmt.Errorf("%v: %s", err, msg)
		}
		return err
	}
	return nil
}

// hookState is the state document hooks get.
func hookState(id, bundle string, pid int, status specs.ContainerState, ann map[string]string) *specs.State {
	return &specs.State{Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: ann}
}
