package holder

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A user namespace takes four limits from the process that creates it
// (create_user_ns: the soft RLIMIT_NPROC, RLIMIT_MSGQUEUE,
// RLIMIT_SIGPENDING and RLIMIT_MEMLOCK), and the kernel holds every
// namespace nested in it to them, counting the user's processes, queued
// signals and locked memory at each level. The holder's namespace outlives
// the run that started the holder, so a run under `ulimit -Su 40` capped
// every later sandbox of the user at 40 processes, whatever the later
// caller's own limit, until the holder went idle ("Cannot fork" in a
// build). The holder raises each soft limit to its hard one before it
// makes its namespace and tells its clients what it made it with; a run
// whose own soft limit is above one of them does not use that namespace.
var nsLimits = []struct {
	name string
	res  int
}{
	{"nproc", unix.RLIMIT_NPROC},
	{"msgqueue", unix.RLIMIT_MSGQUEUE},
	{"sigpending", unix.RLIMIT_SIGPENDING},
	{"memlock", unix.RLIMIT_MEMLOCK},
}

// Limits are the limits a namespace was made with, by name (nsLimits).
type Limits map[string]uint64

// raiseLimits sets each of nsLimits' soft limits to its hard one and
// returns them as the holder's answer states them (formatLimits).
func raiseLimits() (string, error) {
	l := Limits{}
	for _, r := range nsLimits {
		var lim unix.Rlimit
		if err := unix.Getrlimit(r.res, &lim); err != nil {
			return "", fmt.Errorf("reading the %s limit: %w", r.name, err)
		}
		if lim.Cur != lim.Max {
			lim.Cur = lim.Max
			if err := unix.Setrlimit(r.res, &lim); err != nil {
				return "", fmt.Errorf("raising the %s limit to its hard limit: %w", r.name, err)
			}
		}
		l[r.name] = lim.Cur
	}
	return formatLimits(l), nil
}

// formatLimits is "nproc=N,msgqueue=N,sigpending=N,memlock=N", "unlimited"
// for RLIM_INFINITY.
func formatLimits(l Limits) string {
	parts := make([]string, 0, len(nsLimits))
	for _, r := range nsLimits {
		v := "unlimited"
		if l[r.name] != unix.RLIM_INFINITY {
			v = strconv.FormatUint(l[r.name], 10)
		}
		parts = append(parts, r.name+"="+v)
	}
	return strings.Join(parts, ",")
}

// limitsForm is formatLimits' text in words, for an error.
const limitsForm = "nproc=N,msgqueue=N,sigpending=N,memlock=N (N a number or unlimited)"

// parseLimits reads formatLimits' text: every one of nsLimits, once.
func parseLimits(text string) (Limits, error) {
	l := Limits{}
	for _, kv := range strings.Split(text, ",") {
		k, v, ok := strings.Cut(kv, "=")
		known := false
		for _, r := range nsLimits {
			known = known || r.name == k
		}
		if _, dup := l[k]; !ok || !known || dup {
			return nil, fmt.Errorf("the holder's limits %q: want %s", text, limitsForm)
		}
		if v == "unlimited" {
			l[k] = unix.RLIM_INFINITY
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("the holder's limits %q: %s is not a number", text, k)
		}
		l[k] = n
	}
	if len(l) != len(nsLimits) {
		return nil, fmt.Errorf("the holder's limits %q: want %s", text, limitsForm)
	}
	return l, nil
}

// check refuses a namespace made with a limit below our own soft one
// (own reads it): a sandbox nested in it would get less than we have.
func (l Limits) check(own func(res int) (uint64, error)) error {
	for _, r := range nsLimits {
		mine, err := own(r.res)
		if err != nil {
			return fmt.Errorf("reading our %s limit: %w", r.name, err)
		}
		if theirs, ok := l[r.name]; !ok || mine > theirs {
			return fmt.Errorf("its namespace was made under a lower %s limit (%s) than ours (%s), so a sandbox in it would get less: not used",
				r.name, limitText(l[r.name], ok), limitText(mine, true))
		}
	}
	return nil
}

func limitText(v uint64, known bool) string {
	switch {
	case !known:
		return "unknown"
	case v == unix.RLIM_INFINITY:
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// softLimit is our own soft limit of res.
func softLimit(res int) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(res, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
