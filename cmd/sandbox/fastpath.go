package main

import "strings"

// fastParse reads the plain command lines of the hot commands (`version`,
// `ps [-a] [--json]`, `exec [FLAGS] NAME -- CMD [ARG...]`) without kong:
// building kong's model of exec, interpolating its help and parsing took
// ~10% of the CPU of a `sandbox exec`. ok false for anything else (help, an
// unknown or repeated-value form, an empty value, a value kong would split
// or unescape, a word that could be a flag): kong then parses it, so help,
// errors and exit codes stay kong's. TestFastParseSameAsKong holds the
// values equal to kong's.
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
	}
	return c, "", false
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
