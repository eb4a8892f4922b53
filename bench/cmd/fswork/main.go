// Command fswork is the file-system benchmark's workload runner and table
// printer (bench/fs.sh).
//
//	fswork run -place P -run N -dir DIR -tar FILE [-lower DIR] [-fio-seconds S] [-fio-size 512M]
//	fswork report -in results.jsonl [-baseline host] [-md summary.md] [-json summary.json]
//
// `run` times each workload itself, in the place it runs in (so a sandbox's
// start-up is not part of any number), and prints one JSON line. `report`
// reads those lines and prints the median of each workload in each place and
// its ratio to the baseline place.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if err := dispatch(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fswork:", err)
		os.Exit(1)
	}
}

func dispatch(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: fswork run|report [flags]")
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stdout)
	case "report":
		return reportCmd(args[1:], stdout)
	}
	return fmt.Errorf("unknown subcommand %q (want run or report)", args[0])
}
