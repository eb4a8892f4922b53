package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

type psCmd struct {
	Format string `short:"f" enum:"table,json" default:"table" help:"table or json."`
	ID     string `arg:"" help:"Container id."`
}

func (c *psCmd) Run(g *globals) error {
	ct, st, err := g.containerStatus(c.ID)
	if err != nil {
		return err
	}
	var pids []int
	if st != specs.StateStopped {
		if ct.Cgroup != nil && ct.Cgroup.Path != "" {
			if pids, err = ct.Cgroup.Pids(); err != nil {
				return err
			}
		} else {
			// No cgroup of its own: the init and its descendants.
			pids = descendants(ct.Pid)
		}
	}
	sort.Ints(pids)
	if c.Format == "json" {
		if pids == nil {
			pids = []int{}
		}
		data, err := json.Marshal(pids)
		if err != nil {
			return err
		}
		_, err = fmt.Printf("%s\n", data)
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 6, 1, 2, ' ', 0)
	fmt.Fprint(w, "PID\tCMD\n")
	for _, p := range pids {
		fmt.Fprintf(w, "%d\t%s\n", p, cmdline(p))
	}
	return w.Flush()
}

func cmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err == nil && len(b) > 0 {
		return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
		return "[" + strings.TrimSpace(string(b)) + "]"
	}
	return "?"
}

// descendants is pid and every process below it (/proc's ppid fields).
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out) && len(out) < 1<<16; i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
