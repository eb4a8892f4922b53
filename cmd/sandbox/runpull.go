package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"sandbox/image"
	"sandbox/journal"

	"golang.org/x/sys/unix"
)

// imageSource is what `run --image REF` needs of the store and the
// registry (a fake in the tests).
type imageSource interface {
	// Has says the store holds an image recorded under name.
	Has(name string) (bool, error)
	// Normalize gives the fully qualified reference a pull records.
	Normalize(ref string) (string, error)
	// Pull fetches ref into the store and returns the stored image's name.
	Pull(ref string) (string, error)
}

// Pull policies of `run --pull`.
const (
	pullMissing = "missing"
	pullAlways  = "always"
	pullNever   = "never"
)

// resolveImage decides which stored image `run --image ref` uses, pulling
// it first as policy says. An image imported under the name as typed wins
// (missing, never); then the one stored under the normalized reference;
// otherwise (missing), or in any case (always), the registry's.
func resolveImage(ref, policy string, src imageSource) (string, error) {
	has := func(name string) (bool, error) {
		if policy == pullAlways {
			return false, nil
		}
		ok, err := src.Has(name)
		if err != nil {
			return false, fmt.Errorf("--image %s: %w", ref, err)
		}
		return ok, nil
	}
	if ok, err := has(ref); err != nil || ok {
		return ref, err
	}
	full, err := src.Normalize(ref)
	if err != nil {
		return "", fmt.Errorf("--image: %w", err)
	}
	if ok, err := has(full); err != nil || ok {
		return full, err
	}
	if policy == pullNever {
		return "", journal.Usagef("--image %s: not in the image store, and --pull=never (sandbox image pull %s fetches it; sandbox image ls lists the stored ones)", ref, ref)
	}
	name, err := src.Pull(ref)
	if err != nil {
		return "", fmt.Errorf("--image: %w", err) // the pull's error names the reference
	}
	return name, nil
}

// registrySource is the real imageSource: the user's store, and its
// registries through sandbox-pull (pullImage, normalizeRef).
type registrySource struct {
	store image.Store
	opts  pullOptions
}

func (r registrySource) Has(name string) (bool, error) {
	if _, err := image.NormalizeName(name); err != nil {
		return false, nil // not a store name: the registry's parser says what is wrong
	}
	_, err := r.store.Load(name)
	if errors.Is(err, image.ErrNoImage) {
		return false, nil
	}
	return err == nil, err
}

// Normalize asks sandbox-pull (tens of milliseconds), unless ref is a
// plain Docker Hub name whose image is stored (`--image alpine`, pulled).
func (r registrySource) Normalize(ref string) (string, error) {
	if guess, ok := dockerHubName(ref, os.Getenv("SANDBOX_DEFAULT_REGISTRY")); ok {
		if stored, err := r.Has(guess); stored && err == nil {
			return guess, nil
		}
	}
	return normalizeRef(context.Background(), ref)
}

// dockerHubName is the name a pull of ref is stored under when that is
// plain: no registry component (the first one has no '.' or ':' and is not
// localhost) and docker.io the default registry: docker.io/[library/]ref,
// tagged latest when it has no tag or digest. It only spares a stored
// image the call to the registry code; a guess not stored is not used.
func dockerHubName(ref, defaultRegistry string) (string, bool) {
	if defaultRegistry != "" && defaultRegistry != "docker.io" {
		return "", false
	}
	first, _, multi := strings.Cut(ref, "/")
	if first == "" || multi && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return "", false
	}
	if !multi {
		ref = "library/" + ref
	}
	n, err := image.NormalizeName("docker.io/" + ref)
	return n, err == nil
}

func (r registrySource) Pull(ref string) (string, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	img, err := pullImage(ctx, ref, r.opts)
	return img.Name, err
}

// checkPlatform checks --platform's form (OS/ARCH[/VARIANT]) before any
// pull, and when none is needed; the pull matches it against the index.
func checkPlatform(p string) error {
	parts := strings.Split(p, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") || strings.ContainsAny(p, " \t\n") {
		return fmt.Errorf("--platform %q: use OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7", p)
	}
	return nil
}

// runImageRef resolves run's --image (pulling as --pull says) into the
// name of a stored image; "" without --image. A detached run's background
// supervisor repeats the command line: the foreground has pulled already.
func runImageRef(r runCmd, supervisor string) (string, error) {
	if r.Platform != "" {
		if err := checkPlatform(r.Platform); err != nil {
			return "", err
		}
	}
	if r.Image == "" || r.Rootfs != "" {
		return r.Image, nil // Prepare refuses --image with --rootfs: nothing to pull
	}
	// A pull's sockets must not land on a --preserve-fds number the caller
	// left closed, where Prepare would take them for the caller's own.
	for fd := 3; fd < 3+min(r.PreserveFds, 1000); fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return "", journal.Usagef("--preserve-fds %d: file descriptor %d is not open", r.PreserveFds, fd)
		}
	}
	store, err := image.DefaultStore()
	if err != nil {
		return "", fmt.Errorf("--image: %w", err)
	}
	var progress io.Writer = os.Stderr
	if r.LogFormat == "json" {
		progress = io.Discard // stderr carries JSON lines only; a failure comes back as the error
	}
	policy := r.Pull
	if supervisor != "" && policy == pullAlways {
		policy = pullMissing
	}
	return resolveImage(r.Image, policy, registrySource{store, pullOptions{
		Platform: r.Platform, Insecure: r.InsecureRegistry, Progress: progress,
	}})
}
