package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"sandbox/image"
	"sandbox/internal/wire"
	"sandbox/journal"
)

type imageCmd struct {
	Import imageImportCmd `cmd:"" help:"Import a docker save or OCI image-layout tarball."`
	Ls     imageLsCmd     `cmd:"" help:"List the imported images."`
	Rm     imageRmCmd     `cmd:"" help:"Remove an image, and its layers no other image uses."`
}

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
		fmt.Fprintf(os.Stderr, "sandbox: image: %v\n", err)
		return wire.StatusError
	}
	return 0
}

func imageImport(store image.Store, c imageImportCmd) error {
	h, err := image.NewHelper()
	if err != nil {
		return err
	}
	if c.MaxExpansion < 1 {
		return fmt.Errorf("--max-expansion %d: must be 1 or more", c.MaxExpansion)
	}
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
		strings.Join(res.Names, ", "), res.Unpacked, humanSize(res.Added), res.Reused)
	return nil
}

// imageRow is one image in `image ls`.
type imageRow struct {
	Name       string `json:"name"`
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
		r := imageRow{Name: img.Name, ID: img.ID, Layers: len(img.Layers), Created: img.Created}
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
	fmt.Fprintln(w, "NAME\tID\tLAYERS\tUNIQUE\tSHARED\tCREATED")
	for _, r := range rows {
		id := strings.TrimPrefix(r.ID, "sha256:")
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Name, id, r.Layers, humanSize(r.SizeUnique), humanSize(r.SizeShared), r.Created)
	}
	return w.Flush()
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, suffix := float64(n), "KMGT"
	i := -1
	for f >= unit && i < len(suffix)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f%ciB", f, suffix[i])
}
