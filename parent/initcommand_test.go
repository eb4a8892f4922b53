package parent

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"sandbox/journal"

	"golang.org/x/sys/unix"
)

// An init that cannot be moved above the child's fds (the open-file limit)
// leaves the process's copy of init open for the next launch: the run's
// own, after an early one failed so. It had closed it, and the run then
// moved a closed fd ("moving the memfd of sandbox-init above fd 18: bad
// file descriptor", TestHostShapeErrorsSayTheFix now and then).
func TestInitCommandKeepsItsCopy(t *testing.T) {
	if InitELF == "" {
		InitELF = "\x7fELF not a program: only copied and moved here"
		t.Cleanup(func() { InitELF = "" })
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		_, _, _, _, err := initCommand(int(lim.Cur), nil, false)
		if err == nil || !strings.Contains(err.Error(), "the open-file limit is") {
			t.Fatalf("launch %d, init above the open-file limit: %v, want the limit named", i+1, err)
		}
	}
	p, m, c, _, err := initCommand(3, nil, false)
	if err != nil {
		t.Fatalf("a launch after two that failed: %v", err)
	}
	_ = c // left open: loadInit's copy is the process's, as a run leaves it
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil || st.Size != int64(len(InitELF)) || m == nil {
		t.Errorf("init's path %s after two failed launches: size %d of %d, %v", p, st.Size, len(InitELF), err)
	}
}

// A step that ran out of file descriptors names the limit and its fix,
// wherever it ran out (newuidmap's /dev/null: "too many open files" alone
// before); an error that names it already, or another, is left as it is.
func TestFDLimitHint(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	emfile := journal.AtStep("writing the id maps", fmt.Errorf("/usr/bin/newuidmap: %w", &os.PathError{Op: "open", Path: "/dev/null", Err: unix.EMFILE}))
	got := fdLimitHint(emfile)
	want := fmt.Sprintf("the open-file limit is %d (ulimit -n); raise it", lim.Cur)
	if !strings.HasSuffix(got.Error(), want) || !errors.Is(got, unix.EMFILE) || strings.Contains(got.Error(), "\n") {
		t.Errorf("EMFILE: %q, want it ending %q, one line", got, want)
	}
	for _, err := range []error{nil, fdLimitHint(emfile), errors.New("other"), unix.ENFILE} {
		if got := fdLimitHint(err); got != err {
			t.Errorf("%v: changed to %v", err, got)
		}
	}
}
