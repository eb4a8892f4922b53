package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"text/tabwriter"
	"time"

	"sandbox/oci/state"
)

type listCmd struct {
	Format string `short:"f" enum:"table,json" default:"table" help:"table or json."`
	Quiet  bool   `short:"q" help:"Only the ids."`
}

// listEntry is runc's `list --format json` element.
type listEntry struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

func (c *listCmd) Run(g *globals) error {
	root, err := g.stateRoot()
	if err != nil {
		return err
	}
	cs, err := state.List(root)
	if err != nil {
		return err
	}
	if c.Quiet {
		for _, ct := range cs {
			fmt.Println(ct.ID)
		}
		return nil
	}
	entries := make([]listEntry, 0, len(cs))
	for _, ct := range cs {
		st, err := ct.State()
		if err != nil {
			continue
		}
		e := listEntry{Version: st.Version, ID: ct.ID, Pid: st.Pid, Status: string(st.Status), Bundle: ct.Bundle,
			Created: ct.Created, Annotations: ct.Annotations, Owner: ownerName(ct.Owner)}
		if spec, err := loadSpec(ct); err == nil && spec.Root != nil {
			e.Rootfs = spec.Root.Path
		}
		entries = append(entries, e)
	}
	if c.Format == "json" {
		data, err := json.Marshal(entries)
		if err != nil {
			return err
		}
		_, err = fmt.Printf("%s\n", data)
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
	fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
	for _, e := range entries {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Pid, e.Status, e.Bundle, e.Created.Format(time.RFC3339Nano), e.Owner)
	}
	return w.Flush()
}

func ownerName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "#" + strconv.Itoa(uid)
}
