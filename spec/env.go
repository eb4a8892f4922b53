package spec

import (
	"os"
	"sandbox/internal/wire"
	"sandbox/journal"
	"strings"
)

// sessionVars point into the caller's desktop or login session (agents,
// buses, displays): a sandboxed program must not find its way back through
// them.
var sessionVars = map[string]bool{
	"SSH_AUTH_SOCK": true, "SSH_AGENT_PID": true, "SSH_CONNECTION": true, "SSH_CLIENT": true, "SSH_TTY": true,
	"DBUS_SESSION_BUS_ADDRESS": true, "DBUS_SYSTEM_BUS_ADDRESS": true, "XDG_RUNTIME_DIR": true,
	"DISPLAY": true, "WAYLAND_DISPLAY": true, "XAUTHORITY": true, "GPG_AGENT_INFO": true,
	"SESSION_MANAGER": true, "KRB5CCNAME": true, "DOCKER_HOST": true, "CONTAINER_HOST": true,
	"TMUX": true, "TMUX_PANE": true, "STY": true, "WINDOWID": true, "XDG_SESSION_ID": true,
	"GNOME_KEYRING_CONTROL": true, "KITTY_LISTEN_ON": true, "DESKTOP_STARTUP_ID": true,
}

// buildEnv computes the payload's environment: the caller's minus session
// variables (or nothing with clear), then --env settings in order.
func buildEnv(host []string, sets []string, clear bool, home string) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	if clear {
		set("PATH", wire.DefaultPath)
		if home != "" {
			set("HOME", home)
		}
		if t := os.Getenv("TERM"); t != "" {
			set("TERM", t)
		}
	} else {
		for _, kv := range host {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || sessionVars[k] {
				continue
			}
			set(k, v)
		}
		if _, ok := vals["PATH"]; !ok {
			set("PATH", wire.DefaultPath)
		}
	}
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" || strings.ContainsAny(k, "\x00") || strings.ContainsRune(v, 0) {
			return nil, journal.Usagef("--env %q: expected KEY=VALUE or KEY", kv)
		}
		if wire.BadEnvName(k) {
			return nil, journal.Usagef("--env %q: a variable's name cannot hold a control character (a newline would read as a second variable)", kv)
		}
		if !ok {
			hv, present := os.LookupEnv(k)
			if !present {
				continue
			}
			v = hv
		}
		set(k, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}
