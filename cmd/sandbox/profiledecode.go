package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"sandbox/internal/memexec"
	"sandbox/internal/profilewire"
)

// profileName is the profile decoder's executable (cmd/sandbox-profile):
// the YAML and TOML parsers live there, so that their package
// initialisation (~0.8 ms: yaml's regular expressions, toml's local time
// zone) is paid by a run with a profile it has not decoded before only
// (its answers are cached), not by every start.
const profileName = "sandbox-profile"

// profileTimeout bounds the decoder's run: the parsers are bounded by what
// they are given (a profile's size, profiledoc's TOML shape check, yaml's
// alias limits), and a real profile decodes in milliseconds.
const profileTimeout = 20 * time.Second

// maxProfileAnswer bounds what sandbox reads of the decoder's answer: a
// profile is a few keys, and a 1 MiB file of tiny list elements encodes
// to well under this.
const maxProfileAnswer = 32 << 20

// decodeProfile decodes a profile's text (format profilewire.TOML or YAML) into
// its keys' values and lines; errors start with ", line N: " or ": ". A
// variable: the package's tests decode in process.
var decodeProfile = decodeInHelper

// decodeInHelper runs the profile decoder on data, or reads its answer
// from the cache (profilecache.go).
func decodeInHelper(format string, data []byte) (map[string]any, map[string]int, error) {
	cache, key := profileCache(), ""
	if cache != "" {
		key = profileKey(format, data)
		if answer, ok := cachedAnswer(cache, key); ok {
			if values, lines, err := profilewire.Decode(answer); err == nil {
				return values, lines, nil
			}
		}
	}
	path, closer, err := helperCommand(profileName, profileELF, "the profile decoder")
	if err != nil {
		return nil, nil, fmt.Errorf(": %w", err)
	}
	if closer != nil {
		defer closer.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), profileTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, format)
	cmd.Args[0] = profileName
	// Nothing of the caller's: the decoder reads stdin and writes stdout.
	cmd.Env = []string{"GOMAXPROCS=1", memexec.GoDebug}
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(data)
	out := &limitedBuffer{max: maxProfileAnswer}
	cmd.Stdout = out
	cmd.Stderr = os.Stderr // its own failures (a crash) must show
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, nil, fmt.Errorf(": %s did not finish within %v", profileName, profileTimeout)
	case out.over:
		return nil, nil, fmt.Errorf(": it decodes to over %d MiB (a profile is a few flags)", maxProfileAnswer>>20)
	case err != nil:
		return nil, nil, fmt.Errorf(": running %s: %w", profileName, err)
	}
	values, lines, err := profilewire.Decode(out.Bytes())
	var malformed *profilewire.MalformedError
	if errors.As(err, &malformed) {
		return nil, nil, fmt.Errorf(": %s: %w", profileName, err)
	}
	if err == nil && cache != "" {
		storeAnswer(cache, key, out.Bytes())
	}
	return values, lines, err
}

// limitedBuffer keeps up to max bytes; a write beyond them fails (the
// writer, the decoder, then ends on a broken pipe or its write error).
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("answer over the limit")
	}
	return b.Buffer.Write(p)
}
