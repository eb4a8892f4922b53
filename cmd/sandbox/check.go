package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"sandbox/hostcheck"
	"sandbox/internal/hostpath"
	"sandbox/internal/wire"
	"sandbox/spec"
)

// runCheck prints the host diagnosis; 1 when a FAIL stops run's defaults.
func runCheck(asJSON bool) int {
	uid, gid := os.Getuid(), os.Getgid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	facts := hostcheck.Gather(name, uint32(uid), uint32(gid))
	facts.NetDrivers = hostcheck.NetDrivers(spec.HaveNetstack())
	exe, err := os.Executable()
	if err != nil {
		err = fmt.Errorf("%w: finding this binary: %v", hostcheck.ErrNotProbed, err)
		facts.NS = hostcheck.NSProbe{UserNS: err, Caps: err, Overlay: err, Pivot: err}
		facts.Run.Err = err
	} else {
		facts.Exe = exe
		facts.NS = hostcheck.ProbeNamespaces(exe)
		if trueBin, err := hostpath.Look("true"); err != nil {
			facts.Run.Err = fmt.Errorf("%w: %v", hostcheck.ErrNotProbed, err)
		} else {
			facts.Run = hostcheck.ProbeRun(exe, trueBin)
			hostcheck.ProbeNet(exe, trueBin, facts.NetDrivers, facts.Tun.Exists && facts.Tun.Err == nil)
		}
	}
	results := hostcheck.Judge(facts)
	failed := hostcheck.Failed(results)
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			OK      bool               `json:"ok"`
			Results []hostcheck.Result `json:"results"`
		}{!failed, results}); err != nil {
			fmt.Fprintf(os.Stderr, "sandbox: check: %v\n", err)
			return wire.StatusError
		}
	} else {
		for _, r := range results {
			fmt.Printf("%-4s  %-18s  %s\n", r.Status, r.ID, r.Message)
			if r.Fix != "" && r.Status != hostcheck.OK {
				fmt.Printf("      %-18s  fix: %s\n", "", r.Fix)
			}
		}
		fmt.Println("check:", hostcheck.Summary(results))
	}
	if failed {
		return 1
	}
	return 0
}
