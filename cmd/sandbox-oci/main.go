// Command sandbox-oci is sandbox's OCI runtime: the runc command line
// (create, start, state, kill, delete, run, exec, ps, list, features, spec,
// pause, resume, update) over a bundle's config.json. Engines name it as
// their runtime: podman --runtime, containerd's runc shim BinaryName, a
// Kubernetes RuntimeClass (docs/oci.md).
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"
)

// globals are runc's global flags.
type globals struct {
	Root          string `help:"Directory of the containers' state." placeholder:"DIR"`
	Log           string `help:"Log file (default: stderr)." placeholder:"FILE"`
	LogFormat     string `name:"log-format" enum:"text,json" default:"text" help:"text or json."`
	SystemdCgroup bool   `name:"systemd-cgroup" help:"cgroupsPath is slice:prefix:name, placed by systemd."`
	Debug         bool   `help:"More log lines."`
}

type cli struct {
	globals
	Create   createCmd   `cmd:"" help:"Create a container (its process waits for start)."`
	Start    startCmd    `cmd:"" help:"Start a created container's process."`
	State    stateCmd    `cmd:"" help:"Print a container's OCI state."`
	Kill     killCmd     `cmd:"" help:"Signal a container's process."`
	Delete   deleteCmd   `cmd:"" help:"Delete a container."`
	Run      runCmd      `cmd:"" help:"Create and start a container, wait for it."`
	Exec     execCmd     `cmd:"" help:"Run a process in a running container."`
	Ps       psCmd       `cmd:"" help:"List a container's processes."`
	List     listCmd     `cmd:"" help:"List containers."`
	Features featuresCmd `cmd:"" help:"Print the runtime-spec features document."`
	Spec     specCmd     `cmd:"" help:"Write a config.json template."`
	Pause    pauseCmd    `cmd:"" help:"Freeze a container's processes."`
	Resume   resumeCmd   `cmd:"" help:"Thaw a paused container."`
	Update   updateCmd   `cmd:"" help:"Change a container's cgroup limits."`
}

var version = "dev"

func main() {
	var c cli
	k := kong.Parse(&c, kong.Name("sandbox-oci"), kong.UsageOnError())
	if err := k.Run(&c.globals); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox-oci: %v\n", err)
		os.Exit(1)
	}
}
