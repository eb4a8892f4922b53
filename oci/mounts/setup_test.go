package mounts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The Setup/Pivot/Finish test re-executes this test binary in new user,
// mount, pid, net, ipc and uts namespaces (root inside is the caller, as a
// rootless container's is) and checks the result from inside.
const (
	childEnv = "OCI_MOUNTS_TEST_CHILD"
	outerEnv = "OCI_MOUNTS_TEST_OUTER"
)

func TestMain(m *testing.M) {
	if arg := os.Getenv(outerEnv); arg != "" {
		if err := outer(arg); err != nil {
			fmt.Fprintln(os.Stderr, "outer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if arg := os.Getenv(childEnv); arg != "" {
		if err := child(arg); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		fmt.Println("CHILD OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var (
	fuseMode = os.FileMode(0o600)
	zero     = uint32(0)
)

type childArgs struct {
	Spec   *specs.Spec
	Rootfs string
	// HostDir is the real host directory the rootfs's symlink "evil" points at.
	HostDir string
	// Unbindable: check only that "/" ended up unbindable.
	Unbindable bool
	// Locked is where outer mounts a nosuid,nodev,noexec tmpfs.
	Locked string
}

// fixture makes a rootfs with hostile symlinks, the host directory they
// point at, and a bind source.
func fixture(t *testing.T) childArgs {
	base := t.TempDir()
	// The test runs as an unprivileged user: the temp dirs must be
	// searchable by root of the user namespace, which is that user.
	rootfs := filepath.Join(base, "rootfs")
	host := filepath.Join(base, "hostdir")
	src := filepath.Join(base, "src")
	locked := filepath.Join(base, "locked")
	for _, d := range []string{"proc", "dev", "sys", "tmp", "etc", "masked-dir", "ro-dir", "copyme/sub", host, src, locked} {
		p := d
		if !filepath.IsAbs(d) {
			p = filepath.Join(rootfs, d)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		rootfs + "/masked-file":      "secret",
		rootfs + "/masked-dir/s":     "secret",
		rootfs + "/copyme/a":         "A",
		rootfs + "/copyme/sub/b":     "B",
		rootfs + "/ro-dir/existing":  "x",
		src + "/data":                "data",
		rootfs + "/etc/passwd":       "root:x:0:0::/:/bin/sh\n",
		rootfs + "/etc/not-a-device": "",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a", rootfs+"/copyme/link"); err != nil {
		t.Fatal(err)
	}
	// Symlinks out of the rootfs: an absolute one to a real host dir, and
	// one to "/". Mounts through them must land inside the rootfs.
	if err := os.Symlink(host, rootfs+"/evil"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", rootfs+"/etc2"); err != nil {
		t.Fatal(err)
	}
	s := &specs.Spec{
		Root: &specs.Root{Path: rootfs, Readonly: true},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
			{Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/etc2/y", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/evil/vol", Type: "bind", Source: src, Options: []string{"rbind"}},
			{Destination: "/vol", Type: "bind", Source: src, Options: []string{"rbind", "ro", "nosuid"}},
			{Destination: "/volfile", Type: "bind", Source: src + "/data", Options: []string{"bind"}},
			{Destination: "/copyme", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "ro"}},
			// A mount whose nosuid,nodev,noexec are locked (made by the
			// outer namespace, see outer): "ro" alone must keep them (a
			// bind remount with MS_RDONLY alone would be EPERM).
			{Destination: "/locked", Type: "bind", Source: locked, Options: []string{"rbind", "ro"}},
		},
		Linux: &specs.Linux{
			MaskedPaths:   []string{"/masked-file", "/masked-dir", "/proc/cmdline", "/proc/kcore", "/nonexistent", "/masked-file/below"},
			ReadonlyPaths: []string{"/ro-dir", "/proc/sys", "/nonexistent"},
			// In the user namespace: a bind of the host's node.
			Devices: []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &fuseMode, UID: &zero, GID: &zero}},
		},
	}
	return childArgs{Spec: s, Rootfs: rootfs, HostDir: host, Locked: locked}
}

func TestSetupInUserNamespace(t *testing.T) {
	a := fixture(t)
	runChild(t, a)
	if ents, err := os.ReadDir(a.HostDir); err != nil || len(ents) != 0 {
		t.Fatalf("the host directory behind the rootfs's symlink was touched: %v %v", ents, err)
	}
	// Nothing in the host's / changed either way; the rootfs on disk got
	// mount points only.
	if _, err := os.Stat("/y"); err == nil {
		t.Error("a /y exists on the host (the mount through etc2 -> / may have escaped)")
	}
}

// TestSetupUnbindable: rootfsPropagation runbindable is applied at the end
// (made at the start, the root could not be bound on itself: EINVAL).
func TestSetupUnbindable(t *testing.T) {
	a := fixture(t)
	a.Spec.Linux.RootfsPropagation = "runbindable"
	a.Unbindable = true
	runChild(t, a)
}

func runChild(t *testing.T, a childArgs) {
	t.Helper()
	arg, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// outer: a user and mount namespace whose root is the caller; child:
	// one more level, where outer's mounts have their flags locked.
	cmd := reexec(ctx, outerEnv, string(arg), os.Getuid(), os.Getgid(), syscall.CLONE_NEWUSER|syscall.CLONE_NEWNS)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("child timed out\n%s", out.String())
	}
	if err != nil || !strings.Contains(out.String(), "CHILD OK") {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	t.Logf("child:\n%s", out.String())
}

// reexec is this test binary with env name=arg in new namespaces, uid and
// gid mapped to root inside.
func reexec(ctx context.Context, name, arg string, uid, gid int, flags uintptr) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	env := []string{name + "=" + arg}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, childEnv+"=") && !strings.HasPrefix(e, outerEnv+"=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 flags,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
	}
	return cmd
}

// outer mounts a tmpfs with nosuid,nodev,noexec on a.Locked, then runs
// the child in new user, mount, pid, net, ipc and uts namespaces.
func outer(arg string) error {
	var a childArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", a.Locked, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=1m"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cmd := reexec(ctx, childEnv, arg, 0, 0, syscall.CLONE_NEWUSER|syscall.CLONE_NEWNS|syscall.CLONE_NEWPID|
		syscall.CLONE_NEWNET|syscall.CLONE_NEWIPC|syscall.CLONE_NEWUTS)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// child runs in the namespaces: Setup, Pivot, Finish, then the checks.
func child(arg string) error {
	var a childArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		return err
	}
	if err := Setup(a.Spec, a.Rootfs); err != nil {
		return fmt.Errorf("Setup: %w", err)
	}
	if err := Pivot(a.Rootfs); err != nil {
		return fmt.Errorf("Pivot: %w", err)
	}
	if err := Finish(a.Spec); err != nil {
		return fmt.Errorf("Finish: %w", err)
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	if a.Unbindable {
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 7 && f[4] == "/" {
				if !strings.Contains(l, " unbindable ") {
					return fmt.Errorf("/ is not unbindable: %s", l)
				}
				return nil
			}
		}
		return errors.New("no / in mountinfo")
	}
	mounts := map[string][]string{} // mount point -> [options, fstype]
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 {
			continue
		}
		i := 6
		for i < len(f) && f[i] != "-" {
			i++
		}
		if i+1 < len(f) {
			mounts[f[4]] = []string{f[5], f[i+1]}
		}
	}
	want := func(mp, fstype string, ro bool) {
		m, ok := mounts[mp]
		if !ok {
			fail("%s is not a mount point", mp)
			return
		}
		if fstype != "" && m[1] != fstype {
			fail("%s is %s, want %s", mp, m[1], fstype)
		}
		if isRO := strings.HasPrefix(m[0], "ro"); isRO != ro {
			fail("%s options %s, want ro=%v", mp, m[0], ro)
		}
	}
	want("/", "", true)
	want("/proc", "proc", false)
	want("/dev", "tmpfs", false)
	want("/dev/pts", "devpts", false)
	want("/tmp", "tmpfs", false)
	want("/sys", "", true)
	want("/sys/fs/cgroup", "", true)
	want("/vol", "", true)
	want("/copyme", "tmpfs", true)
	want("/locked", "tmpfs", true)
	if m := mounts["/locked"]; m != nil && !strings.Contains(m[0], "nosuid,nodev,noexec") {
		fail("/locked options %s: the locked nosuid,nodev,noexec were dropped", m[0])
	}
	want("/ro-dir", "", true)
	want("/proc/sys", "proc", true)
	want("/y", "tmpfs", false)           // etc2 -> / resolved inside
	want(a.HostDir+"/x", "tmpfs", false) // evil -> hostdir resolved inside
	want(a.HostDir+"/vol", "", false)    // a bind through it too
	if m := mounts["/vol"]; m != nil && !strings.Contains(m[0], "nosuid") {
		fail("/vol options %s, want nosuid", m[0])
	}

	erofs := func(p string) {
		err := os.WriteFile(p, []byte("x"), 0o644)
		if !errors.Is(err, unix.EROFS) {
			fail("writing %s: %v, want EROFS", p, err)
		}
	}
	erofs("/newfile")
	erofs("/vol/new")
	erofs("/ro-dir/new")
	erofs("/copyme/new")
	if err := os.WriteFile("/tmp/new", []byte("x"), 0o644); err != nil {
		fail("writing /tmp: %v", err)
	}
	read := func(p, want string) {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			fail("%s: %q %v, want %q", p, b, err, want)
		}
	}
	read("/vol/data", "data")
	read("/volfile", "data")
	read("/copyme/a", "A")
	read("/copyme/sub/b", "B")
	read("/copyme/link", "A")
	read("/masked-file", "")
	read("/proc/cmdline", "")
	if ents, err := os.ReadDir("/masked-dir"); err != nil || len(ents) != 0 {
		fail("/masked-dir: %v %v, want empty", ents, err)
	}
	for _, d := range []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"} {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			fail("%s: not a character device (%v)", d, err)
		}
	}
	if err := os.WriteFile("/dev/null", []byte("x"), 0); err != nil {
		fail("writing /dev/null: %v", err)
	}
	for l, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/ptmx": "pts/ptmx"} {
		if got, err := os.Readlink(l); err != nil || got != target {
			fail("%s -> %q %v, want %q", l, got, err, target)
		}
	}
	for _, d := range a.Spec.Linux.Devices {
		var st unix.Stat_t
		if err := unix.Stat(d.Path, &st); err != nil || sameDevice(&st, d) != nil {
			fail("%s: %v %v", d.Path, err, sameDevice(&st, d))
			continue
		}
		if !InUserNS() && (st.Mode&0o7777 != uint32(*d.FileMode) || st.Uid != *d.UID || st.Gid != *d.GID) {
			fail("%s: mode %o uid %d gid %d, want %o %d %d", d.Path, st.Mode&0o7777, st.Uid, st.Gid, uint32(*d.FileMode), *d.UID, *d.GID)
		}
	}
	if _, err := os.Stat(a.HostDir + "/x"); err != nil {
		fail("the mount through evil is not inside: %v", err)
	}
	return errors.Join(errs...)
}
