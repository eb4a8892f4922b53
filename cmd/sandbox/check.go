package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"

	"sandbox"
	"sandbox/hostcheck"
)

// runCheck prints the host diagnosis; 1 when a FAIL stops run's defaults.
func runCheck(asJSON bool) int {
	name := strconv.Itoa(os.Getuid())
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	facts := hostcheck.Gather(name, uint32(os.Getuid()))
	facts.NetDrivers = hostcheck.NetDrivers(sandbox.HaveNetstack())
	results := hostcheck.Judge(facts)
	exe, err := os.Executable()
	trueBin, terr := exec.LookPath("true")
	if err == nil && terr == nil {
		results = append(results, hostcheck.Probe(exe, trueBin))
	}
	failed := hostcheck.Failed(results)
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			OK      bool               `json:"ok"`
			Results []hostcheck.Result `json:"results"`
		}{!failed, results})
	} else {
		for _, r := range results {
			fmt.Printf("%-4s  %-20s %s\n", r.Level, r.Name, r.Detail)
			if r.Fix != "" && r.Level != hostcheck.OK {
				fmt.Printf("      %-20s fix: %s\n", "", r.Fix)
			}
		}
	}
	if failed {
		return 1
	}
	return 0
}
