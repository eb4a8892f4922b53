// Package config reads a bundle's config.json with the runtime-spec's own
// types, bounded, and checks what sandbox-oci will do with it before
// anything is created; each error names the field.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MaxSize is the largest config.json read; real ones are a few KiB, and a
// bigger one is refused before it is decoded.
const MaxSize = 4 << 20

// Bounds on the spec's arrays: generous for any real container, small
// enough that a hostile document cannot make the runtime work for long.
const (
	MaxMounts   = 4096
	MaxEnv      = 65536
	MaxArgs     = 65536
	MaxRlimits  = 64
	MaxDevices  = 4096
	MaxPaths    = 4096 // maskedPaths, readonlyPaths
	MaxSysctl   = 4096
	MaxHooks    = 256 // per kind
	MaxSyscalls = 65536
	// MaxMapLines is the kernel's limit on lines in uid_map/gid_map.
	MaxMapLines = 340
)

// Load reads bundle/config.json and checks it (Check).
func Load(bundle string) (*specs.Spec, error) {
	s, err := Read(bundle)
	if err != nil {
		return nil, err
	}
	if err := Check(s, bundle); err != nil {
		return nil, err
	}
	AbsBindSources(s, bundle)
	return s, nil
}

// AbsBindSources makes relative bind mount sources absolute: the runtime
// spec takes them relative to the bundle, and the container's init does
// not run there.
func AbsBindSources(s *specs.Spec, bundle string) {
	if abs, err := filepath.Abs(bundle); err == nil {
		bundle = abs
	}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Source == "" || filepath.IsAbs(m.Source) || !isBind(m) {
			continue
		}
		m.Source = filepath.Join(bundle, m.Source)
	}
}

func isBind(m *specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// Read reads and decodes bundle/config.json without checking it. Unknown
// fields are allowed, as runc allows them.
func Read(bundle string) (*specs.Spec, error) {
	f, err := os.Open(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxSize {
		return nil, fmt.Errorf("config.json: %d bytes, more than the %d allowed", fi.Size(), MaxSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("config.json: more than the %d bytes allowed", MaxSize)
	}
	return Decode(data)
}

// maxArray bounds every array of the document before it is decoded. The
// bounds above are checked on the decoded spec, but decoding makes each
// entry a struct (a mount's 120 bytes from the 3 of "{},"): a MaxSize
// document of mounts cost 800 MB and seconds before being refused.
const maxArray = 65536 // the largest bound above (MaxArgs, MaxEnv, MaxSyscalls)

// maxDepth is encoding/json's own limit on nesting, which it refuses.
const maxDepth = 10000

// Decode decodes a config.json document.
func Decode(data []byte) (*specs.Spec, error) {
	if err := checkArrays(data); err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("%s: %s where %s was expected", te.Field, te.Value, te.Type)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) && se.Offset >= int64(len(data)) {
			return nil, fmt.Errorf("config.json: truncated document (%d bytes)", len(data))
		}
		if errors.As(err, &se) {
			return nil, fmt.Errorf("config.json: byte %d: %v", se.Offset, err)
		}
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return &s, nil
}

// level is one array or object open around checkArrays's place.
type level struct {
	array bool
	n     int    // array: the commas seen, so the index of the entry
	some  bool   // array: an entry has begun
	key   []byte // object: the key of the member being read
}

// checkArrays refuses an array of more than maxArray entries, naming it
// (process.env, linux.seccomp.syscalls[3].names). It only counts, without
// allocating per entry; a malformed document is json.Unmarshal's to refuse.
func checkArrays(data []byte) error {
	var stack []level
	var str []byte // the last string read: a key when ':' follows
	for i := 0; i < len(data); i++ {
		c := data[i]
		if len(stack) > 0 {
			if top := &stack[len(stack)-1]; top.array && c != ']' && c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				top.some = true
			}
		}
		switch c {
		case '"':
			j := i + 1
			for ; j < len(data) && data[j] != '"'; j++ {
				if data[j] == '\\' {
					j++
				}
			}
			str = data[i+1 : min(j, len(data))]
			i = j
		case ':':
			if len(stack) > 0 {
				stack[len(stack)-1].key = str
			}
		case ',':
			if len(stack) > 0 && stack[len(stack)-1].array {
				stack[len(stack)-1].n++
			}
		case '[', '{':
			if len(stack) >= maxDepth {
				return nil // json.Unmarshal refuses it
			}
			stack = append(stack, level{array: c == '['})
		case ']', '}':
			if len(stack) == 0 {
				return nil
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.array && top.some && top.n+1 > maxArray {
				return bound(arrayPath(stack), top.n+1, maxArray)
			}
		}
	}
	return nil
}

// arrayPath names the array inside the levels given as Check's errors do
// (mounts[3].options); a key that is no plain name is quoted.
func arrayPath(stack []level) string {
	var b strings.Builder
	for _, l := range stack {
		if l.array {
			if b.Len() == 0 {
				b.WriteString("config.json")
			}
			fmt.Fprintf(&b, "[%d]", l.n)
			continue
		}
		k := string(l.key)
		if k == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			k = strconv.Quote(k)
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	if b.Len() == 0 {
		return "config.json"
	}
	return b.String()
}

// RootPath is the absolute host path of the container's root filesystem:
// root.path, relative to the bundle unless absolute.
func RootPath(s *specs.Spec, bundle string) string {
	if s.Root == nil {
		return ""
	}
	if filepath.IsAbs(s.Root.Path) {
		return filepath.Clean(s.Root.Path)
	}
	if abs, err := filepath.Abs(bundle); err == nil {
		bundle = abs
	}
	return filepath.Join(bundle, s.Root.Path)
}

// Check validates s for create: the version, the root, the process, the
// namespaces and id mappings, and the bounds on every array. Errors name
// the field (`linux.namespaces[2].type: unknown namespace type "foo"`).
func Check(s *specs.Spec, bundle string) error {
	if err := checkVersion(s.Version); err != nil {
		return err
	}
	if err := checkRoot(s, bundle); err != nil {
		return err
	}
	if err := checkProcess(s.Process); err != nil {
		return err
	}
	if err := checkBounds(s); err != nil {
		return err
	}
	return checkLinux(s)
}

func checkVersion(v string) error {
	if v == "" {
		return errors.New("ociVersion: missing")
	}
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err != nil || n != 1 {
		return fmt.Errorf("ociVersion: %q is not a 1.x version of the runtime spec", v)
	}
	return nil
}

func checkRoot(s *specs.Spec, bundle string) error {
	if s.Root == nil || s.Root.Path == "" {
		return errors.New("root.path: missing")
	}
	if !filepath.IsAbs(s.Root.Path) {
		// Relative means inside the bundle; climbing out of it is refused.
		if c := filepath.Clean(s.Root.Path); c == ".." || strings.HasPrefix(c, "../") {
			return fmt.Errorf("root.path: %q leaves the bundle; give an absolute path", s.Root.Path)
		}
	}
	// The path is quoted in the errors: it is the config's, and a newline
	// in it would make the error two lines.
	p := RootPath(s, bundle)
	fi, err := os.Stat(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("root.path: %q: %w", p, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("root.path: %q is not a directory", p)
	}
	// The host's own root as a container's: its devices and /dev links
	// would be made in the host's /dev.
	if r, err := filepath.EvalSymlinks(p); err == nil && r == "/" {
		return fmt.Errorf("root.path: %q is the host's /", p)
	}
	return nil
}

func checkProcess(p *specs.Process) error {
	if p == nil {
		// Optional until start (runtime-spec): create makes the
		// container, start is the error.
		return nil
	}
	if len(p.Args) == 0 && p.CommandLine == "" {
		return errors.New("process.args: empty")
	}
	if p.CommandLine != "" {
		return errors.New("process.commandLine: Windows only")
	}
	if len(p.Args) > MaxArgs {
		return bound("process.args", len(p.Args), MaxArgs)
	}
	if p.Args[0] == "" {
		return errors.New("process.args[0]: empty")
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd: %q is not an absolute path", p.Cwd)
	}
	if len(p.Env) > MaxEnv {
		return bound("process.env", len(p.Env), MaxEnv)
	}
	for i, e := range p.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("process.env[%d]: %q is not NAME=value", i, e)
		}
	}
	if len(p.Rlimits) > MaxRlimits {
		return bound("process.rlimits", len(p.Rlimits), MaxRlimits)
	}
	return nil
}

func bound(field string, n, max int) error {
	return fmt.Errorf("%s: %d entries, more than the %d allowed", field, n, max)
}

func checkBounds(s *specs.Spec) error {
	if len(s.Mounts) > MaxMounts {
		return bound("mounts", len(s.Mounts), MaxMounts)
	}
	if h := s.Hooks; h != nil {
		kinds := []struct {
			name  string
			hooks []specs.Hook
		}{
			{"hooks.prestart", h.Prestart}, //nolint:staticcheck // still sent by engines
			{"hooks.createRuntime", h.CreateRuntime},
			{"hooks.createContainer", h.CreateContainer},
			{"hooks.startContainer", h.StartContainer},
			{"hooks.poststart", h.Poststart},
			{"hooks.poststop", h.Poststop},
		}
		for _, k := range kinds {
			if len(k.hooks) > MaxHooks {
				return bound(k.name, len(k.hooks), MaxHooks)
			}
			for i, hk := range k.hooks {
				if !filepath.IsAbs(hk.Path) {
					return fmt.Errorf("%s[%d].path: %q is not an absolute path", k.name, i, hk.Path)
				}
				if len(hk.Args) > MaxArgs {
					return bound(fmt.Sprintf("%s[%d].args", k.name, i), len(hk.Args), MaxArgs)
				}
				if len(hk.Env) > MaxEnv {
					return bound(fmt.Sprintf("%s[%d].env", k.name, i), len(hk.Env), MaxEnv)
				}
			}
		}
	}
	l := s.Linux
	if l == nil {
		return nil
	}
	switch {
	case len(l.Devices) > MaxDevices:
		return bound("linux.devices", len(l.Devices), MaxDevices)
	case len(l.MaskedPaths) > MaxPaths:
		return bound("linux.maskedPaths", len(l.MaskedPaths), MaxPaths)
	case len(l.ReadonlyPaths) > MaxPaths:
		return bound("linux.readonlyPaths", len(l.ReadonlyPaths), MaxPaths)
	case len(l.Sysctl) > MaxSysctl:
		return bound("linux.sysctl", len(l.Sysctl), MaxSysctl)
	case len(l.UIDMappings) > MaxMapLines:
		return bound("linux.uidMappings", len(l.UIDMappings), MaxMapLines)
	case len(l.GIDMappings) > MaxMapLines:
		return bound("linux.gidMappings", len(l.GIDMappings), MaxMapLines)
	}
	if sc := l.Seccomp; sc != nil {
		if len(sc.Syscalls) > MaxSyscalls {
			return bound("linux.seccomp.syscalls", len(sc.Syscalls), MaxSyscalls)
		}
		n := 0
		for _, c := range sc.Syscalls {
			n += len(c.Names)
		}
		if n > MaxSyscalls {
			return fmt.Errorf("linux.seccomp.syscalls: %d names in all, more than the %d allowed", n, MaxSyscalls)
		}
	}
	if r := l.Resources; r != nil && len(r.Devices) > MaxDevices {
		return bound("linux.resources.devices", len(r.Devices), MaxDevices)
	}
	return nil
}

// Namespaces are the namespace types of the runtime spec.
var Namespaces = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

func checkLinux(s *specs.Spec) error {
	l := s.Linux
	if l == nil {
		l = &specs.Linux{}
	}
	seen := map[specs.LinuxNamespaceType]int{}
	newUser, pathUser := false, false
	uts := false
	for i, ns := range l.Namespaces {
		f := fmt.Sprintf("linux.namespaces[%d]", i)
		if !Namespaces[ns.Type] {
			return fmt.Errorf("%s.type: unknown namespace type %q", f, ns.Type)
		}
		if j, dup := seen[ns.Type]; dup {
			return fmt.Errorf("%s.type: %q repeats linux.namespaces[%d]", f, ns.Type, j)
		}
		seen[ns.Type] = i
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			return fmt.Errorf("%s.path: %q is not an absolute path", f, ns.Path)
		}
		switch ns.Type {
		case specs.UserNamespace:
			newUser, pathUser = ns.Path == "", ns.Path != ""
		case specs.UTSNamespace:
			uts = true
		}
	}
	if err := checkMappings("linux.uidMappings", l.UIDMappings); err != nil {
		return err
	}
	if err := checkMappings("linux.gidMappings", l.GIDMappings); err != nil {
		return err
	}
	hasMaps := len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0
	switch {
	case hasMaps && !newUser && !pathUser:
		return errors.New("linux.uidMappings: id mappings without a user namespace in linux.namespaces")
	case hasMaps && pathUser:
		return errors.New("linux.uidMappings: id mappings with the path of an existing user namespace (its maps are set already)")
	case newUser && len(l.UIDMappings) == 0:
		return errors.New("linux.uidMappings: a new user namespace needs uid mappings")
	case newUser && len(l.GIDMappings) == 0:
		return errors.New("linux.gidMappings: a new user namespace needs gid mappings")
	}
	if s.Hostname != "" && !uts {
		return errors.New("hostname: set without a UTS namespace in linux.namespaces")
	}
	if s.Domainname != "" && !uts {
		return errors.New("domainname: set without a UTS namespace in linux.namespaces")
	}
	return nil
}

// checkMappings refuses empty ranges, ranges past 2^32, and ranges that
// overlap inside (container ids) or outside (host ids): the kernel refuses
// them too, but only after the container's init is half made.
func checkMappings(field string, maps []specs.LinuxIDMapping) error {
	for i, m := range maps {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m.Size == 0 {
			return fmt.Errorf("%s.size: 0", f)
		}
		if uint64(m.ContainerID)+uint64(m.Size) > 1<<32 {
			return fmt.Errorf("%s: containerID %d + size %d is past 2^32", f, m.ContainerID, m.Size)
		}
		if uint64(m.HostID)+uint64(m.Size) > 1<<32 {
			return fmt.Errorf("%s: hostID %d + size %d is past 2^32", f, m.HostID, m.Size)
		}
		for j := 0; j < i; j++ {
			o := maps[j]
			if overlap(m.ContainerID, m.Size, o.ContainerID, o.Size) {
				return fmt.Errorf("%s: overlaps [%d] (container ids)", f, j)
			}
			if overlap(m.HostID, m.Size, o.HostID, o.Size) {
				return fmt.Errorf("%s: overlaps [%d] (host ids)", f, j)
			}
		}
	}
	return nil
}

func overlap(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}
