package main

import (
	"strings"
	"sync"

	"sandbox/cgroupdelegate"
	"sandbox/spec"

	"github.com/alecthomas/kong"
)

// runHelp is the help of run's flags and argument, by name: kept out of
// runCmd's tags, which kong parses on every start of `sandbox run` (the
// texts were half of the cost of run's model, and their interpolation
// most of the rest); withRunHelp puts them into the model when help is
// printed or completion scripts are made. ${ephemeral_default} is this
// host's default --ephemeral-size. Made on first use: a map literal is
// built at package initialisation, on every start of every command.
var runHelp = sync.OnceValue(func() map[string]string {
	return map[string]string{
		"name":                "Name of the sandbox, for exec, ps, kill, stop, logs (default: its hostname, sandbox-<6 random hex digits>).",
		"detach":              "Run in the background: print the name and return once the command started; its output goes to a log (sandbox logs NAME).",
		"map":                 "Identity mapping: full (you plus your /etc/subuid and /etc/subgid ranges), single (only you), auto (full when possible, else single with a warning).",
		"uid":                 "Your uid inside the sandbox (it maps to your own uid outside).",
		"gid":                 "Your gid inside the sandbox (it maps to your own gid outside).",
		"hostname":            "Hostname inside (default: the --name if it is a valid hostname, else sandbox-<6 random hex digits>).",
		"net":                 "Network: auto (the first usable of slirp4netns, pasta, builtin), pasta, slirp4netns, builtin (the in-process gvisor-tap-vsock stack), none (own namespace, only lo) or host (share the host's).",
		"publish":             "Forward a host port to a port inside (repeatable). HOSTIP defaults to 127.0.0.1.",
		"allow-host-loopback": "Let the sandbox reach services on the host's 127.0.0.1, as 10.0.2.2 (host.sandbox.internal).",
		"allow-link-local":    "Let the sandbox reach 169.254.0.0/16 (link-local, cloud metadata services).",
		"allow-host":          "Egress policy: let the sandbox reach NAME (*.SUFFIX: its subdomains; *: any name) on these ports (default: all), by the addresses NAME resolves to through the sandbox's DNS, TCP and UDP (repeatable). With any --allow-host or --allow-cidr everything else is blocked, names no rule allows do not resolve, and the blocked attempts are reported (see below).",
		"allow-cidr":          "Egress policy: let the sandbox reach these IPv4 addresses (an address or a CIDR) on these ports (default: all) (repeatable).",
		"deny-host":           "Egress policy: block NAME (as --allow-host) even where an --allow-host rule covers it (repeatable).",
		"dns":                 "The DNS server to ask (IPv4): the builtin network's resolver forwards to it, other networks put it in resolv.conf (default: the host's servers).",
		"rootfs":              "Use DIR as the root's bottom layer instead of the host's own directories.",
		"image":               "Use an image as the root, with its environment, working directory, command and user: one pulled or imported (sandbox image import) under that name, else pulled from its registry (see --pull).",
		"pull":                "When --image pulls: missing (only when the store has no image of that name), always (check the registry for a newer one), never (fail when it is missing).",
		"platform":            "The platform --image pulls from a multi-platform image (default: this machine's).",
		"insecure-registry":   "A registry --image may pull from over plain HTTP (repeatable); every other one over TLS only.",
		"layer":               "Stack DIR as a read-only layer (repeatable; later ones on top).",
		"upper":               "Keep the root's changes in DIR across runs (default: in the ephemeral storage, gone at exit).",
		"overlay":             "Overlay driver: kernel (overlayfs), fuse (fuse-overlayfs), or auto (kernel, and fuse-overlayfs with a warning for each mount the kernel refuses).",
		"read-only":           "Make the root read-only (no copy-on-write layer).",
		"ephemeral":           "Where the sandbox's ephemeral writes go (the root's changes without --upper, /tmp, /run, /dev/shm, the homes, --tmpfs): memory (one tmpfs of --ephemeral-size) or disk (a directory under $XDG_CACHE_HOME/sandbox/ephemeral, removed at exit; bounded by that file system's free space).",
		"ephemeral-size":      "Size of that one tmpfs, shared by all of them (default: a quarter of RAM, at most 8G, at most half of --memory; here ${ephemeral_default}); full, writes fail with ENOSPC.",
		"cwd":                 "Share the working directory at the same path: rw (default), ro or none.",
		"bind":                "Bind host SRC at DST inside (repeatable; DST defaults to SRC).",
		"tmpfs":               "Mount an empty tmpfs at DST (repeatable; part of the ephemeral storage, see --ephemeral).",
		"chdir":               "Working directory of the command (default: the shared working directory, else /).",
		"env":                 "Set K=V, or copy K from your environment (repeatable; one per flag: a value keeps its commas).",
		"clearenv":            "Start from an empty environment (PATH, HOME and TERM are then set).",
		"tty":                 "Give the command a private terminal: auto (when stdin and stdout are terminals and sandbox is not started in the background of one), always, never.",
		"verbose":             "Log each setup step with its timing to stderr.",
		"log-format":          "Format of sandbox's own lines on stderr: text, or json (one object per line: time, level, stage, elapsed_ms, msg).",
		"report":              "Write a JSON report of the run (identity, root, network, limits, fallbacks, step timings, exit cause) to FILE, or stdout with -.",
		"cap-add":             "Add a capability to root's bounding set inside (repeatable; CAP_NAME, NAME or ALL). Default: Docker's set.",
		"cap-drop":            "Drop a capability from root's bounding set inside (repeatable; CAP_NAME, NAME or ALL).",
		"landlock":            "Landlock: the command may write only the shared working directory, read-write binds, --tmpfs, /tmp, /dev/shm and your home; the rest of the root is read-only for it.",
		"preserve-fds":        "Pass file descriptors 3 .. 3+N-1 on to the command (default: none beyond stdio).",
		"seccomp":             "System-call filter: the built-in default, unconfined (none), or an OCI/Docker seccomp JSON profile.",
		"allow-nested-userns": "Let the command create user namespaces (the default filter refuses them) and mount in them.",
		"unmask-proc":         "Leave /proc's masked and read-only entries (kcore, keys, sys, …) visible, so that a nested sandbox or container can mount its own /proc (with --allow-nested-userns).",
		"memory":              "Memory limit (memory.max), e.g. 512M; swap is off unless --memory-swap. Sizes: bytes or K, M, G, T.",
		"memory-swap":         "Swap the command may use beyond --memory (memory.swap.max; max: no limit).",
		"cpus":                "CPU time in CPUs, e.g. 0.5 (cpu.max quota per 100 ms).",
		"cpu-weight":          "Relative CPU weight, 1 to 10000 (cpu.weight; default 100).",
		"pids":                "Most processes and threads at once (pids.max). Without it each user inside gets RLIMIT_NPROC 4096, which the command cannot raise; max: neither.",
		"io-weight":           "Relative I/O weight, 1 to 10000 (io.weight).",
		"io-max":              "I/O limits on a whole disk (io.max; DEV is /dev/NAME or MAJ:MIN; repeatable).",
		"limits":              "strict: a limit that cannot be applied stops the run (exit 125, with the fix); best-effort: run without it, with a warning.",
		"profile":             "Take defaults for these flags, and the command, from a TOML or YAML profile (see below).",
		"command":             "The command and its arguments (after --; default: the profile's command).",
	}
})

// withRunHelp puts runHelp into the model's run command, if it has one.
func withRunHelp(app *kong.Node) {
	var run *kong.Node
	for _, n := range app.Children {
		if n.Type == kong.CommandNode && n.Name == "run" {
			run = n
		}
	}
	if run == nil {
		return
	}
	def := cgroupdelegate.FormatSize(spec.DefaultEphemeralSize(spec.TotalRAM(), 0))
	set := func(v *kong.Value) {
		if h, ok := runHelp()[v.Name]; ok {
			v.Help = strings.ReplaceAll(h, "${ephemeral_default}", def)
		}
	}
	for _, f := range run.Flags {
		set(f.Value)
	}
	for _, p := range run.Positional {
		set(p)
	}
}
