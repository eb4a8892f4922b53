package main

import (
	"strings"
	"time"
)

// fastParse reads the plain command lines of the hot commands (`version`,
// `ps [-a] [--json]`, `exec [FLAGS] NAME -- CMD [ARG...]`) and of the
// lifecycle commands (`kill NAME [SIGNAL]`, `stop [--time D] NAME`, `logs
// [-f] NAME`, `rm NAME`) without kong: building kong's model of exec,
// interpolating its help and parsing took ~10% of the CPU of a `sandbox
// exec`. ok false for anything else (help, an unknown or repeated-value
// form, an empty value, a value kong would split or unescape, a word that
// could be a flag): kong then parses it, so help, errors and exit codes
// stay kong's. TestFastParseSameAsKong holds the values equal to kong's.
func fastParse(args []string) (c cli, name string, ok bool) {
	if len(args) == 0 {
		return c, "", false
	}
	switch args[0] {
	case "version":
		return c, "version", len(args) == 1
	case "ps":
		for _, a := range args[1:] {
			switch a {
			case "-a", "--all":
				c.Ps.All = true
			case "--json":
				c.Ps.JSON = true
			default:
				return c, "", false
			}
		}
		return c, "ps", true
	case "exec":
		return fastExec(args[1:])
	case "kill", "stop", "logs", "rm":
		return fastLifecycle(args[0], args[1:])
	}
	return c, "", false
}

// fastLifecycle parses the words after kill, stop, logs or rm: their
// positionals in order (kill's SIGNAL TERM when absent, as kong's default)
// and their flags anywhere among them, as kong takes them; ok false for a
// word that starts like a flag where none is expected, an empty one, a
// missing or extra positional, a --time given twice or not one
// time.ParseDuration reads (kong's), which kong then says.
func fastLifecycle(cmd string, args []string) (c cli, name string, ok bool) {
	var pos []string
	timed := false
	c.Stop.Time = 10 * time.Second // stopCmd's default
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "":
			return c, "", false
		case cmd == "logs" && (a == "-f" || a == "--follow"):
			c.Logs.Follow = true
		case cmd == "stop" && (a == "--time" || strings.HasPrefix(a, "--time=")):
			val, inline := strings.CutPrefix(a, "--time=")
			if !inline {
				if i+1 == len(args) {
					return c, "", false
				}
				i++
				val = args[i]
			}
			d, err := time.ParseDuration(val)
			if timed || val == "" || strings.HasPrefix(val, "-") || err != nil {
				return c, "", false
			}
			c.Stop.Time, timed = d, true
		case strings.HasPrefix(a, "-"):
			return c, "", false
		default:
			pos = append(pos, a)
		}
	}
	switch {
	case cmd == "kill" && (len(pos) == 1 || len(pos) == 2):
		c.Kill.Name, c.Kill.Signal = pos[0], "TERM"
		if len(pos) == 2 {
			c.Kill.Signal = pos[1]
		}
	case cmd != "kill" && len(pos) == 1:
		c.Stop.Name, c.Logs.Name, c.Rm.Name = pos[0], pos[0], pos[0]
	default:
		return c, "", false
	}
	return c, cmd, true
}

// fastExec parses exec's flags and NAME up to the first "--"; the words
// after it are the command, as kong's passthrough takes them.
func fastExec(args []string) (c cli, name string, ok bool) {
	e := &c.Exec
	e.TTY = "auto"
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if e.Name == "" || i+1 == len(args) {
				return c, "", false
			}
			e.Command = append([]string{"--"}, args[i+1:]...)
			return c, "exec", true
		}
		flag, val, inline := strings.Cut(a, "=")
		if !inline && (a == "-e" || a == "--env" || a == "--tty" || a == "--chdir") {
			if i+1 == len(args) {
				return c, "", false
			}
			i++
			val = args[i]
		} else if !inline || !strings.HasPrefix(a, "--") {
			if strings.HasPrefix(a, "-") || e.Name != "" {
				return c, "", false
			}
			e.Name = a
			continue
		}
		// Kong refuses or reads otherwise an empty value, one that starts
		// like a flag, and splits a list flag's at "," (with "\" escapes).
		if val == "" || strings.HasPrefix(val, "-") {
			return c, "", false
		}
		switch flag {
		case "-e", "--env":
			if strings.ContainsAny(val, `,\`) {
				return c, "", false
			}
			e.Env = append(e.Env, val)
		case "--tty":
			if val != "auto" && val != "always" && val != "never" {
				return c, "", false
			}
			e.TTY = val
		case "--chdir":
			e.Chdir = val
		default:
			return c, "", false
		}
	}
	return c, "", false
}
