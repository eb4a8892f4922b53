package holder

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLimitsText(t *testing.T) {
	l := Limits{"nproc": 40, "msgqueue": 819200, "sigpending": unix.RLIM_INFINITY, "memlock": 8 << 20}
	text := formatLimits(l)
	if text != "nproc=40,msgqueue=819200,sigpending=unlimited,memlock=8388608" {
		t.Fatalf("formatLimits: %q", text)
	}
	back, err := parseLimits(text)
	if err != nil || formatLimits(back) != text {
		t.Fatalf("parseLimits(%q) = %v, %v", text, back, err)
	}
	for _, bad := range []string{
		"", "nproc=40", "nproc=40,msgqueue=1,sigpending=1,memlock=1,nproc=40",
		"nproc=40,msgqueue=1,sigpending=1,bogus=1", "nproc=-1,msgqueue=1,sigpending=1,memlock=1",
		"nproc=40,msgqueue=1,sigpending=1,memlock", "nproc=40,msgqueue=1,sigpending=1,memlock=1,",
	} {
		if _, err := parseLimits(bad); err == nil {
			t.Errorf("parseLimits(%q) accepted", bad)
		}
	}
}

// TestLimitsCheck: a namespace made under a lower soft limit than ours is
// refused, naming the limit; equal, higher or unlimited ones are not.
func TestLimitsCheck(t *testing.T) {
	own := func(v uint64) func(int) (uint64, error) {
		return func(res int) (uint64, error) {
			if res == unix.RLIMIT_NPROC {
				return v, nil
			}
			return 100, nil
		}
	}
	ns := Limits{"nproc": 40, "msgqueue": 100, "sigpending": 100, "memlock": unix.RLIM_INFINITY}
	if err := ns.check(own(40)); err != nil {
		t.Errorf("equal limits refused: %v", err)
	}
	if err := ns.check(own(39)); err != nil {
		t.Errorf("a namespace above our limit refused: %v", err)
	}
	err := ns.check(own(96000))
	if err == nil || !strings.Contains(err.Error(), "nproc limit (40) than ours (96000)") {
		t.Errorf("a namespace made under ulimit -u 40, ours 96000: %v", err)
	}
	if err := ns.check(own(unix.RLIM_INFINITY)); err == nil || !strings.Contains(err.Error(), "ours (unlimited)") {
		t.Errorf("ours unlimited, the namespace's 40: %v", err)
	}
	if err := (Limits{}).check(own(1)); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("no limits known: %v", err)
	}
}

// TestRaiseLimits: the soft limits the namespace takes are raised to the
// hard ones before it is made, and the answer states what they are.
func TestRaiseLimits(t *testing.T) {
	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_SIGPENDING, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Max < 2 {
		t.Fatalf("RLIMIT_SIGPENDING hard limit %d: nothing to lower (the test needs at least 2)", saved.Max)
	}
	defer unix.Setrlimit(unix.RLIMIT_SIGPENDING, &saved)
	low := unix.Rlimit{Cur: 1, Max: saved.Max}
	if err := unix.Setrlimit(unix.RLIMIT_SIGPENDING, &low); err != nil {
		t.Fatal(err)
	}
	text, err := raiseLimits()
	if err != nil {
		t.Fatal(err)
	}
	var now unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_SIGPENDING, &now)
	l, err := parseLimits(text)
	if err != nil || now.Cur != saved.Max || l["sigpending"] != saved.Max {
		t.Fatalf("after raiseLimits: soft %d, answer %q (%v); want the hard limit %d", now.Cur, text, err, saved.Max)
	}
}
