package mounts

import (
	"fmt"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// opts is a mount's options, parsed.
type opts struct {
	flags   uintptr   // mount(2) flags asked on (bind, rec included)
	clear   uintptr   // flags asked off (rw, suid, ...)
	prop    []uintptr // propagation changes, in the order given
	rset    uint64    // mount_setattr attributes asked for recursively (rro, rnosuid, ...)
	rclr    uint64
	data    []string // what mount(2) does not know as a flag: the filesystem's data
	copyUp  bool     // tmpcopyup: a tmpfs starts with what was below it
	atime   bool     // an atime mode was asked for
	options []string
}

type flagOpt struct {
	clear bool
	flag  uintptr
	atime bool
}

var flagOpts = map[string]flagOpt{
	"ro":            {false, unix.MS_RDONLY, false},
	"rw":            {true, unix.MS_RDONLY, false},
	"nosuid":        {false, unix.MS_NOSUID, false},
	"suid":          {true, unix.MS_NOSUID, false},
	"nodev":         {false, unix.MS_NODEV, false},
	"dev":           {true, unix.MS_NODEV, false},
	"noexec":        {false, unix.MS_NOEXEC, false},
	"exec":          {true, unix.MS_NOEXEC, false},
	"sync":          {false, unix.MS_SYNCHRONOUS, false},
	"async":         {true, unix.MS_SYNCHRONOUS, false},
	"dirsync":       {false, unix.MS_DIRSYNC, false},
	"remount":       {false, unix.MS_REMOUNT, false},
	"mand":          {false, unix.MS_MANDLOCK, false},
	"nomand":        {true, unix.MS_MANDLOCK, false},
	"atime":         {true, unix.MS_NOATIME, true},
	"noatime":       {false, unix.MS_NOATIME, true},
	"diratime":      {true, unix.MS_NODIRATIME, false},
	"nodiratime":    {false, unix.MS_NODIRATIME, false},
	"relatime":      {false, unix.MS_RELATIME, true},
	"norelatime":    {true, unix.MS_RELATIME, true},
	"strictatime":   {false, unix.MS_STRICTATIME, true},
	"nostrictatime": {true, unix.MS_STRICTATIME, true},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW, false},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW, false},
	"bind":          {false, unix.MS_BIND, false},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC, false},
}

// propOpts are the propagation options (also rootfsPropagation's values).
var propOpts = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

type attrOpt struct {
	clear bool
	attr  uint64
}

// recOpts are the runtime spec's recursive options, applied to the mount
// and every mount below it with mount_setattr(AT_RECURSIVE).
var recOpts = map[string]attrOpt{
	"rro":          {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":          {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":      {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":        {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":       {false, unix.MOUNT_ATTR_NODEV},
	"rdev":         {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":      {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":        {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":  {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":    {true, unix.MOUNT_ATTR_NODIRATIME},
	"rnosymfollow": {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":   {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// recAtime are the recursive atime modes: one value of MOUNT_ATTR__ATIME.
var recAtime = map[string]uint64{
	"rrelatime":    unix.MOUNT_ATTR_RELATIME,
	"rnoatime":     unix.MOUNT_ATTR_NOATIME,
	"rstrictatime": unix.MOUNT_ATTR_STRICTATIME,
}

// Types are the mount types Setup knows ("bind" also by the options bind
// or rbind, whatever the type says).
var Types = map[string]bool{
	"bind": true, "proc": true, "sysfs": true, "tmpfs": true, "devpts": true,
	"mqueue": true, "cgroup": true, "cgroup2": true, "overlay": true,
}

func parseOptions(options []string) (*opts, error) {
	o := &opts{options: options}
	for _, opt := range options {
		if f, ok := flagOpts[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
				o.clear |= f.flag
			} else {
				o.flags |= f.flag
				o.clear &^= f.flag
			}
			if f.atime {
				o.atime = true
			}
			continue
		}
		if p, ok := propOpts[opt]; ok {
			o.prop = append(o.prop, p)
			continue
		}
		if a, ok := recOpts[opt]; ok {
			if a.clear {
				o.rclr |= a.attr
				o.rset &^= a.attr
			} else {
				o.rset |= a.attr
				o.rclr &^= a.attr
			}
			continue
		}
		if a, ok := recAtime[opt]; ok {
			o.rset = o.rset&^unix.MOUNT_ATTR__ATIME | a
			o.rclr |= unix.MOUNT_ATTR__ATIME
			continue
		}
		switch opt {
		case "idmap", "ridmap":
			return nil, fmt.Errorf("option %q: id-mapped mounts are not supported", opt)
		case "tmpcopyup":
			o.copyUp = true
			continue
		case "notmpcopyup": // crun's, sent by podman
			o.copyUp = false
			continue
		case "":
			return nil, fmt.Errorf("an empty option")
		}
		// Anything else is the filesystem's own (mode=755, size=64m, ...).
		o.data = append(o.data, opt)
	}
	return o, nil
}

func (o *opts) bind() bool { return o.flags&unix.MS_BIND != 0 }
func (o *opts) rec() bool  { return o.flags&unix.MS_REC != 0 }

// kind is how Setup makes mount m: "bind" or its filesystem type.
func kind(m *specs.Mount, o *opts) (string, error) {
	if o.bind() || m.Type == "bind" {
		return "bind", nil
	}
	switch m.Type {
	case "", "none":
		return "", fmt.Errorf("type: %q without the option bind or rbind", m.Type)
	}
	if !Types[m.Type] {
		return "", fmt.Errorf("type: %q is not supported (bind, proc, sysfs, tmpfs, devpts, mqueue, cgroup, cgroup2, overlay are)", m.Type)
	}
	return m.Type, nil
}

// checkPath refuses a path that is relative or climbs with "..": a
// destination is a path inside the container, said plainly.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty")
	}
	if !path.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("%q has a \"..\" component", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("%q has a NUL byte", p)
	}
	return nil
}
