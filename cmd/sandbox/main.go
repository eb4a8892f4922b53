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
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/internal/fds"
	"sandbox/internal/hugeheap"
	"sandbox/internal/wire"
	"sandbox/journal"
	"sandbox/netns/egress"
	"sandbox/parent"
	"sandbox/spec"

	"github.com/alecthomas/kong"
)

var version = "dev"

// initID is the SHA-256 of the embedded sandbox-init (scripts/build.sh):
// a holder of the same build shares its copy of init (parent.InitID).
var initID string

// netstackID is the SHA-256 of the embedded sandbox-netstack
// (scripts/build.sh): the holder shares a copy with runs of the same
// build only (spec.NetstackID).
var netstackID string

func main() {
	if run, ok := personality(); ok {
		os.Exit(run())
	}
	// Before the run's allocations: its heap's first 2 MiB as one page
	// fault, not hundreds, where faults are dear (internal/hugeheap). Only
	// for run: the other commands have made nearly all their allocations
	// by now (package initialisation), and the collapse cost `ps` and
	// `version` ~0.5 ms it did not repay; nor for the personalities
	// above: init gains too little for the memory, and the others are
	// brief helpers.
	if len(os.Args) > 1 && os.Args[1] == "run" {
		hugeheap.Back()
	}
	spec.NetstackELF, spec.NetstackID, parent.InitELF, parent.InitID = netstackELF, netstackID, initELF, initID
	status := runCLI(os.Args[1:])
	parent.StartDueHolder() // last: after the run's record and report
	os.Exit(status)
}

type runCmd struct {
	Name     string `placeholder:"NAME"`
	Detach   bool   `short:"d"`
	Map      string `enum:"auto,full,single" default:"auto"`
	UID      uint32 `name:"uid" default:"0"`
	GID      uint32 `name:"gid" default:"0"`
	Hostname string
	Net      string   `enum:"auto,pasta,slirp4netns,builtin,none,host" default:"auto"`
	Publish  []string `short:"p" placeholder:"[HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|udp]"`

	AllowHostLoopback bool
	AllowLinkLocal    bool
	AllowHost         []string `name:"allow-host" sep:"none" placeholder:"NAME[:PORT,…]"`
	AllowCIDR         []string `name:"allow-cidr" sep:"none" placeholder:"CIDR[:PORT,…]"`
	DenyHost          []string `name:"deny-host" sep:"none" placeholder:"NAME[:PORT,…]"`
	DNS               string   `name:"dns" placeholder:"IP"`
	Rootfs            string   `type:"path" placeholder:"DIR"`
	Image             string   `placeholder:"REF"`
	Pull              string   `enum:"missing,always,never" default:"missing"`
	Platform          string   `placeholder:"OS/ARCH[/VARIANT]"`
	InsecureRegistry  []string `name:"insecure-registry" placeholder:"HOST[:PORT]"`
	Layer             []string `type:"path" placeholder:"DIR"`
	Upper             string   `type:"path" placeholder:"DIR"`
	Overlay           string   `enum:"auto,kernel,fuse" default:"auto"`
	ReadOnly          bool
	Ephemeral         string   `enum:"memory,disk" default:"memory"`
	EphemeralSize     string   `name:"ephemeral-size" placeholder:"SIZE"`
	Cwd               string   `placeholder:"rw|ro|none"`
	Bind              []string `placeholder:"SRC[:DST][:ro]"`
	Tmpfs             []string `placeholder:"DST"`
	Chdir             string   `placeholder:"DIR"`
	Env               []string `short:"e" sep:"none" placeholder:"K=V"`
	Clearenv          bool
	TTY               string `name:"tty" enum:"auto,always,never" default:"auto"`
	Verbose           bool   `short:"v"`
	LogFormat         string `name:"log-format" enum:"text,json" default:"text"`
	Report            string `placeholder:"FILE|-"`

	CapAdd            []string `placeholder:"CAP"`
	CapDrop           []string `placeholder:"CAP"`
	Landlock          bool
	PreserveFds       int    `placeholder:"N"`
	Seccomp           string `placeholder:"default|unconfined|FILE" default:"default"`
	AllowNestedUserns bool   `name:"allow-nested-userns"`
	UnmaskProc        bool   `name:"unmask-proc"`

	Memory     string   `placeholder:"SIZE"`
	MemorySwap string   `name:"memory-swap" placeholder:"SIZE"`
	CPUs       string   `name:"cpus" placeholder:"N"`
	CPUWeight  string   `name:"cpu-weight" placeholder:"N"`
	Pids       string   `placeholder:"N|max"`
	IOWeight   string   `name:"io-weight" placeholder:"N"`
	IOMax      []string `name:"io-max" sep:"none" placeholder:"DEV:rbps=N,wbps=N,riops=N,wiops=N"`
	Limits     string   `enum:"strict,best-effort" default:"strict"`
	Profile    string   `placeholder:"FILE"`
	Command    []string `arg:"" optional:"" passthrough:"partial" name:"command"`
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
	// What the caller left open is not ours to hand on: without this the
	// programs started here (the detached supervisor, the network helper,
	// the holder, which outlive the call) would keep it, and a pipe the
	// caller waits on would stay open for as long as they run. Fds given
	// on purpose (--preserve-fds, stdio) are passed explicitly. Best
	// effort: it fails only where /proc is missing too.
	fds.CloseExecFrom(3)
	parent.KeepOwnerBits()
	if c, name, ok := fastParse(args); ok {
		if name == "version" {
			if _, err := fmt.Println("sandbox", version); err != nil {
				fmt.Fprintf(os.Stderr, "sandbox: %v\n", err) // as ps and --help say it
				return wire.StatusError
			}
			return 0
		}
		lg := journal.NewLogger(os.Stderr, journal.LogText, "sandbox", false, time.Now())
		status, _ := lifecycle(&c, name, lg)
		return status
	}
	if n := runFlagCount(args, "dns"); n > 1 {
		// Kong would keep the last one without a word; other runtimes
		// take several servers, which sandbox does not.
		journal.NewLogger(os.Stderr, journal.LogText, "sandbox", false, time.Now()).
			Fail(journal.Usagef("--dns given %d times: sandbox asks one DNS server (give --dns once)", n))
		return wire.StatusError
	}
	def := newDefaults(os.LookupEnv)
	if r, given, ok := fastRun(args, def); ok {
		return runRun(r, func(name string) bool { return given[name] }, def)
	}
	var c cli
	exitCode := -1
	grammar, one := grammarFor(&c, args)
	def.runless = !whole(grammar) && args[0] != "run"
	parser, err := kong.New(grammar, append(one,
		kong.Name("sandbox"),
		kong.Description("Run a command isolated in a rootless sandbox: user, mount, pid, uts, ipc and network namespaces, a copy-on-write view of the host, no root needed.\n\nExit status of run: the command's own; 128+N if it died of signal N; 125 if the sandbox failed; 126 not executable; 127 not found."),
		kong.UsageOnError(),
		kong.Exit(func(code int) { exitCode = code }),
		def.option(), helpOption(), newEmptyPath(), decimalNumbers(),
	)...)
	lg := journal.NewLogger(os.Stderr, journal.LogText, "sandbox", false, time.Now())
	if err != nil {
		lg.Fail(err)
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
		lg.Fail(err)
		return wire.StatusError
	}
	if err := emptyValue(ctx); err != nil {
		lg.Fail(def.explain(err))
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
	return runRun(c.Run, func(name string) bool { return flagGiven(ctx, name) }, def)
}

// runRun is `sandbox run` once its command line is read (by kong or
// fastRun): given tells which flags were set (on the command line, or by a
// profile or variable), def holds the profile's and variables' part.
func runRun(r runCmd, given func(string) bool, def *defaults) int {
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
	// Init starts while the rest is planned, once what starts it is
	// (parent.StartEarly); killed if the run stops before it takes it.
	var planned func(*spec.Spec)
	if !r.Detach && r.PreserveFds == 0 {
		planned = parent.StartEarly
		defer parent.DiscardEarly()
	}
	if err == nil {
		s, err = spec.Prepare(spec.Options{
			Args: cmd, Name: r.Name, Detach: r.Detach, Supervisor: supervisor, Map: r.Map, UID: r.UID, GID: r.GID,
			UIDGiven: given("uid"), GIDGiven: given("gid"), Hostname: r.Hostname, Net: r.Net,
			Publish: r.Publish, AllowHostLoopback: r.AllowHostLoopback, AllowLinkLocal: r.AllowLinkLocal,
			Egress: egress.Policy{AllowHost: r.AllowHost, AllowCIDR: r.AllowCIDR, DenyHost: r.DenyHost, DNS: r.DNS},
			Rootfs: r.Rootfs, Image: imageName, Layers: r.Layer, Upper: r.Upper, Overlay: r.Overlay, ReadOnly: r.ReadOnly, Cwd: r.Cwd,
			Ephemeral: r.Ephemeral, EphemeralSize: r.EphemeralSize,
			Binds: r.Bind, Tmpfs: r.Tmpfs, Chdir: r.Chdir, Env: r.Env, ClearEnv: r.Clearenv,
			TTY: r.TTY, Verbose: r.Verbose, Reported: r.Report != "", LogFormat: r.LogFormat,
			CapAdd: r.CapAdd, CapDrop: r.CapDrop, Landlock: r.Landlock, PreserveFDs: r.PreserveFds,
			Seccomp: r.Seccomp, NestedUserns: r.AllowNestedUserns, UnmaskProc: r.UnmaskProc,
			Limits: cgroupdelegate.Flags{Memory: r.Memory, MemorySwap: r.MemorySwap, CPUs: r.CPUs, CPUWeight: r.CPUWeight,
				Pids: r.Pids, IOWeight: r.IOWeight, IOMax: r.IOMax},
			LimitsMode: r.Limits, Planned: planned,
		})
	}
	if err != nil {
		parent.DiscardEarly() // before the error: its lines come first
	}
	// Opened once Prepare has checked --preserve-fds: the report's fd must
	// not be taken for one of those.
	report, rerr := journal.OpenReport(r.Report)
	lg := journal.NewLogger(os.Stderr, r.LogFormat, "sandbox", false, time.Now())
	if err != nil {
		lg.Fail(def.explain(err))
		if rerr == nil {
			rerr = report.Write(journal.PrepareFailed(cmd, err))
		}
	}
	if rerr != nil {
		lg.Fail(rerr)
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
			s.Log.Fail(werr)
		}
	}
	return status
}

// decimalNumbers makes every integer flag decimal (see decimal).
func decimalNumbers() kong.Option {
	return kong.OptionFunc(func(k *kong.Kong) error {
		for _, o := range []kong.Option{
			kong.TypeMapper(reflect.TypeFor[uint32](), decimal(32, false)),
			kong.TypeMapper(reflect.TypeFor[int](), decimal(strconv.IntSize, true)),
		} {
			if err := o.Apply(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// decimal reads an integer flag (--uid, --gid, --preserve-fds) in base 10
// only. Kong's own mapper reads base 0, where --uid 010 is 8 and 0x3e8 is
// 1000: an id typed with a leading zero must not silently become another.
func decimal(bits int, signed bool) kong.MapperFunc {
	return func(ctx *kong.DecodeContext, target reflect.Value) error {
		t, err := ctx.Scan.PopValue("number")
		if err != nil {
			return err
		}
		sv := fmt.Sprint(t.Value)
		digits := strings.TrimPrefix(sv, "-")
		if digits == "" || strings.Trim(digits, "0123456789") != "" || (len(digits) > 1 && digits[0] == '0') ||
			(!signed && digits != sv) {
			return fmt.Errorf("%q is not a decimal number (digits only, without a leading zero)", sv)
		}
		if signed {
			n, err := strconv.ParseInt(sv, 10, bits)
			if err != nil {
				return fmt.Errorf("%q is out of range", sv)
			}
			target.SetInt(n)
			return nil
		}
		n, err := strconv.ParseUint(sv, 10, bits)
		if err != nil {
			return fmt.Errorf("%q is out of range (at most %d)", sv, uint64(1)<<bits-1)
		}
		target.SetUint(n)
		return nil
	}
}
