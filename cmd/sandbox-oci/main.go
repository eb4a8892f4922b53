// Command sandbox-oci is sandbox's OCI runtime: the runc command line
// (create, start, state, kill, delete, run, exec, ps, list, features, spec,
// pause, resume, update) over a bundle's config.json. Engines name it as
// their runtime: podman --runtime, containerd's runc shim BinaryName, a
// Kubernetes RuntimeClass (docs/oci.md).
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/state"
)

// globals are runc's global flags.
type globals struct {
	Root          string `help:"Directory of the containers' state." placeholder:"DIR"`
	Log           string `help:"Log file (default: stderr)." placeholder:"FILE"`
	LogFormat     string `name:"log-format" enum:"text,json" default:"text" help:"text or json."`
	SystemdCgroup bool   `name:"systemd-cgroup" help:"cgroupsPath is slice:prefix:name, placed by systemd."`
	Debug         bool   `help:"More log lines."`
	// Accepted and ignored, as runc does: checkpointing is not offered,
	// and rootless is detected (not root in the initial user namespace).
	Criu     string           `hidden:"" help:"Ignored."`
	Rootless rootlessFlag     `hidden:"" help:"Ignored but by spec: detected. auto, true or false."`
	Version  kong.VersionFlag `short:"v" help:"Print the version."`
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

// rootlessFlag is runc's --rootless[=auto|true|false]: given bare (as
// `spec --rootless` does) it is true.
type rootlessFlag string

func (r *rootlessFlag) Decode(ctx *kong.DecodeContext) error {
	v := "true"
	if ctx.Scan.Peek().Type == kong.FlagValueToken {
		v = fmt.Sprint(ctx.Scan.Pop().Value)
	}
	switch v {
	case "auto", "true", "false":
		*r = rootlessFlag(v)
		return nil
	}
	return fmt.Errorf("--rootless=%s: want auto, true or false", v)
}

// IsBool lets the flag stand without a value.
func (r *rootlessFlag) IsBool() bool { return true }

// exitRuntime is the status of any runtime error (docs/oci.md).
const exitRuntime = 125

// exitStatus is how run and exec (not detached) hand back their
// process's own status.
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// The container's init personality: sandbox-oci re-executed from its
	// sealed memfd by create (init.go). Before kong: its argv is ours.
	if filepath.Base(os.Args[0]) == initName {
		initMain()
		return
	}
	os.Exit(runMain(os.Args[1:]))
}

func runMain(args []string) int {
	var c cli
	k, err := kong.New(&c, kong.Name("sandbox-oci"),
		kong.Description("sandbox's OCI runtime (the runc command line)."),
		kong.Vars{"version": fmt.Sprintf("sandbox-oci version %s\nspec: %s", version, specs.Version)},
		kong.Exit(func(code int) {
			if code != 0 {
				code = exitRuntime
			}
			os.Exit(code)
		}))
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox-oci: %v\n", err)
		return exitRuntime
	}
	ctx, err := k.Parse(args)
	if err != nil {
		// Usage errors are runtime errors too (125), one line.
		logSetup(&c.globals)
		logError(err.Error())
		return exitRuntime
	}
	logSetup(&c.globals)
	defer logClose()
	if err := ctx.Run(&c.globals); err != nil {
		var st exitStatus
		if errors.As(err, &st) {
			return st.code
		}
		logError(err.Error())
		// A process that could not be executed keeps its own status
		// (126, 127), as a shell's would be.
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return exitRuntime
	}
	return 0
}

// rootless tells whether the runtime is not root in the initial user
// namespace: not euid 0, or uid 0 inside someone's user namespace (as
// rootless podman runs us).
func rootless() bool {
	if os.Geteuid() != 0 {
		return true
	}
	m, err := os.ReadFile("/proc/self/uid_map")
	return err != nil || strings.Join(strings.Fields(string(m)), " ") != "0 0 4294967295"
}

// stateRoot is --root, or the default: /run/sandbox-oci as root,
// $XDG_RUNTIME_DIR/sandbox-oci rootless.
// container loads the record of id under the state root.
func (g *globals) container(id string) (*state.Container, error) {
	root, err := g.stateRoot()
	if err != nil {
		return nil, err
	}
	return state.Load(root, id)
}

// containerStatus loads container id and derives its status.
func (g *globals) containerStatus(id string) (*state.Container, specs.ContainerState, error) {
	ct, err := g.container(id)
	if err != nil {
		return nil, "", err
	}
	st, err := ct.Status()
	if err != nil {
		return nil, "", err
	}
	return ct, st, nil
}

func (g *globals) stateRoot() (string, error) {
	if g.Root != "" {
		return filepath.Abs(g.Root)
	}
	if rootless() {
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
			return filepath.Join(x, "sandbox-oci"), nil
		}
		if os.Geteuid() != 0 {
			return "", errors.New("no state directory: give --root or set XDG_RUNTIME_DIR")
		}
	}
	return "/run/sandbox-oci", nil
}
