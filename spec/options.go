package spec

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"sandbox/cgroupdelegate"
	"sandbox/confine"
	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/hostcheck"
	"sandbox/idmap"
	"sandbox/image"
	"sandbox/internal/hostdir"
	"sandbox/internal/kernel"
	"sandbox/netns"
	"sandbox/netns/driver"
	"sandbox/netns/egress"
	"sandbox/rootfs"
	"sandbox/seccomp"
	"sandbox/state"

	"sandbox/journal"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Options are the user's choices, as typed (flags of `sandbox run`).
type Options struct {
	Args   []string
	Name   string // "" = generated (the default hostname)
	Detach bool
	// Supervisor: this process is the background supervisor of the
	// detached sandbox of that name (the foreground claimed the name).
	Supervisor string
	Map        string
	UID, GID   uint32
	Hostname   string
	Net        string
	Publish    []string
	// AllowHostLoopback lets the sandbox reach the host's 127.0.0.1 through
	// the gateway; AllowLinkLocal lets it reach 169.254.0.0/16.
	AllowHostLoopback bool
	AllowLinkLocal    bool
	// Egress is the egress policy (--allow-host, --allow-cidr,
	// --deny-host) and --dns.
	Egress        egress.Policy
	Rootfs        string
	Image         string // an imported image: its layers, env, working dir, command
	Layers        []string
	Upper         string
	Overlay       string // --overlay: auto (or ""), kernel or fuse
	Ephemeral     string // --ephemeral: memory (or "") or disk
	EphemeralSize string // --ephemeral-size SIZE ("": the default)
	ReadOnly      bool
	Cwd           string
	Binds         []string
	Tmpfs         []string
	Chdir         string
	Env           []string
	ClearEnv      bool
	TTY           string
	Verbose       bool
	Reported      bool   // a report of the run is written (--report)
	LogFormat     string // --log-format: text (or "") or json
	// Confinement.
	CapAdd       []string
	CapDrop      []string
	Landlock     bool
	PreserveFDs  int
	Seccomp      string // "default", "unconfined" or a profile file
	NestedUserns bool
	UnmaskProc   bool // --unmask-proc
	// Resource limits (cgroup v2) and --limits=strict|best-effort.
	Limits     cgroupdelegate.Flags
	LimitsMode string
	// UIDGiven, GIDGiven: --uid, --gid were set (command line, profile or
	// variable), so they win over an image's User.
	UIDGiven, GIDGiven bool
	// Planned, when set, is called with the spec as soon as what starts
	// init is planned (the terminal, the id maps, the network, the
	// limits, the capabilities, the inherited fds), before the root is: the caller may start
	// init meanwhile (parent.StartEarly). Prepare itself changes nothing.
	Planned func(*Spec)
	// imageLayers: --image's layer directories (set by useImage).
	imageLayers []string
}

// Spec is a validated, fully resolved run.
type Spec struct {
	Name     string // the sandbox's name (its state directory)
	Detached bool   // a detached run's supervisor: the record outlives it
	Args     []string
	Env      []string
	Maps     idmap.Prepared
	Hostname string
	NetNS    bool           // a network namespace of its own
	NetMode  netns.Mode     // the driver chosen (or none, host)
	DNS      string         // --dns: the upstream DNS server ("": the host's)
	Net      *driver.Config // the driver's configuration; nil for none and host
	Plan     *rootfs.Plan
	Upper    string // persistent upper directory, or ""
	Rootfs   string // the root's bottom layer, or "" for the host's directories
	TTY      string
	Verbose  bool
	Warnings []string
	Start    time.Time // when Prepare began, for verbose timings
	// Confinement of the payload.
	Caps        []int // the bounding set
	LastCap     int   // highest capability number of this kernel
	Landlock    *confine.LandlockRules
	PreserveFDs int
	Seccomp     *seccomp.Program // nil: unconfined
	// SeccompFile: the filter is a user's profile (--seccomp FILE), which
	// may stop calls init itself makes (initWatch bounds init's start).
	SeccompFile bool
	Resources   Resources // cgroup limits
	// Log prints and records the run's lines; Report is filled in as it
	// goes, and written where Reported (--report): only then does init
	// send its share of it (~70 steps to format, encode and decode).
	Log      *journal.Logger
	Report   *journal.Report
	Reported bool

	Detach    bool          // --detach: run in the background
	State     *state.Handle // claimed before Run (a detached supervisor's)
	OnStarted func()        // called once the payload runs
	// Output, when set, is init's stdout and stderr instead of this
	// process's (a detached sandbox's log relay); Run closes it once init
	// has it, so that the reader sees the end when the sandbox's last
	// process does.
	Output *os.File

	// EphemeralBase: --ephemeral=disk, where Run makes the run's directory.
	EphemeralBase string
	// HostnameAsked: Hostname comes from --hostname.
	HostnameAsked bool
	// ImageLayers are --image's layer directories, which the parent locks
	// (shared) before the run uses them.
	ImageLayers []string
	// HostMounts is the mount table as planning read it, for the cgroup
	// decision (one read and parse of /proc/self/mountinfo, not two).
	HostMounts []*mountinfo.Info
}

// Prepare validates opts against the host and plans the whole sandbox.
// It makes no changes to the host.
func Prepare(opts Options) (*Spec, error) {
	imgEnv, err := useImage(&opts)
	if err != nil {
		return nil, err
	}
	if len(opts.Args) == 0 {
		return nil, journal.Usagef("no command given (usage: sandbox run [flags] -- CMD [ARG...])")
	}
	if release, err := kernel.Release(); err == nil {
		if err := hostcheck.KernelSupported(release); err != nil {
			return nil, err
		}
	}
	s := &Spec{Args: opts.Args, Verbose: opts.Verbose, Reported: opts.Reported, Start: time.Now(), ImageLayers: opts.imageLayers}
	if err := journal.ValidLogFormat(opts.LogFormat); err != nil {
		return nil, err
	}
	s.Log = journal.NewLogger(os.Stderr, opts.LogFormat, "sandbox", opts.Verbose, s.Start)
	switch opts.TTY {
	case "", "auto", "always", "never":
		s.TTY = opts.TTY
	default:
		return nil, journal.Usagef("--tty=%s: use auto, always or never", opts.TTY)
	}
	if opts.Detach {
		// A detached sandbox has no terminal and no caller's fds to keep.
		if opts.TTY == "always" {
			return nil, journal.Usagef("--tty=always conflicts with --detach (a detached sandbox's output goes to its log; use sandbox exec --tty=always to get a terminal in it)")
		}
		if opts.PreserveFDs > 0 {
			return nil, journal.Usagef("--preserve-fds conflicts with --detach (the caller's descriptors are not kept open in the background)")
		}
		s.TTY = "never"
		s.Detach = true
		if opts.Supervisor != "" {
			// The background supervisor: the foreground claimed the name.
			opts.Name, s.Detached = opts.Supervisor, true
		}
	}
	mode, err := idmap.ParseMode(orDefault(opts.Map, "auto"))
	if err != nil {
		return nil, journal.Usagef("--map: %v", err)
	}
	me, err := CurrentUser()
	if err != nil {
		return nil, err
	}
	s.Maps, err = idmap.DefaultSource().Prepare(mode, me.Name, me.uid, me.gid, opts.UID, opts.GID)
	if err != nil {
		return nil, &journal.UsageError{Msg: err.Error()}
	}
	if s.Maps.Warning != "" {
		s.Warnings = append(s.Warnings, s.Maps.Warning)
		s.Log.Fallback("identity", "--map=single", s.Maps.Warning)
	}
	if err := planNetwork(opts, s); err != nil {
		return nil, err
	}
	if err := prepareResources(opts, s); err != nil {
		return nil, err
	}
	if err := initStart(opts, s); err != nil {
		return nil, err
	}
	// What starts init is planned: the caller may start it while the rest
	// is (Options.Planned).
	if opts.Planned != nil {
		opts.Planned(s)
	}
	if err := naming(opts, s); err != nil {
		return nil, err
	}
	hostEnv := os.Environ()
	if imgEnv != nil {
		hostEnv = imgEnv
	}
	if s.Env, err = buildEnv(hostEnv, opts.Env, opts.ClearEnv, me.home); err != nil {
		return nil, err
	}
	cfg, warn, err := rootConfig(opts, me, s)
	if err != nil {
		return nil, err
	}
	if warn != "" {
		s.Warnings = append(s.Warnings, warn)
	}
	s.Warnings = append(s.Warnings, othersCanChange(cfg, opts.imageLayers, int(me.uid))...)
	s.Upper, s.Rootfs = cfg.Upper, cfg.Rootfs
	seccompDone, err := confinement(opts, cfg, s)
	if err != nil {
		return nil, err
	}
	// The filter compiles (~2 ms in a fresh process) while the rest is
	// planned; its error still comes first, as when it was compiled here.
	fail := func(err error) (*Spec, error) {
		if serr := seccompDone(); serr != nil {
			return nil, serr
		}
		return nil, err
	}
	if cfg.Ephemeral, err = ephemeralConfig(opts, s); err != nil {
		return fail(err)
	}
	infos, mounts, err := hostMounts()
	if err != nil {
		return fail(err)
	}
	s.HostMounts = infos
	if s.Plan, err = rootfs.Build(cfg, osHost{}, mounts); err != nil {
		return fail(err)
	}
	if err := seccompDone(); err != nil {
		return nil, err
	}
	s.Report = newReport(opts, cfg, s)
	return s, nil
}

// useImage resolves --image into the flags it stands for: its layers
// become --rootfs (the bottom one) and --layer (below the user's own), its
// working directory the default --chdir, its command the default command,
// its User (names from its own /etc/passwd and /etc/group) the default
// --uid and --gid.
// It returns the image's environment (plus the caller's TERM) as the base
// environment, nil without --image. Nothing is locked here: the parent
// locks the layers (Spec.ImageLayers) before it uses them.
func useImage(opts *Options) ([]string, error) {
	if opts.Image == "" {
		return nil, nil
	}
	if opts.Rootfs != "" {
		return nil, journal.Usagef("--image conflicts with --rootfs (the image is the root; add directories on top with --layer)")
	}
	store, err := image.DefaultStore()
	if err != nil {
		return nil, journal.Usagef("--image: %v", err)
	}
	img, dirs, err := store.Resolve(opts.Image)
	if err != nil {
		return nil, journal.Usagef("--image: %v", err)
	}
	home, err := imageUser(opts, img, dirs)
	if err != nil {
		return nil, err
	}
	opts.imageLayers = dirs
	opts.Rootfs, opts.Layers = dirs[0], append(dirs[1:len(dirs):len(dirs)], opts.Layers...)
	if opts.Chdir == "" && img.Config.WorkingDir != "" {
		// A relative WorkingDir (an image config hand-made, or an odd
		// builder's) is taken from /, as docker does; --chdir must be
		// absolute, and the error would name a flag never given.
		opts.Chdir = path.Join("/", img.Config.WorkingDir)
	}
	if len(opts.Args) == 0 {
		opts.Args = append(append([]string{}, img.Config.Entrypoint...), img.Config.Cmd...)
	}
	env := append([]string{"HOME=" + home}, img.Config.Env...)
	if t, ok := os.LookupEnv("TERM"); ok {
		env = append(env, "TERM="+t)
	}
	return env, nil
}

// noID is (uid_t)-1, "no id" to the kernel.
const noID = 1<<32 - 1

// imageUser applies the image's User (USER[:GROUP]) as the default --uid
// and --gid, as docker does: an explicit --uid replaces its USER part (the
// group then comes from the image's /etc/passwd entry of that uid), an
// explicit --gid its GROUP part. It returns the user's home directory for
// HOME: its /etc/passwd entry's, else /root for uid 0 and / for others.
func imageUser(opts *Options, img image.Image, dirs []string) (string, error) {
	// (uid_t)-1, given as a number, would be looked up as a name and
	// blamed on the image's User.
	if opts.UIDGiven && opts.UID == noID || opts.GIDGiven && opts.GID == noID {
		return "", journal.Usagef("--uid/--gid %d: the kernel reserves it as \"no id\"", uint32(noID))
	}
	user, group, _ := strings.Cut(img.Config.User, ":")
	if opts.UIDGiven {
		user, group = strconv.FormatUint(uint64(opts.UID), 10), ""
	}
	if opts.GIDGiven {
		group = strconv.FormatUint(uint64(opts.GID), 10)
	}
	u, err := image.LookupUser(dirs, user, group)
	if err != nil {
		return "", journal.Usagef("--image %s: its User %q: %v (run as ids instead: --uid N --gid N)", img.Name, img.Config.User, err)
	}
	opts.UID, opts.GID = u.UID, u.GID
	switch {
	case u.Home != "":
		return u.Home, nil
	case u.UID == 0:
		return "/root", nil
	}
	return "/", nil
}

// naming picks the sandbox's name and hostname: each defaults to the
// other (a name that is no valid hostname leaves the hostname generated),
// and both to sandbox-<6 random hex digits>.
func naming(opts Options, s *Spec) error {
	s.Name, s.Hostname, s.HostnameAsked = opts.Name, opts.Hostname, opts.Hostname != ""
	if s.Name != "" {
		if err := state.ValidName(s.Name); err != nil {
			return journal.Usagef("--name: %v", err)
		}
	}
	if s.Hostname != "" {
		if err := validHostname(s.Hostname); err != nil {
			return err
		}
	} else if s.Name != "" && validHostname(s.Name) == nil {
		s.Hostname = s.Name
	}
	if s.Name != "" && s.Hostname != "" {
		return nil
	}
	// getrandom(2) directly: crypto/rand's package init costs ~3 ms at
	// every start of the binary (parent and init alike).
	b := make([]byte, 3)
	if _, err := unix.Getrandom(b, 0); err != nil {
		return fmt.Errorf("generating a name: %w", err)
	}
	gen := "sandbox-" + hex.EncodeToString(b)
	if s.Hostname == "" {
		s.Hostname = gen
	}
	if s.Name == "" {
		s.Name = s.Hostname
		if state.ValidName(s.Name) != nil {
			s.Name = gen
		}
	}
	return nil
}

// initStart plans the rest of what starts init (see Options.Planned): the
// kernel's last capability, which init keeps all of until it confines the
// payload, and the caller's fds it is given (--preserve-fds).
func initStart(opts Options, s *Spec) error {
	var err error
	if s.LastCap, err = confine.LastCap(); err != nil {
		return err
	}
	if opts.PreserveFDs < 0 || opts.PreserveFDs > 1000 {
		return journal.Usagef("--preserve-fds %d: must be between 0 and 1000", opts.PreserveFDs)
	}
	for fd := 3; fd < 3+opts.PreserveFDs; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return journal.Usagef("--preserve-fds %d: file descriptor %d is not open", opts.PreserveFDs, fd)
		}
	}
	s.PreserveFDs = opts.PreserveFDs
	return nil
}

// seccompArch is the GOARCH filters are compiled for ("": this binary's);
// tests set it.
var seccompArch string

// confinement plans capabilities (of s.LastCap's, set by initStart),
// Landlock and seccomp.
// The seccomp filter is compiled in the background: the returned function
// waits for it, sets s.Seccomp and s.SeccompFile and returns its error
// (the same on every call); nothing may read those two before.
func confinement(opts Options, cfg rootfs.Config, s *Spec) (func() error, error) {
	var err error
	if s.Caps, err = confine.CapSet(opts.CapAdd, opts.CapDrop, s.LastCap); err != nil {
		return nil, &journal.UsageError{Msg: err.Error()}
	}
	var capNames []string
	for _, c := range s.Caps {
		capNames = append(capNames, confine.CapName(c))
	}
	// Compiled before anything starts, so that a bad profile stops the
	// run; the filter's capability conditions see the bounding set.
	type compiled struct {
		prog *seccomp.Program
		err  error
	}
	ch := make(chan compiled, 1)
	spec, arch := orDefault(opts.Seccomp, "default"), seccompArch
	go func() {
		prog, err := seccomp.Load(spec, seccomp.Options{Caps: capNames, Arch: arch},
			seccomp.DefaultOptions{AllowNestedUserns: opts.NestedUserns})
		ch <- compiled{prog, err}
	}()
	var done bool
	var serr error
	seccompDone := func() error {
		if done {
			return serr
		}
		done = true
		c := <-ch
		var unsupported *seccomp.UnsupportedError
		switch {
		case errors.As(c.err, &unsupported):
			serr = journal.Usagef("--seccomp: %v; --seccomp=unconfined runs without one (%s)", c.err, seccomp.UnconfinedCost)
		case c.err != nil:
			serr = journal.Usagef("--seccomp: %v", c.err)
		default:
			s.Seccomp = c.prog
			s.SeccompFile = c.prog != nil && spec != seccomp.SpecDefault
		}
		return serr
	}
	if opts.Landlock {
		r := &confine.LandlockRules{
			WritableDirs:  []string{"/tmp", "/dev/shm", "/dev/pts", "/dev/mqueue"},
			WritableFiles: []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/random", "/dev/urandom"},
		}
		if cfg.Home != "" {
			r.WritableDirs = append(r.WritableDirs, cfg.Home)
		}
		if cfg.Cwd != "" && cfg.CwdMode == rootfs.CwdRW {
			r.WritableDirs = append(r.WritableDirs, cfg.Cwd)
		}
		for _, b := range cfg.Binds {
			if !b.ReadOnly {
				r.WritableDirs = append(r.WritableDirs, b.Target)
			}
		}
		r.WritableDirs = append(r.WritableDirs, cfg.Tmpfs...)
		s.Landlock = r
	}
	return seccompDone, nil
}

type identity struct {
	Name, home string
	uid, gid   uint32
}

// CurrentUser is the caller's identity. A uid the user database does not
// know (a minimal container image without /etc/passwd) is no reason to
// stop: the name only finds subordinate ids and words messages, and the
// home is then $HOME when that is a directory the caller owns.
func CurrentUser() (identity, error) {
	id := identity{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	u, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		if h := os.Getenv("HOME"); filepath.IsAbs(h) {
			var st unix.Stat_t
			if unix.Stat(h, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Uid == id.uid {
				id.home = filepath.Clean(h)
			}
		}
		return id, nil
	}
	id.Name, id.home = u.Username, u.HomeDir
	return id, nil
}

func validHostname(h string) error {
	if len(h) > 64 {
		return journal.Usagef("--hostname %q: longer than 64 characters", h)
	}
	for _, c := range h {
		if !(c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return journal.Usagef("--hostname %q: only letters, digits, '-' and '.' are allowed", h)
		}
	}
	// RFC 1123: dot-separated labels, none empty, none starting or ending
	// with '-' (".", "a..b", "-x", "x-" are no names a resolver takes).
	for _, l := range strings.Split(h, ".") {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return journal.Usagef("--hostname %q: each dot-separated label must start and end with a letter or digit", h)
		}
	}
	return nil
}

// hostDir resolves a user-given host path: absolute, symlinks resolved,
// must exist.
func hostDir(flag, p string, wantDir bool) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", journal.Usagef("%s %s: %v", flag, p, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", journal.Usagef("%s %s: no such file or directory", flag, p)
		}
		return "", journal.Usagef("%s %s: %v", flag, p, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", journal.Usagef("%s %s: %v", flag, p, err)
	}
	if wantDir && !fi.IsDir() {
		return "", journal.Usagef("%s %s: not a directory", flag, p)
	}
	return real, nil
}

// futureDir is hostDir for a directory that may not exist yet: its
// nearest existing ancestor must be a directory; the rest of the path is
// kept as given.
func futureDir(flag, abs string) (string, error) {
	var missing []string
	p := filepath.Clean(abs)
	for {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", journal.Usagef("%s %s: %v", flag, abs, err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", journal.Usagef("%s %s: no such file or directory", flag, abs)
		}
		missing = append([]string{filepath.Base(p)}, missing...)
		p = parent
	}
	real, err := hostDir(flag, p, true)
	if err != nil {
		return "", err
	}
	return filepath.Join(append([]string{real}, missing...)...), nil
}

// insidePath checks a path inside the sandbox: absolute, no "..".
func insidePath(flag, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", journal.Usagef("%s %s: the path inside the sandbox must be absolute", flag, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", journal.Usagef("%s %s: '..' is not allowed in a path inside the sandbox", flag, p)
		}
	}
	c := filepath.Clean(p)
	if c == "/" {
		return "", journal.Usagef("%s %s: cannot mount over /", flag, p)
	}
	return c, nil
}

// ParseBind parses SRC[:DST][:ro|:rw].
func ParseBind(spec string) (rootfs.Bind, error) {
	parts := strings.Split(spec, ":")
	b := rootfs.Bind{}
	if n := len(parts); n > 1 && (parts[n-1] == "ro" || parts[n-1] == "rw") {
		b.ReadOnly = parts[n-1] == "ro"
		parts = parts[:n-1]
	}
	switch len(parts) {
	case 1:
		b.Source = parts[0]
	case 2:
		b.Source, b.Target = parts[0], parts[1]
	default:
		return b, journal.Usagef("--bind %s: expected SRC[:DST][:ro]", spec)
	}
	if b.Source == "" {
		return b, journal.Usagef("--bind %s: empty source", spec)
	}
	src, err := hostDir("--bind", b.Source, false)
	if err != nil {
		return b, err
	}
	if src == "/" {
		// A recursive bind would take the sandbox's own root, assembled
		// below /, along; one without its submounts the kernel refuses in
		// a user namespace, as it would show what /proc, /sys or /dev cover.
		return b, journal.Usagef("--bind %s: the host's root cannot be bound into a sandbox; bind the directories you need (--bind /srv:/host/srv)", spec)
	}
	b.Source = src
	if b.Target == "" {
		// Without a DST the source's own absolute path is used inside.
		abs, _ := filepath.Abs(parts[0])
		b.Target = abs
	}
	if b.Target, err = insidePath("--bind", b.Target); err != nil {
		return b, err
	}
	return b, nil
}

func rootConfig(opts Options, me identity, s *Spec) (rootfs.Config, string, error) {
	cfg := rootfs.Config{ReadOnly: opts.ReadOnly, DevptsGID: -1}
	var err error
	// The host's root as a root or a layer would show all of it, homes
	// and other users' files included, which the host mode hides (as
	// --bind / is refused).
	hostRoot := func(flag, arg string) error {
		return journal.Usagef("%s %s: the host's root cannot be a sandbox's root or layer; run without --rootfs for the host's directories (homes hidden, /tmp fresh), or --bind what you need", flag, arg)
	}
	if opts.Rootfs != "" {
		if cfg.Rootfs, err = hostDir("--rootfs", opts.Rootfs, true); err != nil {
			return cfg, "", err
		}
		if cfg.Rootfs == "/" {
			return cfg, "", hostRoot("--rootfs", opts.Rootfs)
		}
	}
	for _, l := range opts.Layers {
		d, err := hostDir("--layer", l, true)
		if err != nil {
			return cfg, "", err
		}
		if d == "/" {
			return cfg, "", hostRoot("--layer", l)
		}
		cfg.Layers = append(cfg.Layers, d)
	}
	if opts.Upper != "" {
		if opts.ReadOnly {
			return cfg, "", journal.Usagef("--upper and --read-only exclude each other")
		}
		abs, err := filepath.Abs(opts.Upper)
		if err != nil {
			return cfg, "", journal.Usagef("--upper %s: %v", opts.Upper, err)
		}
		// A missing upper is made by the parent (Prepare changes nothing):
		// here it is resolved through its nearest existing ancestor.
		if cfg.Upper, err = futureDir("--upper", abs); err != nil {
			return cfg, "", err
		}
	}
	// A nested sandbox or container mounts its own /proc, which the kernel
	// allows only where /proc has no masks (see docs/cli.md).
	cfg.UnmaskProc = opts.UnmaskProc
	if cfg.Overlay, err = overlayConfig(opts.Overlay, cfg.Upper); err != nil {
		return cfg, "", err
	}
	for _, b := range opts.Binds {
		pb, err := ParseBind(b)
		if err != nil {
			return cfg, "", err
		}
		cfg.Binds = append(cfg.Binds, pb)
	}
	for _, t := range opts.Tmpfs {
		if dst, o, ok := strings.Cut(t, ":"); ok {
			// Docker's --tmpfs DST:OPTIONS: taken as a path, it mounted
			// at /scratch:noexec, silently, without the options.
			return cfg, "", journal.Usagef("--tmpfs %s: no options after ':' (a tmpfs here is always nosuid,nodev, sized by --ephemeral-size); give the path alone: --tmpfs %s, not %q", t, dst, o)
		}
		p, err := insidePath("--tmpfs", t)
		if err != nil {
			return cfg, "", err
		}
		cfg.Tmpfs = append(cfg.Tmpfs, p)
	}
	// Two mounts at one path: the one mounted last hides the other, which
	// the user asked for too.
	at := map[string]string{}
	for _, b := range cfg.Binds {
		flag := "--bind " + b.Source + ":" + b.Target
		if prev, ok := at[b.Target]; ok {
			return cfg, "", journal.Usagef("%s and %s are both at %s: one would hide the other", prev, flag, b.Target)
		}
		at[b.Target] = flag
	}
	for _, t := range cfg.Tmpfs {
		if prev, ok := at[t]; ok {
			return cfg, "", journal.Usagef("%s and --tmpfs %s are both at %s: one would hide the other", prev, t, t)
		}
		at[t] = "--tmpfs " + t
	}
	switch opts.Chdir {
	case "":
	case "/": // valid here, unlike as a mount destination
		cfg.Chdir = "/"
	default:
		if cfg.Chdir, err = insidePath("--chdir", opts.Chdir); err != nil {
			return cfg, "", err
		}
	}
	var homes []string
	if cfg.Rootfs == "" {
		homes = homeDirs(me.home)
		cfg.Hidden = outermost(homes)
		cfg.Home = me.home
		if fi, err := os.Stat(me.home); err != nil || !fi.IsDir() || me.home == "/" {
			cfg.Home = ""
		}
	}
	if uids := s.Maps.UIDs; uids != nil {
		cfg.HostUID = func(uid uint32) bool {
			for _, m := range uids {
				if uid >= m.Outside && uid-m.Outside < m.Count {
					return true
				}
			}
			return false
		}
	}
	if s.Maps.GIDs != nil {
		for _, m := range s.Maps.GIDs {
			if m.Inside <= 5 && 5 < m.Inside+m.Count {
				cfg.DevptsGID = 5 // the tty group, where it is mapped
			}
		}
	}
	var warn string
	mode := rootfs.CwdMode(orDefault(opts.Cwd, "rw"))
	switch mode {
	case rootfs.CwdRW, rootfs.CwdRO, rootfs.CwdNone:
	default:
		return cfg, "", journal.Usagef("--cwd=%s: use rw, ro or none", opts.Cwd)
	}
	cfg.CwdMode = mode
	if mode != rootfs.CwdNone {
		wd, err := os.Getwd()
		if errors.Is(err, fs.ErrNotExist) {
			return cfg, "", journal.Usagef("the working directory no longer exists (it was removed): change to one that does, or pass --cwd=none")
		}
		if err != nil {
			return cfg, "", fmt.Errorf("finding the working directory: %w", err)
		}
		if wd, err = filepath.EvalSymlinks(wd); err != nil {
			return cfg, "", fmt.Errorf("resolving the working directory: %w", err)
		}
		if why := unsafeCwd(wd, homes, os.Getenv("XDG_RUNTIME_DIR")); why != "" {
			if opts.Cwd != "" {
				return cfg, "", journal.Usagef("--cwd=%s: the working directory %s %s; run from a project directory or use --bind", opts.Cwd, wd, why)
			}
			warn = fmt.Sprintf("the working directory %s is not shared: it %s (share a project directory with --bind, or run from one)", wd, why)
			s.Log.Fallback("cwd", "--cwd=none", wd+" "+why)
			cfg.CwdMode = rootfs.CwdNone
		} else {
			cfg.Cwd = wd
		}
	}
	if cfg.Masked, err = stateMasks(cfg, state.BasePaths()); err != nil {
		return cfg, "", err
	}
	cfg.Hosts, cfg.Resolv = networkFiles(s)
	return cfg, warn, nil
}

// othersCanChange warns of a --upper, --rootfs or --layer that another
// user could change (it, or a directory above it, is theirs, or writable by
// others without the sticky bit): what they put there runs in the sandbox,
// which shares the caller's working directory. A warning, not a refusal:
// a team's shared root may be so on purpose. The image store's own
// directories are the caller's.
func othersCanChange(cfg rootfs.Config, image []string, uid int) []string {
	type dir struct{ flag, path string }
	var dirs []dir
	if cfg.Upper != "" {
		dirs = append(dirs, dir{"--upper", cfg.Upper})
	}
	for _, d := range append([]string{cfg.Rootfs}, cfg.Layers...) {
		if d != "" && !slices.Contains(image, d) {
			flag := "--layer"
			if d == cfg.Rootfs {
				flag = "--rootfs"
			}
			dirs = append(dirs, dir{flag, d})
		}
	}
	var out []string
	for _, d := range dirs {
		if r, err := hostdir.Check(d.path, uid, true); err == nil && r != nil {
			out = append(out, fmt.Sprintf("%s %s: %s: another user could change what runs in the sandbox", d.flag, d.path, r))
		}
	}
	return out
}

// stateMasks are the paths inside where the sandbox would see a base of
// bases (the first is this run's), the state of the caller's sandboxes
// (their records, logs and exec sockets, the holder's socket): each is
// masked. A sandbox that reached another's exec socket could put its own
// in its place and be handed the next `sandbox exec`'s stdio, environment
// and arguments. Every share is followed: the host's directories at their
// own paths (host mode), the working directory, a --bind at any path, a
// --rootfs or a --layer holding it. A share or an --upper from inside the
// state is refused (a sandbox would write there; `sandbox ps` would take
// its directories for records).
func stateMasks(cfg rootfs.Config, bases []string) ([]string, error) {
	var out []string
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	type share struct{ what, src, dst string }
	var shares []share
	if cfg.Cwd != "" && cfg.CwdMode != rootfs.CwdNone {
		shares = append(shares, share{"the working directory " + cfg.Cwd, cfg.Cwd, cfg.Cwd})
	}
	for _, b := range cfg.Binds {
		shares = append(shares, share{"--bind " + b.Source, b.Source, b.Target})
	}
	if cfg.Rootfs != "" {
		shares = append(shares, share{"--rootfs " + cfg.Rootfs, cfg.Rootfs, "/"})
	}
	for _, l := range cfg.Layers {
		shares = append(shares, share{"--layer " + l, l, "/"})
	}
	for i, base := range bases {
		if real, err := filepath.EvalSymlinks(base); err == nil {
			base = real
		}
		if cfg.Rootfs == "" && i == 0 {
			add(base)
		}
		if cfg.Upper != "" {
			if _, ok := below(base, cfg.Upper); ok {
				return nil, journal.Usagef("--upper %s is inside %s, sandbox's own state (the records and exec sockets of your sandboxes), which no sandbox may write to", cfg.Upper, base)
			}
		}
		for _, sh := range shares {
			if rel, ok := below(sh.src, base); ok {
				add(path.Join(sh.dst, rel))
			} else if _, ok := below(base, sh.src); ok {
				return nil, journal.Usagef("%s is inside %s, sandbox's own state (the records and exec sockets of your sandboxes), which no sandbox may see", sh.what, base)
			}
		}
	}
	return out, nil
}

// below says whether p is dir or below it, and p relative to dir.
func below(dir, p string) (string, bool) {
	if p == dir {
		return ".", true
	}
	rel, ok := strings.CutPrefix(p, strings.TrimSuffix(dir, "/")+"/")
	return rel, ok
}

// unsafeCwd says why sharing wd would defeat the sandbox, or "": it is a
// home directory or holds one (a directory below a home is a project, and
// is shared), or a directory where services keep their sockets (/tmp
// itself, /run, the session's runtime directory rt): through tmux's
// socket in /tmp a sandbox ran commands on the host.
func unsafeCwd(wd string, homes []string, rt string) string {
	if wd == "/" {
		return "is the host's root"
	}
	if wd == "/tmp" || wd == "/var/tmp" {
		return "is the shared temporary directory, where other programs keep their sockets (tmux's, ssh-agent's, X11's)"
	}
	if rt = filepath.Clean(rt); filepath.IsAbs(rt) && rt != "/" {
		if _, in := below(rt, wd); in || strings.HasPrefix(rt, wd+"/") {
			return "is or holds your session's runtime directory (XDG_RUNTIME_DIR " + rt + "), whose sockets lead out of the sandbox"
		}
	}
	for _, h := range homes {
		if h == wd || strings.HasPrefix(h, wd+"/") {
			return "is or contains a hidden home directory (" + h + ")"
		}
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/run"} {
		if wd == d || strings.HasPrefix(wd, d+"/") {
			return "is inside " + d
		}
	}
	return ""
}

// homeDirs lists the home directories (real paths): /home, /root, the
// caller's, and those of other login users (uid >= 1000).
func homeDirs(myHome string) []string {
	cands := []string{"/home", "/root", myHome}
	if b, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) < 7 {
				continue
			}
			uid, err := strconv.Atoi(f[2])
			if err != nil || uid < 1000 || uid == 65534 {
				continue
			}
			cands = append(cands, f[5])
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range cands {
		if c == "" || !filepath.IsAbs(c) {
			continue
		}
		c = filepath.Clean(c)
		if real, err := filepath.EvalSymlinks(c); err == nil {
			c = real
		} else {
			continue // absent: nothing to hide
		}
		if c == "/" || seen[c] || systemDir(c) {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out
}

// outermost drops the directories inside another of dirs: covering the
// outer one hides them already.
func outermost(out []string) []string {
	var res []string
	for _, c := range out {
		nested := false
		for _, o := range out {
			if o != c && strings.HasPrefix(c, o+"/") {
				nested = true
			}
		}
		if !nested {
			res = append(res, c)
		}
	}
	return res
}

// systemDir is a directory that must never be covered wholesale, even if
// some account names it as its home.
func systemDir(p string) bool {
	switch p {
	case "/usr", "/etc", "/var", "/bin", "/sbin", "/lib", "/lib64", "/opt", "/srv", "/tmp", "/proc", "/sys", "/dev", "/run", "/nonexistent":
		return true
	}
	return false
}

func hostsFile(hostname string, hostNet bool) string {
	var b strings.Builder
	if hostNet {
		if h, err := os.ReadFile("/etc/hosts"); err == nil {
			b.Write(h)
			if len(h) > 0 && h[len(h)-1] != '\n' {
				b.WriteByte('\n')
			}
		}
	} else {
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	}
	fmt.Fprintf(&b, "127.0.1.1\t%s\n", hostname)
	return b.String()
}

func hostMounts() ([]*mountinfo.Info, []rootfs.Mount, error) {
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	out := make([]rootfs.Mount, 0, len(infos))
	for _, m := range infos {
		out = append(out, rootfs.Mount{Point: m.Mountpoint, FSType: m.FSType})
	}
	return infos, out, nil
}

// osHost is the planner's view of the real host.
type osHost struct{}

func (osHost) ReadDir(d string) ([]os.DirEntry, error) { return os.ReadDir(d) }

// Empty reads d's entries with getdents(2) until the first that is not
// "." or "..": open(2), not os.Open, which would offer the directory to
// the Go runtime's poller (refused) on every run's every top-level
// directory.
func (osHost) Empty(d string) (bool, error) {
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: d, Err: err}
	}
	defer unix.Close(fd)
	var buf [4096]byte
	for {
		n, err := unix.Getdents(fd, buf[:])
		if err != nil {
			return false, &fs.PathError{Op: "readdir", Path: d, Err: err}
		}
		if n <= 0 {
			return true, nil
		}
		if _, count, _ := unix.ParseDirent(buf[:n], 1, nil); count > 0 {
			return false, nil
		}
	}
}

func (osHost) Stat(n string) (os.FileInfo, error) { return os.Stat(n) }

func (osHost) Readlink(n string) (string, error) { return os.Readlink(n) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// overlayConfig resolves --overlay: the driver that made a persistent upper
// wins over auto and must match an explicit choice; fuse needs
// fuse-overlayfs and /dev/fuse now, auto only for its fallback.
func overlayConfig(flag, upper string) (rootfs.Overlay, error) {
	drv, err := fuseoverlay.ParseDriver(flag)
	if err != nil {
		return rootfs.Overlay{}, journal.Usagef("%v", err)
	}
	if upper != "" {
		if drv, err = fuseoverlay.CheckMarker(upper, drv); err != nil {
			return rootfs.Overlay{}, journal.Usagef("%v", err)
		}
	}
	ov := rootfs.Overlay{Driver: drv}
	if drv == fuseoverlay.Kernel {
		return ov, nil
	}
	bin, err := fuseoverlay.FuseReady()
	if err != nil {
		if drv == fuseoverlay.Fuse {
			return ov, journal.Usagef("--overlay=fuse: %v", err)
		}
		ov.FuseProblem = err.Error()
		return ov, nil
	}
	ov.FuseBin = bin
	return ov, nil
}

// Detaching reports whether Run hands the sandbox to a background
// supervisor (which writes the report, when it ends).
func (s *Spec) Detaching() bool { return s.Detach && !s.Detached }

// ChildNet is init's part of the network setup, or nil.
func (s *Spec) ChildNet() *netns.Child {
	if s.Net == nil {
		return nil
	}
	return s.Net.ChildPart()
}
