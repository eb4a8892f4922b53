// Command pullreg serves the image that bench/pull.sh pulls, and prints the
// benchmark's table.
//
//	pullreg serve -addr-file FILE [-mb 50] [-layers 5] [-seed 1] [-max-life 30m]
//	pullreg report -in results.tsv [-md FILE] [-goal 1.0]
//
// serve starts go-containerregistry's in-memory registry on 127.0.0.1 (a
// free port), generates a multi-layer image of about -mb MB of gzip'd layers
// (files of pseudo-random, partly compressible bytes from -seed, so the same
// flags give the same image), pushes it as bench/pull:latest, writes
// "HOST:PORT/bench/pull:latest" to FILE and serves until SIGTERM, SIGINT, its
// stdin closing or -max-life, whichever comes first.
//
// report reads "tool<TAB>round<TAB>seconds<TAB>maxrss_kb" lines and prints
// the medians per tool, sandbox ÷ podman, and the goal line.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pullreg serve|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "report":
		err = report(os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q (serve or report)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pullreg:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addrFile := fs.String("addr-file", "", "write the image reference to this file when ready")
	mb := fs.Int("mb", 50, "approximate compressed size of the image, MB")
	layers := fs.Int("layers", 5, "number of layers")
	seed := fs.Int64("seed", 1, "seed of the layers' contents")
	maxLife := fs.Duration("max-life", 30*time.Minute, "stop serving after this long in any case")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addrFile == "" || *mb < 1 || *mb > 1024 || *layers < 1 || *layers > 64 {
		return errors.New("serve needs -addr-file, 1 <= -mb <= 1024, 1 <= -layers <= 64")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	img, err := buildImage(*mb, *layers, *seed)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(ln.Addr().String()+"/bench/pull:latest", name.Insecure)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	fmt.Fprintf(os.Stderr, "pullreg: %s: %d layers, %.1f MB compressed\n", ref, len(m.Layers), float64(total)/1e6)
	if err := os.WriteFile(*addrFile, []byte(ref.String()+"\n"), 0o644); err != nil {
		return err
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-stop:
	case <-stdinClosed:
	case <-time.After(*maxLife):
		fmt.Fprintln(os.Stderr, "pullreg: -max-life reached, stopping")
	}
	return nil
}

// buildImage makes n gzip'd layers whose compressed sizes add up to about mb
// MB (a large one at the bottom, smaller ones above, as a base image and
// what is added on it), each a few directories of files of 4 KiB to 1 MiB.
// File contents are random bytes from a 64-symbol alphabet: gzip gets them to
// about 3/4, so unpacking has real decompression work to do.
func buildImage(mb, n int, seed int64) (v1.Image, error) {
	rng := rand.New(rand.NewSource(seed))
	// Weights n, n-1, …, 1 of the total.
	weights := n * (n + 1) / 2
	ls := make([]v1.Layer, 0, n)
	for i := 0; i < n; i++ {
		target := int64(mb) * 1e6 * int64(n-i) / int64(weights)
		// ~0.76 compressed/uncompressed for 6 bits of entropy per byte.
		raw, err := layerTar(rng, i, target*100/76)
		if err != nil {
			return nil, err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		if _, err := zw.Write(raw); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		b := gz.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		})
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cf)
}

// layerTar returns an uncompressed tar of about size bytes.
func layerTar(rng *rand.Rand, idx int, size int64) ([]byte, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	var written int64
	for d := 0; written < size; d++ {
		dir := fmt.Sprintf("layer%d/dir%03d/", idx, d)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
		for f := 0; f < 32 && written < size; f++ {
			n := int64(4096 << rng.Intn(9)) // 4 KiB … 1 MiB
			if n > size-written {
				n = size - written
			}
			data := make([]byte, n)
			_, _ = rng.Read(data)
			for i := range data {
				data[i] = alphabet[data[i]&63]
			}
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sf%03d", dir, f), Mode: 0o644, Size: n, ModTime: epoch}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
			written += n
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
