package control

import (
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "sigkill": syscall.SIGKILL,
		"SIGUSR1": syscall.SIGUSR1, "9": syscall.SIGKILL, "hup": syscall.SIGHUP,
		// Real-time names as kill(1) reads them (before: unknown signal).
		"RTMIN": 34, "SIGRTMIN+1": 35, "rtmax": 64, "RTMAX-2": 62, "RTMIN+30": 64} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "65", "NOPE", "-1", "RTMIN+31", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMIN+x", "RTMINX"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}
