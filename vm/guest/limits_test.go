//go:build linux && vmguest

package guest

// Limit tests of the cgroup v2 flags (--memory, --pids, --cpus, --io-max,
// --limits), from branch cgroup.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/testenv"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["spin"] = spin
}

// watch polls, while the command runs, the files of the cgroup below scope
// whose file name holds want: the sandbox's limited cgroup, which is gone
// when the command has ended.
type watch struct {
	mu    sync.Mutex
	dir   string // the cgroup found, "" until then
	stop  chan struct{}
	done  chan struct{}
	files map[string]string // last contents read, by file name
	peak  int64             // largest pids.current read
}

func startWatch(scope, name, want string, files ...string) *watch {
	w := &watch{stop: make(chan struct{}), done: make(chan struct{}), files: map[string]string{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			w.mu.Lock()
			if w.dir == "" {
				w.dir = findCgroup(scope, name, want)
			}
			if w.dir != "" {
				for _, f := range files {
					if b, err := os.ReadFile(filepath.Join(w.dir, f)); err == nil {
						w.files[f] = string(b)
						w.sampleLocked(f, string(b))
					}
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watch) sampleLocked(file, content string) {
	if file != "pids.current" {
		return
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(content), 10, 64); err == nil && n > w.peak {
		w.peak = n
	}
}

// finish stops polling and returns the cgroup found and the files' last contents.
func (w *watch) finish() (string, map[string]string, int64) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dir, w.files, w.peak
}

// findCgroup returns the first cgroup at or below dir whose file name holds want.
func findCgroup(dir, name, want string) string {
	if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && strings.TrimSpace(string(b)) == want {
		return dir
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			if d := findCgroup(filepath.Join(dir, e.Name()), name, want); d != "" {
				return d
			}
		}
	}
	return ""
}

// keyValue returns key's value in a flat-keyed cgroup file (memory.events).
func keyValue(content, key string) int64 {
	for _, l := range strings.Split(content, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// TestMemoryOOM: a 256 MiB allocation under --memory 64M is OOM-killed and
// the sandbox says so.
func TestMemoryOOM(t *testing.T) {
	r := run(t, "run", "--memory", "64M", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	wantCode(t, r, 137)
	if !strings.Contains(r.stderr, "killed by the OOM killer (memory limit 64M)") {
		t.Errorf("stderr does not report the OOM kill:\n%s", r)
	}
}

// TestPidsForkBomb: a fork bomb under --pids 20 gets EAGAIN and the
// cgroup's pids.current never exceeds 20.
func TestPidsForkBomb(t *testing.T) {
	const n = 20
	// busybox ash exits at its first failed fork; the outer shell then
	// reports how far it got and execs (no fork) a sleep that keeps the
	// cgroup alive for the watcher.
	bomb := `sh -c 'i=0; while [ $i -lt 500 ]; do sleep 60 & i=$((i+1)); echo $i >/tmp/forks; done'; read f </tmp/forks; echo "FORKS: $f"; exec sleep 2`
	p := start(t, t.TempDir(), "run", "--pids", strconv.Itoa(n), "--", "sh", "-c", bomb)
	w := startWatch(p.scope, "pids.max", strconv.Itoa(n), "pids.current", "pids.events")
	r := p.wait()
	dir, files, maxCurrent := w.finish()
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "Resource temporarily unavailable") {
		t.Errorf("the bomb did not report EAGAIN:\n%s", r)
	}
	if f, _ := field(r.stdout, "FORKS"); f == "" {
		t.Errorf("the bomb did not report how many forks succeeded:\n%s", r)
	} else if forks, _ := strconv.Atoi(f); forks >= n {
		t.Errorf("the bomb started %d processes under --pids %d", forks, n)
	}
	if dir == "" {
		t.Fatalf("no cgroup with pids.max %d below %s while the bomb ran", n, p.scope)
	}
	if maxCurrent == 0 || maxCurrent > n {
		t.Errorf("pids.current of %s peaked at %d, want 1..%d", dir, maxCurrent, n)
	}
	if keyValue(files["pids.events"], "max") < 1 {
		t.Errorf("pids.events of %s records no refused fork: %q", dir, files["pids.events"])
	}
	t.Logf("%s: pids.current peaked at %d, %s", dir, maxCurrent, strings.TrimSpace(files["pids.events"]))
}

// spin (inside the sandbox): a busy loop for 3 s of wall time, then the CPU
// time it got.
func spin() int {
	start := time.Now()
	for time.Since(start) < 3*time.Second {
	}
	wall := time.Since(start)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fmt.Println("getrusage:", err)
		return 1
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("CPU: %d\nWALL: %d\n", cpu.Microseconds(), wall.Microseconds())
	return 0
}

// TestCPUQuota: --cpus 0.3 is cpu.max "30000 100000", and a busy loop gets
// about 30% of a CPU. The bounds are wide: TCG on a shared, loaded host.
func TestCPUQuota(t *testing.T) {
	dir := t.TempDir()
	helper := helperCopy(t, dir)
	p := start(t, dir, "run", "--cpus", "0.3", "-e", helperEnv+"=spin", "--", helper)
	w := startWatch(p.scope, "cpu.max", "30000 100000", "cpu.stat")
	r := p.wait()
	cg, files, _ := w.finish()
	wantCode(t, r, 0)
	if cg == "" {
		t.Errorf("no cgroup with cpu.max \"30000 100000\" below %s while the loop ran", p.scope)
	} else if keyValue(files["cpu.stat"], "nr_throttled") < 1 {
		t.Errorf("cpu.stat of %s shows no throttling: %q", cg, files["cpu.stat"])
	}
	cpu, _ := field(r.stdout, "CPU")
	wall, _ := field(r.stdout, "WALL")
	c, err1 := strconv.ParseFloat(cpu, 64)
	wl, err2 := strconv.ParseFloat(wall, 64)
	if err1 != nil || err2 != nil || wl == 0 {
		t.Fatalf("the loop did not report its times:\n%s", r)
	}
	ratio := c / wl
	t.Logf("a busy loop under --cpus 0.3 got %.3f of a CPU (%.0f ms in %.0f ms)", ratio, c/1000, wl/1000)
	// Idle, it gets 0.33; unlimited, 1.0. When the host deschedules a vCPU,
	// the guest charges the stall to the loop and throttles it late, and
	// the overrun is not paid back: 0.40-0.42 with the rest of the suite
	// running (load 4). Hence the wide upper bound, still far from 1.0.
	if ratio < 0.15 || ratio > 0.6 {
		t.Errorf("a busy loop under --cpus 0.3 got %.3f of a CPU, want 0.15 to 0.6 (0.3 nominal, wide for TCG under load)", ratio)
	}
}

// scratchDisk is the VM's scratch disk (owned by tester), with its MAJ:MIN.
func scratchDisk(t *testing.T) (string, string) {
	t.Helper()
	disk := os.Getenv("VMTEST_DISK")
	testenv.RequireOrSkip(t, disk != "", "the VM's scratch disk (VMTEST_DISK; vm/run.sh --disk)")
	var st syscall.Stat_t
	if err := syscall.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	return disk, fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
}

// realSeconds reads the "real N" line of `time -p`.
func realSeconds(t *testing.T, r result) float64 {
	t.Helper()
	for _, l := range strings.Split(r.stderr, "\n") {
		if v, ok := strings.CutPrefix(l, "real "); ok {
			if s, err := strconv.ParseFloat(v, 64); err == nil {
				return s
			}
		}
	}
	t.Fatalf("no `time -p` output:\n%s", r)
	return 0
}

// TestIOMax: O_DIRECT reads from the scratch disk under
// --io-max DISK:rbps=1048576 take about a second per MiB.
func TestIOMax(t *testing.T) {
	disk, majMin := scratchDisk(t)
	dd := []string{"time", "-p", "dd", "if=" + disk, "of=/dev/null", "bs=64k", "count=48", "iflag=direct"} // 3 MiB
	free := run(t, append([]string{"run", "--bind", disk, "--"}, dd...)...)
	wantCode(t, free, 0)
	p := start(t, t.TempDir(), append([]string{"run", "--io-max", disk + ":rbps=1048576", "--bind", disk, "--"}, dd...)...)
	w := startWatch(p.scope, "io.max", majMin+" rbps=1048576 wbps=max riops=max wiops=max")
	r := p.wait()
	cg, _, _ := w.finish()
	wantCode(t, r, 0)
	if cg == "" {
		t.Errorf("no cgroup with io.max \"%s rbps=1048576 …\" below %s while dd ran", majMin, p.scope)
	}
	unlimited, limited := realSeconds(t, free), realSeconds(t, r)
	t.Logf("3 MiB of O_DIRECT reads: %.2f s unlimited, %.2f s under rbps=1 MiB/s", unlimited, limited)
	if limited < 2 {
		t.Errorf("3 MiB of O_DIRECT reads under rbps=1 MiB/s took %.2f s, want ≥ 2 s", limited)
	}
}

// stockIOMax is an --io-max the stock shape cannot serve (no io delegated).
var stockIOMax = []string{"--io-max", "/dev/vda:rbps=1048576"}

// TestStockIOMaxFailsClosed (stock shape: user@.service delegates cpu
// memory pids): --io-max cannot hold, so the run stops with 125 and says
// why; --limits=best-effort runs without it. (That the message names the
// drop-in: limits_pending_test.go.)
func TestStockIOMaxFailsClosed(t *testing.T) {
	checkShape(t, 1001, stockControllers)
	r := run(t, append(append([]string{"run"}, stockIOMax...), "--", "true")...)
	wantCode(t, r, 125)
	for _, want := range []string{"--io-max", "Delegate="} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error does not name the flag and the delegation fix (%q):\n%s", want, r)
		}
	}
	r = run(t, append(append([]string{"run", "--limits=best-effort"}, stockIOMax...), "--", "true")...)
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "--io-max") {
		t.Errorf("--limits=best-effort ran without --io-max but did not warn:\n%s", r)
	}
}

// TestStockLimitsWithoutIO: what stock delegation does delegate still works.
func TestStockLimitsWithoutIO(t *testing.T) {
	r := run(t, "run", "--memory", "64M", "--pids", "50", "--cpus", "0.5", "--", "true")
	wantCode(t, r, 0)
}
