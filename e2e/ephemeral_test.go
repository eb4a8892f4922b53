package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The sandbox's ephemeral writable storage (--ephemeral, --ephemeral-size):
// one bounded budget in memory by default, or a directory on disk.

const tmpfsMagic = 0x01021994

// expectedEphemeralDefault is the documented default: a quarter of RAM, at
// most 8 GiB, at most half of --memory, in whole MiB.
func expectedEphemeralDefault(t *testing.T, memLimit int64) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ram int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("MemTotal: %v", err)
			}
			ram = kb * 1024
		}
	}
	if ram == 0 {
		t.Fatal("no MemTotal in /proc/meminfo")
	}
	size := min(ram/4, 8<<30)
	if memLimit > 0 {
		size = min(size, memLimit/2)
	}
	return size &^ (1<<20 - 1)
}

type ephemeralReport struct {
	Root struct {
		Ephemeral *struct {
			Place     string `json:"place"`
			SizeBytes int64  `json:"size_bytes"`
			Size      string `json:"size"`
			Inodes    int64  `json:"inodes"`
			Dir       string `json:"dir"`
		} `json:"ephemeral"`
	} `json:"root"`
}

func readEphemeralReport(t *testing.T, file string) ephemeralReport {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading the report: %v", err)
	}
	var r ephemeralReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("parsing the report: %v\n%s", err, b)
	}
	if r.Root.Ephemeral == nil {
		t.Fatalf("the report has no root.ephemeral:\n%s", b)
	}
	return r
}

// statfsScript prints "PATH BYTES" for each writable place of the sandbox.
const statfsScript = `for d in /tmp /usr /etc /dev/shm /run /root "$HOME" /; do echo "$d $(( $(stat -f -c '%b * %S' "$d") ))"; done`

func sizesSeen(t *testing.T, out string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, ln := range lines(out) {
		f := strings.Fields(ln)
		if len(f) != 2 || !strings.HasPrefix(f[0], "/") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("statfs line %q", ln)
		}
		m[f[0]] = n
	}
	if len(m) < 7 {
		t.Fatalf("statfs output: %q", out)
	}
	return m
}

// TestEphemeralDefaultBound: by default every ephemeral place (/tmp, the
// overlays' upper layers, /dev/shm, /run, the homes, /) is one tmpfs of the
// documented size, which --report states; --memory halves it.
func TestEphemeralDefaultBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  int64
	}{
		{"default", nil, expectedEphemeralDefault(t, 0)},
		{"memory", []string{"--memory", "64M", "--limits=best-effort"}, expectedEphemeralDefault(t, 64<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := filepath.Join(tempDir(t), "report.json")
			args := append([]string{"run", "--net=none", "--cwd=none", "--report", rep}, tc.flags...)
			r := run(t, append(args, "--", "sh", "-c", statfsScript)...)
			wantCode(t, r, 0)
			for place, n := range sizesSeen(t, r.stdout) {
				if n != tc.want {
					t.Errorf("%s: %s holds %d bytes, want the default budget %d", tc.name, place, n, tc.want)
				}
			}
			e := readEphemeralReport(t, rep).Root.Ephemeral
			if e.Place != "memory" || e.SizeBytes != tc.want || e.Inodes < 8192 || e.Dir != "" {
				t.Errorf("%s: report root.ephemeral = %+v, want memory of %d bytes", tc.name, *e, tc.want)
			}
		})
	}
}

// TestEphemeralSizeENOSPC: --ephemeral-size (or SANDBOX_EPHEMERAL_SIZE)
// sizes the one budget; writing past it anywhere gives the payload a plain
// ENOSPC, and all places share it.
func TestEphemeralSizeENOSPC(t *testing.T) {
	script := statfsScript + `
# (dd's messages in a variable: a full /tmp takes no file)
for d in /tmp /usr /etc /dev/shm "$HOME"; do
	if e=$(dd if=/dev/zero of="$d/big" bs=1M count=16 2>&1); then echo "$d: wrote 16M"; else echo "$d: $(echo "$e" | grep error)"; fi
	rm -f "$d/big"
done
# One budget: 5M in /tmp leave no room for 5M in /usr.
dd if=/dev/zero of=/tmp/a bs=1M count=5 2>/dev/null && echo "a ok"
e=$(dd if=/dev/zero of=/usr/b bs=1M count=5 2>&1) || echo "shared: $(echo "$e" | grep error)"
`
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flag", []string{"--ephemeral-size", "8M"}, nil},
		{"env", nil, []string{"SANDBOX_EPHEMERAL_SIZE=8M"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := filepath.Join(tempDir(t), "report.json")
			args := append([]string{"run", "--net=none", "--cwd=none", "--report", rep}, tc.args...)
			r := runOpts(t, opts{env: tc.env}, append(args, "--", "sh", "-c", script)...)
			wantCode(t, r, 0)
			for place, n := range sizesSeen(t, r.stdout) {
				if n != 8<<20 {
					t.Errorf("%s holds %d bytes, want 8M", place, n)
				}
			}
			for _, d := range []string{"/tmp", "/usr", "/etc", "/dev/shm"} {
				if !strings.Contains(r.stdout, d+": dd: error writing '"+d+"/big': No space left on device") {
					t.Errorf("writing 16M to %s with an 8M budget: want ENOSPC:\n%s", d, r)
				}
			}
			if !strings.Contains(r.stdout, "a ok\n") || !strings.Contains(r.stdout, "shared: dd: error writing '/usr/b': No space left on device") {
				t.Errorf("the places do not share one budget:\n%s", r)
			}
			if e := readEphemeralReport(t, rep).Root.Ephemeral; e.SizeBytes != 8<<20 || e.Size != "8M" {
				t.Errorf("report root.ephemeral = %+v, want 8M", *e)
			}
		})
	}
}

func TestEphemeralBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--ephemeral-size", "0"},
		{"--ephemeral-size", "lots"},
		{"--ephemeral-size", "100K"},
		{"--ephemeral=disk", "--ephemeral-size", "8M"},
		{"--ephemeral=ram"},
	} {
		r := run(t, append(append([]string{"run", "--net=none"}, args...), "--", "true")...)
		wantCode(t, r, 125)
		if !strings.Contains(r.stderr, "--ephemeral") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
			t.Errorf("%v: want a short error naming the flag: %s", args, r)
		}
	}
}

// diskCache makes an XDG_CACHE_HOME on the test user's home file system
// (a disk, not a tmpfs), removed when the test ends.
func diskCache(t *testing.T) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(home, ".cache", "e2e-ephemeral-"+randHex(8))
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { makeRemovable(d); os.RemoveAll(d) })
	var st syscall.Statfs_t
	if err := syscall.Statfs(d, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == tmpfsMagic {
		t.Fatalf("prerequisite: %s (the test user's home) must be on a disk, not a tmpfs", d)
	}
	return d
}

var ephDirRe = regexp.MustCompile(`^(.+)-[0-9a-f]{8}$`)

// ephemeralDirs lists base's entries for sandbox name.
func ephemeralDirs(t *testing.T, cache, name string) []string {
	t.Helper()
	base := filepath.Join(cache, "sandbox", "ephemeral")
	ents, err := os.ReadDir(base)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if m := ephDirRe.FindStringSubmatch(e.Name()); m != nil && m[1] == name {
			out = append(out, filepath.Join(base, e.Name()))
		}
	}
	return out
}

// findFile finds a file below root whose name is name.
func findFile(root, name string) (string, fs.FileInfo) {
	var found string
	var info fs.FileInfo
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == name && !d.IsDir() {
			found = p
			info, _ = d.Info()
			return filepath.SkipAll
		}
		return nil
	})
	return found, info
}

// TestEphemeralDisk: --ephemeral=disk puts the sandbox's writes (/tmp and
// the root's upper layers) in a 0700 directory under
// $XDG_CACHE_HOME/sandbox/ephemeral on disk, not in memory, and removes it
// when the run ends, files of other ids inside included.
func TestEphemeralDisk(t *testing.T) {
	requireFullMap(t)
	cache := diskCache(t)
	name := "eph-" + randHex(6)
	rep := filepath.Join(tempDir(t), "report.json")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	p := start(t, opts{env: []string{"XDG_CACHE_HOME=" + cache}, stdin: pr},
		"run", "--net=none", "--cwd=none", "--name", name, "--ephemeral=disk", "--report", rep, "--", "sh", "-c", `
		stat -f -c 'tmp %t' /tmp; stat -f -c 'usr %t' /usr
		dd if=/dev/zero of=/tmp/eph-data bs=1M count=16 2>/dev/null && echo wrote
		echo upper > /usr/eph-upper
		mkdir /tmp/theirs && echo x > /tmp/theirs/f && chown -R 1000:1000 /tmp/theirs && chmod 700 /tmp/theirs
		echo up; read x; echo bye`)
	if !p.waitStdout("up\n", cmdTimeout) {
		t.Fatalf("the sandbox did not start: %s", p.wait())
	}
	dirs := ephemeralDirs(t, cache, name)
	if len(dirs) != 1 {
		t.Fatalf("want one ephemeral directory for %s under %s, got %v", name, cache, dirs)
	}
	dir := dirs[0]
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("ephemeral directory %s: %v %v, want a directory of mode 0700", dir, fi.Mode(), err)
	}
	data, info := findFile(dir, "eph-data")
	if data == "" || info.Size() != 16<<20 {
		t.Errorf("/tmp/eph-data (16M) is not in %s on the host", dir)
	} else {
		var st syscall.Statfs_t
		if err := syscall.Statfs(data, &st); err != nil || st.Type == tmpfsMagic {
			t.Errorf("%s is on a tmpfs (memory), want the disk: %v", data, err)
		}
	}
	if up, _ := findFile(dir, "eph-upper"); up == "" {
		t.Errorf("/usr's upper layer is not in %s", dir)
	}
	pw.Close()
	r := p.wait()
	wantCode(t, r, 0)
	for _, w := range []string{"wrote\n", "up\n", "bye\n"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("payload output lacks %q: %s", w, r)
		}
	}
	for _, ln := range lines(r.stdout) {
		if f := strings.Fields(ln); len(f) == 2 && (f[0] == "tmp" || f[0] == "usr") && f[1] == fmt.Sprintf("%x", tmpfsMagic) {
			t.Errorf("inside, %s is a tmpfs: %s", f[0], r)
		}
	}
	if exists(dir) {
		t.Errorf("the ephemeral directory %s outlived the run", dir)
	}
	if e := readEphemeralReport(t, rep).Root.Ephemeral; e.Place != "disk" || e.Dir != dir || e.SizeBytes != 0 {
		t.Errorf("report root.ephemeral = %+v, want disk at %s", *e, dir)
	}
}

// TestEphemeralDiskSweptAfterSIGKILL: a SIGKILLed `sandbox` cannot remove
// its directory; the next sandbox command does, files of the sandbox's
// other ids included, and removes nothing a link inside points to.
func TestEphemeralDiskSweptAfterSIGKILL(t *testing.T) {
	requireFullMap(t)
	cache := diskCache(t)
	precious := filepath.Join(cache, "precious")
	writeFile(t, precious, "keep me", 0o600)
	name := "eph-" + randHex(6)
	env := []string{"XDG_CACHE_HOME=" + cache, "XDG_RUNTIME_DIR=" + tempDir(t)}
	p := start(t, opts{env: env, timeout: time.Minute},
		"run", "--net=none", "--cwd=none", "--name", name, "--ephemeral=disk", "--", "sh", "-c", `
		mkdir /tmp/theirs && echo x > /tmp/theirs/f && chown -R 1000:1000 /tmp/theirs && chmod 700 /tmp/theirs
		ln -s `+precious+` /tmp/link; ln -s `+cache+` /tmp/dirlink; echo upper > /etc/eph-upper
		echo up; sleep 60`)
	if !p.waitStdout("up\n", cmdTimeout) {
		t.Fatalf("the sandbox did not start: %s", p.wait())
	}
	pidns := sandboxPidNS(t, p.pid())
	dirs := ephemeralDirs(t, cache, name)
	if len(dirs) != 1 {
		t.Fatalf("want one ephemeral directory for %s, got %v", name, dirs)
	}
	if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait()
	deadline := time.Now().Add(10 * time.Second)
	for left := inPidNS(pidns); len(left) > 0; left = inPidNS(pidns) {
		if time.Now().After(deadline) {
			t.Fatalf("processes outlived the SIGKILLed sandbox: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !exists(dirs[0]) {
		t.Fatalf("%s is gone already: the test shows nothing", dirs[0])
	}
	// A directory of a subordinate id: the user cannot empty it directly.
	var theirs string
	filepath.WalkDir(dirs[0], func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "theirs" {
			theirs = p
			return filepath.SkipAll
		}
		return nil
	})
	var st syscall.Stat_t
	if theirs == "" || syscall.Lstat(theirs, &st) != nil || int(st.Uid) == os.Getuid() {
		t.Fatalf("no directory of a subordinate id in %s (%q): the test shows nothing", dirs[0], theirs)
	}
	r := runOpts(t, opts{env: env}, "run", "--net=none", "--", "true")
	wantCode(t, r, 0)
	if exists(dirs[0]) {
		t.Errorf("the next run did not sweep %s: %s", dirs[0], r)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me" {
		t.Errorf("the sweep touched %s, a link inside pointed to: %q %v", precious, b, err)
	}
}
