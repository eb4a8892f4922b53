package main

import (
	"fmt"
	"strings"
	"sync"

	"github.com/alecthomas/kong"
)

// helpOption prints commands one line each (a command with subcommands,
// `image`, as one line too: `sandbox image --help` lists them) and, after a command's flags,
// the sections a man page would have (helpSections).
func helpOption() kong.Option {
	return kong.OptionFunc(func(k *kong.Kong) error {
		for _, o := range []kong.Option{
			kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
			kong.Help(printHelp),
			// The whole model (help of the program, completion) has
			// run's help from the start; one command's gets it in
			// printHelp, only when it is printed.
			kong.PostBuild(func(k *kong.Kong) error {
				if len(k.Model.Children) > 1 {
					withRunHelp(k.Model.Node)
				}
				return nil
			}),
		} {
			if err := o.Apply(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func printHelp(options kong.HelpOptions, ctx *kong.Context) error {
	withRunHelp(ctx.Model.Node)
	if err := kong.DefaultHelpPrinter(options, ctx); err != nil {
		return err
	}
	path := ""
	if n := ctx.Selected(); n != nil {
		path = n.Path()
	}
	if s := helpSections()[path]; s != "" && !options.Summary {
		_, err := fmt.Fprint(ctx.Stdout, "\n", strings.TrimLeft(s, "\n"))
		return err
	}
	return nil
}

// Help is the detail of `sandbox check --help`.
func (checkCmd) Help() string {
	return "Each link of the chain run needs (kernel, user namespaces, subordinate ids, id-map helpers, " +
		"pivot_root, devices, seccomp, Landlock, cgroups, TIOCSTI), OK, WARN or FAIL with the fix, then a live probe " +
		"(sandbox run -- true). Exit status 1 if a FAIL stops run's defaults, else 0."
}

// helpSections follow the flags in `sandbox [COMMAND] --help`, by command
// path ("" for the program). Made on first use, as runHelp.
var helpSections = sync.OnceValue(func() map[string]string {
	return map[string]string{
		"": `
Each command's --help tells the rest (sandbox run --help: flags, exit status,
profiles, environment variables, state). Shell completion: sandbox completion
bash|zsh|fish.
`,
		"run": `
Exit status:
  N       the command exited with N
  128+N   the command died of signal N (137, with "killed by the OOM killer",
          when --memory did it)
  125     the sandbox itself failed: one line "sandbox: ..." says what, and
          how to fix it (bad flags, profile or SANDBOX_* values included)
  126     the command exists but is not executable (or the kernel refused to
          exec it: "argument list too long")
  127     the command was not found

Ephemeral storage:
  The root's changes (without --upper), /, /tmp, /run, /dev, /dev/shm, the
  homes and --tmpfs share one budget, gone at exit: by default one tmpfs of a
  quarter of RAM, at most 8G and at most half of --memory (--ephemeral-size);
  full, writes fail with ENOSPC. --ephemeral=disk keeps them in
  $XDG_CACHE_HOME/sandbox/ephemeral/NAME-XXXXXXXX (~/.cache without it),
  bounded by that disk, removed at exit (after a SIGKILL: by the next run or
  sandbox ps). --report says which, and the size (root.ephemeral).

Egress policy (--allow-host, --allow-cidr, --deny-host):
  One allow rule blocks everything else (TCP, UDP, ICMP), enforced by the
  builtin network outside the sandbox (--net=auto picks it; other --net
  values are refused). Names no rule allows do not resolve (answered
  NXDOMAIN, never asked upstream); connections go only to addresses allowed
  names resolved to, or an --allow-cidr covers, on allowed ports; a TLS SNI
  or HTTP Host must name an allowed name. The host's loopback and own
  addresses and 169.254.0.0/16 stay blocked unless --allow-host-loopback /
  --allow-link-local. Blocked attempts: one line at exit ("sandbox: blocked
  N attempts: ..."), each one with -v, all in --report (network.blocked).

Profiles (--profile FILE, or $SANDBOX_PROFILE; --profile= for none):
  A TOML (.toml) or YAML (.yaml, .yml) file (a regular file of at most
  1 MiB) setting any of the flags above by their long names, and "command",
  the command to run when none is given:

    # ci.toml                          # ci.yaml
    memory = "512M"                    memory: 512M
    cpus = "0.5"                       cpus: 0.5
    net = "none"                       net: none
    read-only = true                   read-only: true
    bind = ["/src:/src:ro"]            bind: ["/src:/src:ro"]
    env = ["CI=1"]                     env: [CI=1]
    command = ["make", "test"]         command: [make, test]

  Switches take true or false, repeatable flags a list, the others a string
  or a number. Relative paths are relative to the working directory, as on
  the command line. An unknown key, a wrong type or a bad value stops the run
  (status 125) naming the file and the key.

Environment:
  SANDBOX_<FLAG> sets the default of any flag above (shown beside it): upper
  case, '-' as '_', e.g. SANDBOX_MEMORY=512M, SANDBOX_NET=none,
  SANDBOX_READ_ONLY=true. A repeatable flag's values are separated by ','
  ("\," is a literal comma), except SANDBOX_IO_MAX's by ';' (its values hold
  commas). An empty variable counts as unset. A bad value stops the run
  (status 125) naming the variable, even where the command line overrides it.
  SANDBOX_DEFAULT_REGISTRY=HOST[:PORT] is where a short --image name goes
  (default docker.io, with library/ before a one-component name). Other
  SANDBOX_* variables are ignored; the command inherits all of them.

Precedence:
  The command line, then the profile, then SANDBOX_* variables, then the
  defaults above. A repeatable flag given at one level replaces the lists of
  the levels below; --read-only=false (any switch =false) overrides a true.

State:
  $XDG_RUNTIME_DIR/sandbox/NAME/ (without XDG_RUNTIME_DIR: /tmp/sandbox-UID/
  NAME/, mode 0700), removed when a foreground run ends; a detached run's
  stays, with its exit status and log, until "sandbox rm NAME" or a new run
  of that name.
`,
	}
})
