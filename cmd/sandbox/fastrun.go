package main

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/alecthomas/kong"
)

// runFlag is one of run's flags as kong reads runCmd's tags: its field,
// long name, default, enum and how its values are read.
type runFlag struct {
	field   int
	name    string
	kind    reflect.Kind // Bool, String, Int, Uint32 or Slice (of string)
	def     string
	enum    []string
	sepNone bool // a list flag whose values kong does not split at ','
	path    bool // type:"path": kong.ExpandPath
}

// runFlags are run's flags by long and by short name, read once from
// runCmd's tags (TestFastRunFlagsAreKongs holds them equal to kong's).
var runFlags = sync.OnceValues(func() (map[string]*runFlag, map[string]*runFlag) {
	long, short := map[string]*runFlag{}, map[string]*runFlag{}
	t := reflect.TypeFor[runCmd]()
	for i := range t.NumField() {
		sf := t.Field(i)
		if _, arg := sf.Tag.Lookup("arg"); arg {
			continue
		}
		f := &runFlag{field: i, name: sf.Tag.Get("name"), kind: sf.Type.Kind(), def: sf.Tag.Get("default"),
			sepNone: sf.Tag.Get("sep") == "none", path: sf.Tag.Get("type") == "path"}
		if f.name == "" {
			f.name = kebab(sf.Name)
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		long[f.name] = f
		if sh := sf.Tag.Get("short"); sh != "" {
			short[sh] = f
		}
	}
	return long, short
})

// kebab is kong's flag name of a field named in plain CamelCase
// (ReadOnly → read-only); fields named otherwise carry a name tag.
func kebab(s string) string {
	var b strings.Builder
	for i, r := range s {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fastRun reads `run [FLAGS] [--] CMD [ARG...]` without kong: building
// kong's model of run's ~60 flags and parsing cost ~3 ms of every run's
// start. It returns run's values, the flags given (on the command line or
// by a SANDBOX_<FLAG> variable, as kong's resolver counts them) and the
// variable each flag set by one came from, or ok false for anything else,
// which kong then parses, so that help, errors, exit codes and profiles
// stay kong's: a profile (--profile or SANDBOX_PROFILE), an unknown or
// short-joined form (-dv, -eA), a bool given a value, an empty value or
// one that starts like a flag, a backslash, a ',' in a list flag's value
// (kong splits there), a number not plainly decimal, a value not in a
// flag's enum, no command; and a variable whose value it would not take
// on the command line, or that leaves a list empty (kong checks every
// variable, even one the command line overrides, and says which is
// wrong). TestFastRunSameAsKong holds the values equal to kong's.
func fastRun(args []string, lookupEnv func(string) (string, bool)) (r runCmd, given map[string]bool, fromEnv map[string]string, ok bool) {
	if len(args) < 2 || args[0] != "run" {
		return r, nil, nil, false
	}
	long, short := runFlags()
	if v, set := lookupEnv(envVar("profile")); set && v != "" {
		return r, nil, nil, false // defaults' resolver loads it
	}
	v := reflect.ValueOf(&r).Elem()
	given = map[string]bool{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 == len(args) {
				return runCmd{}, nil, nil, false
			}
			r.Command = append([]string{"--"}, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") {
			// The command's first word: kong passes it and every word
			// after it through (passthrough:"partial").
			r.Command = slices.Clone(args[i:])
			break
		}
		var f *runFlag
		val, inline := "", false
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, val, inline = strings.Cut(name, "=")
			f = long[name]
		} else if len(a) == 2 {
			f = short[a[1:]]
		}
		if f == nil || f.name == "profile" {
			return runCmd{}, nil, nil, false
		}
		given[f.name] = true
		fv := v.Field(f.field)
		if f.kind == reflect.Bool {
			if inline {
				return runCmd{}, nil, nil, false
			}
			fv.SetBool(true)
			continue
		}
		if !inline {
			if i+1 == len(args) {
				return runCmd{}, nil, nil, false
			}
			i++
			val = args[i]
		}
		if val == "" || strings.HasPrefix(val, "-") || strings.Contains(val, `\`) {
			return runCmd{}, nil, nil, false
		}
		if !setRunFlag(f, fv, val) {
			return runCmd{}, nil, nil, false
		}
	}
	if len(r.Command) == 0 {
		return runCmd{}, nil, nil, false
	}
	fromEnv = map[string]string{}
	for name, f := range long {
		raw, set := lookupEnv(envVar(name))
		if !set || raw == "" || name == "profile" {
			continue // an empty variable counts as unset
		}
		val := reflect.New(v.Field(f.field).Type()).Elem()
		if !envValue(f, val, raw) {
			return runCmd{}, nil, nil, false
		}
		if !given[name] { // the command line wins
			v.Field(f.field).Set(val)
			given[name], fromEnv[name] = true, envVar(name)
		}
	}
	for _, f := range long {
		if f.def != "" && !given[f.name] && !setRunFlag(f, v.Field(f.field), f.def) {
			return runCmd{}, nil, nil, false
		}
	}
	return r, given, fromEnv, true
}

// envValue sets fv from raw, the text of flag f's variable, as kong's
// resolver would (defaults.load): a bool as kong's mapper reads one, a
// list split at the flag's separator with its empty elements dropped (and
// its paths kept as written: kong expands a list's paths only on the
// command line); false where it would refuse it or read it otherwise (an
// escape).
func envValue(f *runFlag, fv reflect.Value, raw string) bool {
	if strings.Contains(raw, `\`) {
		return false
	}
	switch f.kind {
	case reflect.Bool:
		switch strings.ToLower(raw) {
		case "true", "1", "yes":
			fv.SetBool(true)
		case "false", "0", "no":
			fv.SetBool(false)
		default:
			return false
		}
		return true
	case reflect.Slice:
		sep := ","
		if f.sepNone {
			sep = ";"
		}
		verbatim := *f
		verbatim.path = false
		n := 0
		for _, e := range strings.Split(raw, sep) {
			if e == "" {
				continue
			}
			if !setRunFlag(&verbatim, fv, e) {
				return false
			}
			n++
		}
		return n > 0
	}
	return setRunFlag(f, fv, raw)
}

// runFlagCount is how many times run's flag name is given in args (`run`
// and its words), as --name VALUE or --name=VALUE: among run's own flags
// only, read as fastRun reads them, up to "--" or the command's first
// word; the command's own words are not run's.
func runFlagCount(args []string, name string) int {
	if len(args) == 0 || args[0] != "run" {
		return 0
	}
	long, short := runFlags()
	n := 0
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		var f *runFlag
		inline := false
		if l, ok := strings.CutPrefix(a, "--"); ok {
			l, _, inline = strings.Cut(l, "=")
			f = long[l]
		} else if len(a) == 2 {
			f = short[a[1:]]
		}
		if f == nil {
			continue // kong says what it is
		}
		if f.name == name {
			n++
		}
		if f.kind != reflect.Bool && !inline {
			i++ // its value
		}
	}
	return n
}

// setRunFlag sets field fv of flag f from val as kong would; false where
// kong would refuse it or read it otherwise.
func setRunFlag(f *runFlag, fv reflect.Value, val string) bool {
	if f.path {
		val = kong.ExpandPath(val)
	}
	switch f.kind {
	case reflect.String:
		if f.enum != nil && !slices.Contains(f.enum, val) {
			return false
		}
		fv.SetString(val)
	case reflect.Slice:
		if !f.sepNone && strings.Contains(val, ",") {
			return false
		}
		fv.Set(reflect.Append(fv, reflect.ValueOf(val)))
	case reflect.Int, reflect.Uint32:
		// kong reads a number in base 0: "010" is 8, "0x10" 16.
		if val != "0" && (val[0] < '1' || val[0] > '9') {
			return false
		}
		n, err := strconv.ParseUint(val, 10, fv.Type().Bits())
		if err != nil || (f.kind == reflect.Int && n > uint64(1<<(fv.Type().Bits()-1)-1)) {
			return false
		}
		if f.kind == reflect.Int {
			fv.SetInt(int64(n))
		} else {
			fv.SetUint(n)
		}
	default:
		return false
	}
	return true
}
