// Command sandbox runs a command in a rootless sandbox.

// The runtime's cgroup-aware GOMAXPROCS keeps a cgroup file open (fd 4 on
// a cgroup v1 host): --preserve-fds would take it for one of the caller's
// and hand it to the sandbox.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/netns/egress"
	"sandbox/parent"
	"sandbox/spec"

	"github.com/alecthomas/kong"
)

var version = "dev"

func main() {
	if run, ok := personality(); ok {
		os.Exit(run())
	}
	spec.NetstackELF, parent.InitELF = netstackELF, initELF
	os.Exit(runCLI(os.Args[1:]))
}

type runCmd struct {
	Name     string   `placeholder:"NAME" help:"Name of the sandbox, for exec, ps, kill, stop, logs (default: its hostname, sandbox-<6 random hex digits>)."`
	Detach   bool     `short:"d" help:"Run in the background: print the name and return once the command started; its output goes to a log (sandbox logs NAME)."`
	Map      string   `enum:"auto,full,single" default:"auto" help:"Identity mapping: full (you plus your /etc/subuid and /etc/subgid ranges), single (only you), auto (full when possible, else single with a warning)."`
	UID      uint32   `name:"uid" default:"0" help:"Your uid inside the sandbox (it maps to your own uid outside)."`
	GID      uint32   `name:"gid" default:"0" help:"Your gid inside the sandbox (it maps to your own gid outside)."`
	Hostname string   `help:"Hostname inside (default: the --name if it is a valid hostname, else sandbox-<6 random hex digits>)."`
	Net      string   `enum:"auto,pasta,slirp4netns,builtin,none,host" default:"auto" help:"Network: auto (the first usable of slirp4netns, pasta, builtin), pasta, slirp4netns, builtin (the in-process gvisor-tap-vsock stack), none (own namespace, only lo) or host (share the host's)."`
	Publish  []string `short:"p" placeholder:"[HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|udp]" help:"Forward a host port to a port inside (repeatable). HOSTIP defaults to 127.0.0.1."`

	AllowHostLoopback bool     `help:"Let the sandbox reach services on the host's 127.0.0.1, as 10.0.2.2 (host.sandbox.internal)."`
	AllowLinkLocal    bool     `help:"Let the sandbox reach 169.254.0.0/16 (link-local, cloud metadata services)."`
	AllowHost         []string `name:"allow-host" sep:"none" placeholder:"NAME[:PORT,…]" help:"Egress policy: let the sandbox reach NAME (*.SUFFIX: its subdomains; *: any name) on these ports (default: all), by the addresses NAME resolves to through the sandbox's DNS, TCP and UDP (repeatable). With any --allow-host or --allow-cidr everything else is blocked, names no rule allows do not resolve, and the blocked attempts are reported (see below)."`
	AllowCIDR         []string `name:"allow-cidr" sep:"none" placeholder:"CIDR[:PORT,…]" help:"Egress policy: let the sandbox reach these IPv4 addresses (an address or a CIDR) on these ports (default: all) (repeatable)."`
	DenyHost          []string `name:"deny-host" sep:"none" placeholder:"NAME[:PORT,…]" help:"Egress policy: block NAME (as --allow-host) even where an --allow-host rule covers it (repeatable)."`
	DNS               string   `name:"dns" placeholder:"IP" help:"The DNS server to ask (IPv4): the builtin network's resolver forwards to it, other networks put it in resolv.conf (default: the host's servers)."`
	Rootfs            string   `type:"path" placeholder:"DIR" help:"Use DIR as the root's bottom layer instead of the host's own directories."`
	Image             string   `placeholder:"REF" help:"Use an image as the root, with its environment, working directory, command and user: one pulled or imported (sandbox image import) under that name, else pulled from its registry (see --pull)."`
	Pull              string   `enum:"missing,always,never" default:"missing" help:"When --image pulls: missing (only when the store has no image of that name), always (check the registry for a newer one), never (fail when it is missing)."`
	Platform          string   `placeholder:"OS/ARCH[/VARIANT]" help:"The platform --image pulls from a multi-platform image (default: this machine's)."`
	InsecureRegistry  []string `name:"insecure-registry" placeholder:"HOST[:PORT]" help:"A registry --image may pull from over plain HTTP (repeatable); every other one over TLS only."`
	Layer             []string `type:"path" placeholder:"DIR" help:"Stack DIR as a read-only layer (repeatable; later ones on top)."`
	Upper             string   `type:"path" placeholder:"DIR" help:"Keep the root's changes in DIR across runs (default: in the ephemeral storage, gone at exit)."`
	Overlay           string   `enum:"auto,kernel,fuse" default:"auto" help:"Overlay driver: kernel (overlayfs), fuse (fuse-overlayfs), or auto (kernel, and fuse-overlayfs with a warning for each mount the kernel refuses)."`
	ReadOnly          bool     `help:"Make the root read-only (no copy-on-write layer)."`
	Ephemeral         string   `enum:"memory,disk" default:"memory" help:"Where the sandbox's ephemeral writes go (the root's changes without --upper, /tmp, /run, /dev/shm, the homes, --tmpfs): memory (one tmpfs of --ephemeral-size) or disk (a directory under $XDG_CACHE_HOME/sandbox/ephemeral, removed at exit; bounded by that file system's free space)."`
	EphemeralSize     string   `name:"ephemeral-size" placeholder:"SIZE" help:"Size of that one tmpfs, shared by all of them (default: a quarter of RAM, at most 8G, at most half of --memory; here ${ephemeral_default}); full, writes fail with ENOSPC."`
	Cwd               string   `placeholder:"rw|ro|none" help:"Share the working directory at the same path: rw (default), ro or none."`
	Bind              []string `placeholder:"SRC[:DST][:ro]" help:"Bind host SRC at DST inside (repeatable; DST defaults to SRC)."`
	Tmpfs             []string `placeholder:"DST" help:"Mount an empty tmpfs at DST (repeatable; part of the ephemeral storage, see --ephemeral)."`
	Chdir             string   `placeholder:"DIR" help:"Working directory of the command (default: the shared working directory, else /)."`
	Env               []string `short:"e" placeholder:"K=V" help:"Set K=V, or copy K from your environment (repeatable)."`
	Clearenv          bool     `help:"Start from an empty environment (PATH, HOME and TERM are then set)."`
	TTY               string   `name:"tty" enum:"auto,always,never" default:"auto" help:"Give the command a private terminal: auto (when stdin and stdout are terminals), always, never."`
	Verbose           bool     `short:"v" help:"Log each setup step with its timing to stderr."`
	LogFormat         string   `name:"log-format" enum:"text,json" default:"text" help:"Format of sandbox's own lines on stderr: text, or json (one object per line: time, level, stage, elapsed_ms, msg)."`
	Report            string   `placeholder:"FILE|-" help:"Write a JSON report of the run (identity, root, network, limits, fallbacks, step timings, exit cause) to FILE, or stdout with -."`

	CapAdd            []string `placeholder:"CAP" help:"Add a capability to root's bounding set inside (repeatable; CAP_NAME, NAME or ALL). Default: Docker's set."`
	CapDrop           []string `placeholder:"CAP" help:"Drop a capability from root's bounding set inside (repeatable; CAP_NAME, NAME or ALL)."`
	Landlock          bool     `help:"Landlock: the command may write only the shared working directory, read-write binds, --tmpfs, /tmp, /dev/shm and your home; the rest of the root is read-only for it."`
	PreserveFds       int      `placeholder:"N" help:"Pass file descriptors 3 .. 3+N-1 on to the command (default: none beyond stdio)."`
	Seccomp           string   `placeholder:"default|unconfined|FILE" default:"default" help:"System-call filter: the built-in default, unconfined (none), or an OCI/Docker seccomp JSON profile."`
	AllowNestedUserns bool     `name:"allow-nested-userns" help:"Let the command create user namespaces (the default filter refuses them) and mount in them."`
	UnmaskProc        bool     `name:"unmask-proc" help:"Leave /proc's masked and read-only entries (kcore, keys, sys, …) visible, so that a nested sandbox or container can mount its own /proc (with --allow-nested-userns)."`

	Memory     string   `placeholder:"SIZE" help:"Memory limit (memory.max), e.g. 512M; swap is off unless --memory-swap. Sizes: bytes or K, M, G, T."`
	MemorySwap string   `name:"memory-swap" placeholder:"SIZE" help:"Swap the command may use beyond --memory (memory.swap.max; max: no limit)."`
	CPUs       string   `name:"cpus" placeholder:"N" help:"CPU time in CPUs, e.g. 0.5 (cpu.max quota per 100 ms)."`
	CPUWeight  string   `name:"cpu-weight" placeholder:"N" help:"Relative CPU weight, 1 to 10000 (cpu.weight; default 100)."`
	Pids       string   `placeholder:"N|max" help:"Most processes and threads at once (pids.max). Without it each user inside gets RLIMIT_NPROC 4096, which the command cannot raise; max: neither."`
	IOWeight   string   `name:"io-weight" placeholder:"N" help:"Relative I/O weight, 1 to 10000 (io.weight)."`
	IOMax      []string `name:"io-max" sep:"none" placeholder:"DEV:rbps=N,wbps=N,riops=N,wiops=N" help:"I/O limits on a whole disk (io.max; DEV is /dev/NAME or MAJ:MIN; repeatable)."`
	Limits     string   `enum:"strict,best-effort" default:"strict" help:"strict: a limit that cannot be applied stops the run (exit 125, with the fix); best-effort: run without it, with a warning."`
	Profile    string   `placeholder:"FILE" help:"Take defaults for these flags, and the command, from a TOML or YAML profile (see below)."`
	Command    []string `arg:"" optional:"" passthrough:"partial" name:"command" help:"The command and its arguments (after --; default: the profile's command)."`
}

type versionCmd struct{}

type checkCmd struct {
	JSON bool `name:"json" help:"Print the results as one JSON document."`
}

type cli struct {
	Run     runCmd     `cmd:"" help:"Run a command in a new sandbox."`
	Exec    execCmd    `cmd:"" help:"Run a command in a running sandbox (joins all of it)."`
	Ps      psCmd      `cmd:"" help:"List your running sandboxes."`
	Kill    killCmd    `cmd:"" help:"Send a signal to a sandbox's command."`
	Stop    stopCmd    `cmd:"" help:"Stop a sandbox: TERM, then KILL after --time."`
	Logs    logsCmd    `cmd:"" help:"Print the output of a detached sandbox."`
	Rm      rmCmd      `cmd:"" help:"Remove an ended detached sandbox's record and log."`
	Check   checkCmd   `cmd:"" help:"Diagnose this host (OK, WARN or FAIL, with fixes)."`
	Image   imageCmd   `cmd:"" help:"Pull, import, list and remove images."`
	Version versionCmd `cmd:"" help:"Print the version."`

	Completion completionCmd `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
}

// flagGiven says the selected command's flag was set: on the command line,
// or by a profile or variable (kong adds those to the path as resolved).
func flagGiven(ctx *kong.Context, name string) bool {
	for _, p := range ctx.Path {
		if p.Flag != nil && p.Flag.Name == name {
			return true
		}
	}
	return false
}

// splitCommand keeps from kong the words of run's or exec's command after
// its first: kong pushes each passthrough word back onto its scanner by
// copying all the others, so 100,000 arguments took many minutes. The
// first "--" ends kong's flags as it ends ours.
func splitCommand(args []string) (forKong, rest []string) {
	if len(args) == 0 || (args[0] != "run" && args[0] != "exec") {
		return args, nil
	}
	i := slices.Index(args, "--")
	if i < 0 || len(args)-i <= 2 {
		return args, nil
	}
	return args[: i+2 : i+2], args[i+2:]
}

func runCLI(args []string) int {
	var c cli
	exitCode := -1
	def := newDefaults(os.LookupEnv)
	grammar, one := grammarFor(&c, args)
	def.runless = !whole(grammar) && args[0] != "run"
	parser, err := kong.New(grammar, append(one,
		kong.Name("sandbox"),
		kong.Description("Run a command isolated in a rootless sandbox: user, mount, pid, uts, ipc and network namespaces, a copy-on-write view of the host, no root needed.\n\nExit status of run: the command's own; 128+N if it died of signal N; 125 if the sandbox failed; 126 not executable; 127 not found."),
		kong.UsageOnError(),
		kong.Exit(func(code int) { exitCode = code }),
		def.option(), helpOption(),
	)...)
	lg := journal.NewLogger(os.Stderr, journal.LogText, "sandbox", false, time.Now())
	if err != nil {
		lg.Error(err.Error())
		return wire.StatusError
	}
	args, rest := splitCommand(args)
	ctx, err := parser.Parse(args)
	if exitCode >= 0 {
		// --help and friends: kong already printed.
		if exitCode != 0 {
			return wire.StatusError
		}
		return 0
	}
	if err != nil {
		lg.Error(err.Error())
		return wire.StatusError
	}
	if err := emptyValue(ctx); err != nil {
		lg.Error(def.explain(err).Error())
		return wire.StatusError
	}
	name, _, _ := strings.Cut(ctx.Command(), " ")
	c.Run.Command = append(c.Run.Command, rest...)
	c.Exec.Command = append(c.Exec.Command, rest...)
	switch name {
	case "version":
		fmt.Println("sandbox", version)
		return 0
	case "check":
		return runCheck(c.Check.JSON)
	case "completion":
		return runCompletion(os.Stdout, parser.Model, c.Completion.Shell)
	case "image":
		return runImage(c.Image, ctx.Command())
	}
	if status, ok := lifecycle(&c, name, lg); ok {
		return status
	}
	r := c.Run
	cmd := r.Command
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	if len(cmd) == 0 {
		cmd = def.command()
	}
	// The background supervisor of a detached run is this same command
	// line, told its role (and the name the foreground claimed) by the
	// environment, which the sandbox must not inherit.
	supervisor := os.Getenv(parent.DetachedEnv)
	os.Unsetenv(parent.DetachedEnv)
	// This process starts init: copy it in the meantime. Not with
	// --preserve-fds, whose fds Prepare checks: the copy's fd must not be
	// taken for one of them.
	if (!r.Detach || supervisor != "") && r.PreserveFds == 0 {
		parent.PreloadInit()
	}
	// A registry image is pulled here: Prepare only plans.
	imageName, err := runImageRef(r, supervisor)
	var s *spec.Spec
	if err == nil {
		s, err = spec.Prepare(spec.Options{
			Args: cmd, Name: r.Name, Detach: r.Detach, Supervisor: supervisor, Map: r.Map, UID: r.UID, GID: r.GID,
			UIDGiven: flagGiven(ctx, "uid"), GIDGiven: flagGiven(ctx, "gid"), Hostname: r.Hostname, Net: r.Net,
			Publish: r.Publish, AllowHostLoopback: r.AllowHostLoopback, AllowLinkLocal: r.AllowLinkLocal,
			Egress: egress.Policy{AllowHost: r.AllowHost, AllowCIDR: r.AllowCIDR, DenyHost: r.DenyHost, DNS: r.DNS},
			Rootfs: r.Rootfs, Image: imageName, Layers: r.Layer, Upper: r.Upper, Overlay: r.Overlay, ReadOnly: r.ReadOnly, Cwd: r.Cwd,
			Ephemeral: r.Ephemeral, EphemeralSize: r.EphemeralSize,
			Binds: r.Bind, Tmpfs: r.Tmpfs, Chdir: r.Chdir, Env: r.Env, ClearEnv: r.Clearenv,
			TTY: r.TTY, Verbose: r.Verbose, LogFormat: r.LogFormat,
			CapAdd: r.CapAdd, CapDrop: r.CapDrop, Landlock: r.Landlock, PreserveFDs: r.PreserveFds,
			Seccomp: r.Seccomp, NestedUserns: r.AllowNestedUserns, UnmaskProc: r.UnmaskProc,
			Limits: cgroupdelegate.Flags{Memory: r.Memory, MemorySwap: r.MemorySwap, CPUs: r.CPUs, CPUWeight: r.CPUWeight,
				Pids: r.Pids, IOWeight: r.IOWeight, IOMax: r.IOMax},
			LimitsMode: r.Limits,
		})
	}
	// Opened once Prepare has checked --preserve-fds: the report's fd must
	// not be taken for one of those.
	report, rerr := journal.OpenReport(r.Report)
	lg = journal.NewLogger(os.Stderr, r.LogFormat, "sandbox", false, time.Now())
	if err != nil {
		lg.Error(def.explain(err).Error())
		if rerr == nil {
			rerr = report.Write(journal.PrepareFailed(cmd, err))
		}
	}
	if rerr != nil {
		lg.Error(rerr.Error())
	}
	if err != nil || rerr != nil {
		return wire.StatusError
	}
	status, err := parent.Run(s)
	if err != nil {
		err = def.explain(err)
	}
	status = exitStatus(status, err, s.Log)
	// A detaching run's report is written by its background supervisor.
	if !s.Detaching() {
		if werr := report.Write(s.Report); werr != nil {
			s.Log.Error(werr.Error())
		}
	}
	return status
}
