// Command sandbox-pull is the helper behind `sandbox image pull` and
// `sandbox run --image REF`: the registry client (go-containerregistry),
// kept out of `sandbox` itself so that its package initialisation (~2 ms)
// is paid only by a pull, never by every run. It is started by sandbox,
// never by hand: arguments are the pull's, its answer one JSON object on
// stdout, its progress on stderr. Re-executed as image.HelperArg0 it is
// the store's unpack helper (the layers a pull fetched, and those of
// `sandbox image import`: sandbox does not link the decompressors).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"sandbox/image"
	"sandbox/image/decompress"
	"sandbox/image/registry"
)

// answer is what sandbox-pull prints on stdout.
type answer struct {
	Image *image.Image `json:"image,omitempty"`
	Name  string       `json:"name,omitempty"` // --normalize's
	Err   string       `json:"error,omitempty"`
}

func main() {
	if filepath.Base(os.Args[0]) == image.HelperArg0 {
		os.Exit(image.HelperChild(decompress.Layer))
	}
	var a answer
	if err := run(os.Args[1:], &a); err != nil {
		a.Err = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(a)
}

// run reads [--normalize] [--platform P] [--insecure-registry H]... REF.
func run(args []string, a *answer) error {
	var o registry.Options
	normalize := false
	o.Config.DefaultRegistry = os.Getenv("SANDBOX_DEFAULT_REGISTRY")
	for len(args) > 1 {
		switch args[0] {
		case "--normalize":
			normalize, args = true, args[1:]
		case "--platform":
			o.Platform, args = args[1], args[2:]
		case "--insecure-registry":
			o.Insecure, args = append(o.Insecure, args[1]), args[2:]
		default:
			return errors.New("sandbox-pull: bad arguments (it is started by sandbox, not by hand)")
		}
	}
	if len(args) != 1 {
		return errors.New("sandbox-pull: bad arguments (it is started by sandbox, not by hand)")
	}
	if normalize {
		n, err := registry.Normalize(args[0], o.Config)
		a.Name = n
		return err
	}
	s, err := image.DefaultStore()
	if err != nil {
		return err
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	img, err := registry.Pull(ctx, s, args[0], o)
	if err != nil {
		return err
	}
	a.Image = &img
	return nil
}
