package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"sandbox/image"
	"sandbox/internal/wire"
	"sandbox/journal"
)

type imageCmd struct {
	Pull   imagePullCmd   `cmd:"" help:"Pull an image from a registry into the store."`
	Import imageImportCmd `cmd:"" help:"Import a docker save or OCI image-layout tarball."`
	Ls     imageLsCmd     `cmd:"" help:"List the pulled and imported images."`
	Rm     imageRmCmd     `cmd:"" help:"Remove an image, and its layers no other image uses."`
	Prune  imagePruneCmd  `cmd:"" help:"Remove the layers no image uses, and what killed pulls and imports left."`
}

type imagePullCmd struct {
	Platform string   `placeholder:"OS/ARCH[/VARIANT]" help:"The platform to pick from a multi-platform image (default: this machine's)."`
	Insecure []string `name:"insecure-registry" placeholder:"HOST[:PORT]" help:"A registry that may be reached over plain HTTP (repeatable); every other one over TLS only."`
	Ref      string   `arg:"" help:"NAME[:TAG], REGISTRY/NAME[:TAG] or NAME@sha256:DIGEST; a short name goes to $SANDBOX_DEFAULT_REGISTRY, else docker.io (library/NAME for a one-component name)."`
}

type imagePruneCmd struct{}

type imageImportCmd struct {
	Name         string `placeholder:"NAME[:TAG]" help:"Name of the image (default: the archive's own; the tag defaults to latest)."`
	MaxExpansion int64  `name:"max-expansion" placeholder:"N" default:"100" help:"Refuse a layer that unpacks to more than N times its compressed size (at least 16 MiB): a decompression bomb stops there."`
	File         string `arg:"" type:"existingfile" help:"The tarball (docker save, or an OCI image layout)."`
}

type imageLsCmd struct {
	JSON bool `name:"json" help:"Print one JSON array."`
}

type imageRmCmd struct {
	Name string `arg:"" help:"The image (sandbox image ls lists them)."`
}

// runImage runs `sandbox image import|ls|rm`.
func runImage(c imageCmd, cmd string) int {
	store, err := image.DefaultStore()
	if err == nil {
		switch cmd {
		case "image import <file>":
			err = imageImport(store, c.Import)
		case "image pull <ref>":
			err = imagePull(c.Pull)
		case "image prune":
			var h image.Helper
			if h, err = image.NewHelper(); err == nil {
				var gone []string
				if gone, err = store.Prune(h); err == nil {
					fmt.Printf("removed %d unused layers\n", len(gone))
				}
			}
		case "image ls":
			// What a killed import left goes at the next image command.
			if err = store.Sweep(image.NewHelper); err == nil {
				err = imageLs(store, c.Ls.JSON)
			}
		case "image rm <name>":
			var h image.Helper
			if h, err = image.NewHelper(); err == nil {
				var gone []string
				if gone, err = store.Remove(c.Rm.Name, h); err == nil {
					fmt.Printf("removed %s (%d layers no other image used)\n", c.Rm.Name, len(gone))
				}
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: image: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		return wire.StatusError
	}
	return 0
}

func imagePull(c imagePullCmd) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	img, err := pullImage(ctx, c.Ref, pullOptions{Platform: c.Platform, Insecure: c.Insecure, Progress: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", img.Name, img.Digest)
	return nil
}

func imageImport(store image.Store, c imageImportCmd) error {
	h, err := image.NewHelper()
	if err != nil {
		return err
	}
	if c.MaxExpansion < 1 {
		return fmt.Errorf("--max-expansion %d: must be 1 or more", c.MaxExpansion)
	}
	// The layers are unpacked by sandbox-pull's helper: sandbox itself
	// does not link the decompressors (image/decompress).
	exe, closer, err := pullCommand()
	if err != nil {
		return err
	}
	if closer != nil {
		defer closer.Close()
	}
	h.Exe = exe
	res, err := store.Import(c.File, c.Name, h, c.MaxExpansion)
	if err != nil {
		return err
	}
	lg := journal.DefaultLogger(false, time.Now())
	if res.UnmappedIDs > 0 {
		// One warning: the mapping's own (no subordinate ids, and the fix)
		// says why the ids fell back.
		why := "your subordinate ids do not cover them"
		if h.Maps.Warning != "" {
			why = h.Maps.Warning
		}
		lg.Warn(fmt.Sprintf("%d files of the image are owned by ids your mapping lacks: they are owned by you (root inside) instead; %s", res.UnmappedIDs, why))
	}
	if res.SkippedDevices > 0 {
		lg.Warn(fmt.Sprintf("%d device nodes of the image were skipped (a sandbox cannot use them)", res.SkippedDevices))
	}
	fmt.Printf("imported %s: %d layers unpacked (%s), %d already in the store\n",
		strings.Join(res.Names, ", "), res.Unpacked, image.HumanSize(res.Added), res.Reused)
	return nil
}

// imageRow is one image in `image ls`.
type imageRow struct {
	Name       string `json:"name"`
	Ref        string `json:"ref,omitempty"`    // the registry reference, when pulled
	Digest     string `json:"digest,omitempty"` // the manifest's digest, when pulled
	ID         string `json:"id"`
	Layers     int    `json:"layers"`
	SizeUnique int64  `json:"size_unique"` // bytes of layers only this image uses
	SizeShared int64  `json:"size_shared"` // bytes of layers other images use too
	Created    string `json:"created"`
}

func imageLs(store image.Store, asJSON bool) error {
	imgs, err := store.Images()
	if err != nil {
		return err
	}
	users := map[string]int{}
	for _, img := range imgs {
		seen := map[string]bool{}
		for _, l := range img.Layers {
			if !seen[l.DiffID] {
				seen[l.DiffID] = true
				users[l.DiffID]++
			}
		}
	}
	rows := []imageRow{}
	for _, img := range imgs {
		r := imageRow{Name: img.Name, Ref: img.Ref, Digest: img.Digest, ID: img.ID, Layers: len(img.Layers), Created: img.Created}
		if r.Created == "" {
			r.Created = img.Imported.Format("2006-01-02T15:04:05Z")
		}
		for _, l := range img.Layers {
			if users[l.DiffID] > 1 {
				r.SizeShared += l.Size
			} else {
				r.SizeUnique += l.Size
			}
		}
		rows = append(rows, r)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tID\tDIGEST\tLAYERS\tUNIQUE\tSHARED\tCREATED")
	for _, r := range rows {
		short := func(d string) string {
			d = strings.TrimPrefix(d, "sha256:")
			if len(d) > 12 {
				d = d[:12]
			}
			return d
		}
		dg := "-"
		if r.Digest != "" {
			dg = short(r.Digest)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Name, short(r.ID), dg, r.Layers, image.HumanSize(r.SizeUnique), image.HumanSize(r.SizeShared), r.Created)
	}
	return w.Flush()
}
