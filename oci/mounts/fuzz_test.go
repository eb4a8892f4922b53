package mounts

import (
	"path"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// oneLine fails unless err is one line starting with prefix.
func oneLine(t *testing.T, err error, prefix string) {
	t.Helper()
	if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || !strings.HasPrefix(msg, prefix) {
		t.Fatalf("error %q: more than one line, or not starting with %q", msg, prefix)
	}
}

// lastOf is the last of options that is a key of m.
func lastOf[V any](options []string, m map[string]V) (string, bool) {
	for _, o := range slices.Backward(options) {
		if _, ok := m[o]; ok {
			return o, true
		}
	}
	return "", false
}

// FuzzMountOptions feeds a mount's destination, type, source and options
// (comma-separated) to parseOptions, attrs and kind, which turn config.json
// strings into mount(2) and mount_setattr(2) arguments, and to Check.
// Properties: nothing panics; an error is one line naming the field; an
// option the runtime knows never reaches the filesystem as data, and one
// it does not always does, in order; the last of contradicting options
// wins and no flag is both asked on and off; mount(2) flags never hold a
// propagation or move flag (which would turn the mount into another
// operation); mount_setattr gets one atime mode; and a mount, masked,
// read-only or device path Check accepts is absolute, without "..", NUL,
// so that it stays inside the container's root.
func FuzzMountOptions(f *testing.F) {
	for _, s := range []struct{ dest, typ, src, opts string }{
		// sandbox-oci spec --rootless's mounts.
		{"/proc", "proc", "proc", ""},
		{"/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"},
		{"/dev/pts", "devpts", "devpts", "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620"},
		{"/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"},
		{"/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"},
		{"/sys", "none", "/sys", "rbind,nosuid,noexec,nodev,ro"},
		{"/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro"},
		// What engines send, and contradictions.
		{"/etc/hosts", "bind", "/etc/hosts", "rprivate,rro"},
		{"/run", "tmpfs", "tmpfs", "tmpcopyup,nosuid"},
		{"/v", "bind", "vol", "rbind,ro,nosuid,rw,mode=755,size=1m,rslave,rnoexec,rnoatime,tmpcopyup,noatime"},
		{"/v", "tmpfs", "", "tmpcopyup,notmpcopyup,ro,rw,ro,suid,nosuid,dev,exec,noexec,sync,async,dirsync,mand,nomand"},
		{"/v", "overlay", "overlay", "lowerdir=/a:/b,upperdir=/c,workdir=/d,rro,rrw,rnosuid,rsuid,rnodev,rdev,rexec,rnoexec"},
		{"/v", "tmpfs", "", "atime,noatime,relatime,norelatime,strictatime,nostrictatime,diratime,nodiratime"},
		{"/v", "tmpfs", "", "rrelatime,rnoatime,rstrictatime,rnodiratime,rdiratime,rnosymfollow,rsymfollow,nosymfollow,symfollow"},
		{"/v", "bind", "/x", "private,shared,slave,unbindable,rprivate,rshared,rslave,runbindable"},
		{"/v", "tmpfs", "", "remount,ro"},
		{"/v", "none", "/x", "bind"},
		{"/v", "none", "/x", "ro"},
		{"/v", "", "", ""},
		{"/v", "ext4", "/dev/sda", "ro"},
		{"/v", "BIND", "/x", "RBIND,RO"},
		{"/v", "bind", "", "rbind"},
		{"/v", "tmpfs", "", "tmpcopyup"},
		{"/v", "bind", "/x", "tmpcopyup"},
		{"/v", "bind", "/x", "idmap"},
		{"/v", "bind", "/x", "ro,ridmap"},
		{"/v", "tmpfs", "", "ro,,nosuid"},
		{"/v", "tmpfs", "", ","},
		{"/v", "tmpfs", "", "mode=755\nuid=0,size=1m\x00,\u00fc=1"},
		// Destinations.
		{"/", "tmpfs", "", ""},
		{"", "tmpfs", "", ""},
		{"rel", "tmpfs", "", ""},
		{"/a/../b", "tmpfs", "", ""},
		{"/a/..", "tmpfs", "", ""},
		{"/..", "tmpfs", "", ""},
		{"/...", "tmpfs", "", ""},
		{"//a//./b/", "tmpfs", "", ""},
		{"/a\x00b", "tmpfs", "", ""},
		{"/a\nb", "tmpfs", "", ""},
		{"/\u0448\u043c/\u2028", "tmpfs", "", ""},
		{"/dev/" + strings.Repeat("a/", 2000), "tmpfs", "", strings.Repeat("ro,", 2000)},
	} {
		f.Add(s.dest, s.typ, s.src, s.opts)
	}
	// Every flag a known option may set: nothing else reaches mount(2).
	var known uintptr
	for _, o := range flagOpts {
		known |= o.flag
	}
	f.Fuzz(func(t *testing.T, dest, typ, src, optString string) {
		options := strings.Split(optString, ",")
		if optString == "" {
			options = nil
		}
		o, err := parseOptions(options)
		bad := slices.IndexFunc(options, func(s string) bool { return s == "" || s == "idmap" || s == "ridmap" })
		if (err != nil) != (bad >= 0) {
			t.Fatalf("options %q: error %v", options, err)
		}
		if err != nil {
			if o != nil {
				t.Fatal("options and an error")
			}
			prefix := "option "
			if options[bad] == "" {
				prefix = "an empty option"
			}
			oneLine(t, err, prefix)
		} else {
			checkOptions(t, options, o, known)
		}

		// Check on a spec with this mount, and with dest as every other
		// path of the container it checks.
		m := specs.Mount{Destination: dest, Type: typ, Source: src, Options: options}
		if err := Check(&specs.Spec{Mounts: []specs.Mount{m}}, "/rootfs"); err != nil {
			oneLine(t, err, "mounts[0].")
		} else {
			if !inside(dest) {
				t.Fatalf("destination %q accepted", dest)
			}
			k, err := kind(&m, o)
			if err != nil || k == "bind" && src == "" || o.copyUp && k != "tmpfs" {
				t.Fatalf("%q mount of %q with %q accepted: kind %q, %v", typ, src, options, k, err)
			}
			if k != "bind" && (o.bind() || typ == "bind" || !Types[k]) {
				t.Fatalf("type %q with %q made as %q", typ, options, k)
			}
		}
		for _, l := range []*specs.Linux{
			{MaskedPaths: []string{dest}},
			{ReadonlyPaths: []string{dest}},
			{Devices: []specs.LinuxDevice{{Path: dest, Type: "c"}}},
		} {
			if err := Check(&specs.Spec{Linux: l}, "/rootfs"); err != nil {
				oneLine(t, err, "linux.")
			} else if !inside(dest) || len(l.Devices) > 0 && path.Clean(dest) == "/" {
				t.Fatalf("path %q accepted in %+v", dest, l)
			}
		}
		if err := Check(&specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{{Path: "/dev/x", Type: typ}}}}, "/rootfs"); err != nil {
			oneLine(t, err, "linux.devices[0].type: ")
		} else if !slices.Contains([]string{"c", "u", "b", "p"}, typ) {
			t.Fatalf("device type %q accepted", typ)
		}
		if err := Check(&specs.Spec{Linux: &specs.Linux{RootfsPropagation: typ}}, "/rootfs"); err != nil {
			oneLine(t, err, "linux.rootfsPropagation: ")
		} else if _, ok := propOpts[typ]; !ok && typ != "" {
			t.Fatalf("rootfsPropagation %q accepted", typ)
		}
	})
}

// inside is a path that stays inside the root however it is resolved in
// it: absolute, no ".." component, no NUL.
func inside(p string) bool {
	return path.IsAbs(p) && !strings.ContainsRune(p, 0) && !slices.Contains(strings.Split(p, "/"), "..")
}

// checkOptions checks parsed options against the options read one by one.
func checkOptions(t *testing.T, options []string, o *opts, known uintptr) {
	t.Helper()
	if o.flags&o.clear != 0 || o.flags&^known != 0 || o.clear&^known != 0 {
		t.Fatalf("%q: flags %#x, cleared %#x", options, o.flags, o.clear)
	}
	if o.flags&(unix.MS_SHARED|unix.MS_PRIVATE|unix.MS_SLAVE|unix.MS_UNBINDABLE|unix.MS_MOVE) != 0 {
		t.Fatalf("%q: mount(2) flags %#x change propagation or move", options, o.flags)
	}
	// Each flag: as the last option about it says.
	for bit := uintptr(1); bit != 0 && bit <= known; bit <<= 1 {
		if known&bit == 0 || bit == unix.MS_BIND || bit == unix.MS_REC {
			continue
		}
		var last string
		for _, opt := range options {
			if f, ok := flagOpts[opt]; ok && f.flag&bit != 0 {
				last = opt
			}
		}
		on, off := o.flags&bit != 0, o.clear&bit != 0
		if last == "" && (on || off) || last != "" && (on == flagOpts[last].clear || off != flagOpts[last].clear) {
			t.Fatalf("%q: flag %#x on %v, off %v, but the last option about it is %q", options, bit, on, off, last)
		}
	}
	if o.bind() != (slices.Contains(options, "bind") || slices.Contains(options, "rbind")) || o.rec() != slices.Contains(options, "rbind") {
		t.Fatalf("%q: bind %v, rec %v", options, o.bind(), o.rec())
	}
	atime := slices.ContainsFunc(options, func(s string) bool { return flagOpts[s].atime })
	if o.atime != atime {
		t.Fatalf("%q: atime %v", options, o.atime)
	}

	// Propagation, in order; recursive attributes, the last one winning.
	var prop []uintptr
	var data []string
	for _, opt := range options {
		_, isFlag := flagOpts[opt]
		_, isRec := recOpts[opt]
		_, isRecAtime := recAtime[opt]
		if p, ok := propOpts[opt]; ok {
			prop = append(prop, p)
		} else if !isFlag && !isRec && !isRecAtime && opt != "tmpcopyup" && opt != "notmpcopyup" {
			data = append(data, opt)
		}
	}
	if !slices.Equal(o.prop, prop) || !slices.Equal(o.data, data) {
		t.Fatalf("%q: propagation %v, data %q", options, o.prop, o.data)
	}
	for _, a := range recOpts {
		var last string
		for _, opt := range options {
			if r, ok := recOpts[opt]; ok && r.attr == a.attr {
				last = opt
			}
		}
		set, clr := o.rset&a.attr != 0, o.rclr&a.attr != 0
		if last == "" && (set || clr) || last != "" && (set == recOpts[last].clear || clr != recOpts[last].clear) {
			t.Fatalf("%q: attribute %#x set %v, cleared %v, the last option about it %q", options, a.attr, set, clr, last)
		}
	}
	mode, ok := lastOf(options, recAtime)
	if ok && (o.rset&unix.MOUNT_ATTR__ATIME != recAtime[mode] || o.rclr&unix.MOUNT_ATTR__ATIME != unix.MOUNT_ATTR__ATIME) ||
		!ok && (o.rset|o.rclr)&unix.MOUNT_ATTR__ATIME != 0 {
		t.Fatalf("%q: recursive atime set %#x, cleared %#x", options, o.rset, o.rclr)
	}
	copyUp, _ := lastOf(options, map[string]bool{"tmpcopyup": true, "notmpcopyup": true})
	if o.copyUp != (copyUp == "tmpcopyup") {
		t.Fatalf("%q: tmpcopyup %v", options, o.copyUp)
	}

	// mount_setattr: what was asked on and off, one atime mode.
	set, clr := attrs(o.flags, o.clear, o.atime)
	if set&clr&^unix.MOUNT_ATTR__ATIME != 0 {
		t.Fatalf("%q: attributes %#x both set and cleared", options, set&clr)
	}
	switch mode := set & unix.MOUNT_ATTR__ATIME; {
	case !o.atime && (mode != 0 || clr&unix.MOUNT_ATTR__ATIME != 0),
		o.atime && clr&unix.MOUNT_ATTR__ATIME != unix.MOUNT_ATTR__ATIME,
		mode != unix.MOUNT_ATTR_RELATIME && mode != unix.MOUNT_ATTR_NOATIME && mode != unix.MOUNT_ATTR_STRICTATIME:
		t.Fatalf("%q: atime set %#x, cleared %#x", options, set, clr)
	}
	if o.flags&unix.MS_RDONLY != 0 != (set&unix.MOUNT_ATTR_RDONLY != 0) || o.clear&unix.MS_RDONLY != 0 != (clr&unix.MOUNT_ATTR_RDONLY != 0) {
		t.Fatalf("%q: read-only lost: set %#x, cleared %#x", options, set, clr)
	}
	_ = describeAttrs(set, clr)
}
