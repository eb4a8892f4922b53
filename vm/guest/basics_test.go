//go:build linux && vmguest

package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// The VM's shape, checked first so a broken harness reads as such.
const (
	cgroup2Magic = 0x63677270
	// guest/init writes it into the guest's /root, which every sandbox hides.
	oldRootMarker = "/root/vmtest-marker"
	// What guest/init delegates to tester; stock gets Debian 12's stock set.
	fullControllers  = "cpu cpuset io memory pids"
	stockControllers = "cpu memory pids"
)

func init() {
	helpers["climb"] = chrootClimb
}

// checkShape verifies: pure cgroup v2 at /sys/fs/cgroup, this process in
// user@UID.service/app.slice/vmtest.scope as UID, and a fresh scope offering
// exactly the controllers UID's user@.service delegates.
func checkShape(t *testing.T, uid int, controllers string) {
	t.Helper()
	if got := os.Getuid(); got != uid {
		t.Fatalf("the guest tests run as uid %d, want %d (vm-as-user)", got, uid)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != cgroup2Magic {
		t.Fatalf("/sys/fs/cgroup is not cgroup2 (statfs: %v, type %#x)", err, st.Type)
	}
	own := ownCgroup(t)
	want := fmt.Sprintf("/user.slice/user-%d.slice/user@%d.service/app.slice/vmtest.scope", uid, uid)
	if !strings.HasSuffix(own, want) {
		t.Fatalf("own cgroup %s, want …%s", own, want)
	}
	scope := newScope(t)
	b, err := os.ReadFile(filepath.Join(scope, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(b))
	slices.Sort(got)
	if strings.Join(got, " ") != controllers {
		t.Fatalf("a new scope offers controllers %q, want %q", got, controllers)
	}
}

func TestShape(t *testing.T) {
	checkShape(t, 1000, fullControllers)
}

func TestRunTrue(t *testing.T) {
	wantCode(t, run(t, "run", "--", "true"), 0)
}

// TestRunID: uid 0 inside, mapped to uid 1000 plus its subordinate range
// (newuidmap/newgidmap, setuid in the guest as Debian ships them).
func TestRunID(t *testing.T) {
	r := run(t, "run", "--", "id")
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, "uid=0(root) gid=0(root)") {
		t.Errorf("`id` inside: %q, want uid=0(root) gid=0(root)…", r.stdout)
	}
	r = run(t, "run", "--map=full", "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
	wantCode(t, r, 0)
	want := []string{"0 1000 1", "1 100000 65536", "0 1000 1", "1 100000 65536"}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	if !slices.Equal(got, want) {
		t.Errorf("uid_map + gid_map inside: %q, want %q", got, want)
	}
}

// TestPivotRootFallback: / of the guest is the initramfs's rootfs, which
// pivot_root refuses (EINVAL); the sandbox moves its root over / and chroots
// instead. Neither a listing nor the classic chroot climb may reach the old root.
func TestPivotRootFallback(t *testing.T) {
	r := run(t, "run", "-v", "--", "true")
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "entered the new root (MS_MOVE+chroot)") {
		t.Fatalf("-v output does not report the MS_MOVE+chroot fallback:\n%s", r.stderr)
	}
	if _, err := os.Stat(oldRootMarker); err != nil {
		t.Fatalf("the guest's marker is missing (guest/init writes it): %v", err)
	}

	dir := t.TempDir()
	helper := helperCopy(t, dir)
	r = start(t, dir, "run", "-e", helperEnv+"=climb", "--", helper).wait()
	wantCode(t, r, 0)
	before, _ := field(r.stdout, "BEFORE")
	after, _ := field(r.stdout, "AFTER")
	if before == "" || after != before {
		t.Errorf("ESCAPE?: after the chroot climb / is %q, the sandbox's / was %q\n%s", after, before, r)
	}
	if l1, l2 := fieldOr(r.stdout, "LS BEFORE"), fieldOr(r.stdout, "LS AFTER"); l1 != l2 {
		t.Errorf("ESCAPE?: after the chroot climb / lists %q, the sandbox's / listed %q", l2, l1)
	}
	for _, k := range []string{"MARKER BEFORE", "MARKER AFTER"} {
		if v := fieldOr(r.stdout, k); v != "absent" {
			t.Errorf("ESCAPE: %s: the guest's %s is reachable inside (%s)\n%s", k, oldRootMarker, v, r)
		}
	}
}

func fieldOr(out, key string) string {
	v, ok := field(out, key)
	if !ok {
		return "<missing " + key + ">"
	}
	return v
}

// chrootClimb (inside the sandbox, as its root, with CAP_SYS_CHROOT): chroot
// into a subdirectory while holding a directory fd outside it, then climb
// with "..", and chroot to where the climb ended.
func chrootClimb() int {
	report := func(when string) {
		var st syscall.Stat_t
		if err := syscall.Stat("/", &st); err != nil {
			fmt.Printf("%s: stat /: %v\n", when, err)
		} else {
			fmt.Printf("%s: %d:%d\n", when, st.Dev, st.Ino)
		}
		var names []string
		if ents, err := os.ReadDir("/"); err == nil {
			for _, e := range ents {
				names = append(names, e.Name())
			}
		}
		fmt.Printf("LS %s: %s\n", when, strings.Join(names, " "))
		marker := "absent"
		if _, err := os.Stat(oldRootMarker); err == nil {
			marker = "present"
		}
		fmt.Printf("MARKER %s: %s\n", when, marker)
	}
	report("BEFORE")
	fd, err := syscall.Open("/", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		fmt.Println("open /:", err)
		return 1
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"mkdir /tmp/jail", func() error { return os.MkdirAll("/tmp/jail", 0o755) }},
		{"chroot /tmp/jail", func() error { return syscall.Chroot("/tmp/jail") }},
		{"fchdir to the old /", func() error { return syscall.Fchdir(fd) }},
		{"climb", func() error {
			for range 64 {
				if err := syscall.Chdir(".."); err != nil {
					return err
				}
			}
			return nil
		}},
		{"chroot .", func() error { return syscall.Chroot(".") }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			fmt.Printf("%s: %v\n", s.what, err)
			return 1
		}
	}
	report("AFTER")
	return 0
}

// TestOverlayInUserNS: the root's directories are kernel overlayfs mounts
// made inside the user namespace (Linux >= 5.11); writes land in the upper
// layer and never reach the guest.
func TestOverlayInUserNS(t *testing.T) {
	r := run(t, "run", "--", "sh", "-c", "echo x > /etc/x && cat /etc/x && grep ' /etc ' /proc/self/mountinfo")
	wantCode(t, r, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || lines[0] != "x" {
		t.Fatalf("want x and /etc's mountinfo line, got %q", r.stdout)
	}
	if !strings.Contains(lines[1], " - overlay ") {
		t.Errorf("/etc inside is not a kernel overlay: %s", lines[1])
	}
	if _, err := os.Stat("/etc/x"); !os.IsNotExist(err) {
		t.Errorf("the write inside reached the guest's /etc/x (stat: %v)", err)
	}
}

// TestStockShape runs as stock (uid 1001), whose user@.service delegates
// only cpu memory pids: Debian 12 without the drop-in.
func TestStockShape(t *testing.T) {
	checkShape(t, 1001, stockControllers)
	wantCode(t, run(t, "run", "--", "true"), 0)
}
