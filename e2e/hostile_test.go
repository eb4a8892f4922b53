//go:build linux

package e2e

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// TestHostileHostShape: a directory only root can read, holding a mount
// below it (root's /var/lib/docker, 0710 with overlay mounts; here
// scripts/test.sh's $SANDBOX_TEST_HOSTILE, made in the tests' private mount
// namespace), must not fail `run` or `check`, and the sandbox must show it
// as the host does: closed to the caller, its mount and files unreachable,
// nothing writable.
func TestHostileHostShape(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("SANDBOX_TEST_HOSTILE")
	requireOrSkip(t, dir != "", "SANDBOX_TEST_HOSTILE (scripts/test.sh run as root builds the hostile host shape)")
	_, err := os.ReadDir(dir)
	requireOrSkip(t, errors.Is(err, fs.ErrPermission),
		"the hostile shape: "+dir+" unreadable by the test user (got "+errString(err)+")")
	below, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		return !strings.HasPrefix(m.Mountpoint, dir+"/"), false
	})
	requireOrSkip(t, err == nil && len(below) > 0, "the hostile shape: a mount below "+dir)

	script := `ls ` + dir + ` >/dev/null 2>&1 && echo LISTED; stat -c '%a' ` + dir + `
cat ` + dir + `/secret 2>/dev/null && echo READ
touch ` + dir + `/x 2>/dev/null && echo WROTE
ls ` + below[0].Mountpoint + ` >/dev/null 2>&1 && echo REACHED
echo done`
	for _, flags := range [][]string{nil, {"--read-only"}} {
		r := mustRun(t, opts{}, sh(flags, script)...)
		if got := strings.Fields(r.stdout); len(got) != 2 || got[0] != "700" || got[1] != "done" {
			t.Errorf("%v: inside, %s must stay closed (mode 700, not listed, read, written or reached); got %q",
				flags, dir, r.stdout)
		}
	}
	r := mustRun(t, opts{}, "check", "--json")
	doc, byID := parseCheck(t, r.stdout)
	if !doc.OK || byID["run"].Status != "OK" {
		t.Errorf("check with the hostile shape: ok=%v, run=%+v\n%s", doc.OK, byID["run"], r.stdout)
	}
}
