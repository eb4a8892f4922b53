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
// start. With them it reads what defaults' resolver would: the profile
// (--profile, else SANDBOX_PROFILE) and the SANDBOX_<FLAG> variables, the
// command line winning over the profile and the profile over a variable.
// It returns run's values and the flags given (on the command line, or by
// the profile or a variable, as kong counts them), and on success leaves
// in def what the run reads of the resolver (the profile, for its command;
// where each flag's value came from, for explain). It returns ok false for
// anything else, which kong then parses, so that help, errors and exit
// codes stay kong's: an unknown or short-joined form (-dv, -eA), a bool
// given a value, an empty value or one that starts like a flag, a
// backslash, a ',' in a list flag's value (kong splits there), a number
// not plainly decimal, a value not in a flag's enum, no command; a
// variable or profile value it would not take (kong checks every one, even
// where the command line wins, and says which is wrong), a profile it
// cannot read or with a key that is no flag. TestFastRunSameAsKong and
// TestFastRunDefaultsSameAsKong hold the values equal to kong's.
func fastRun(args []string, def *defaults) (r runCmd, given map[string]bool, ok bool) {
	if len(args) < 2 || args[0] != "run" {
		return r, nil, false
	}
	long, short := runFlags()
	v := reflect.ValueOf(&r).Elem()
	given = map[string]bool{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 == len(args) {
				return runCmd{}, nil, false
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
		if f == nil {
			return runCmd{}, nil, false
		}
		given[f.name] = true
		fv := v.Field(f.field)
		if f.kind == reflect.Bool {
			if inline {
				return runCmd{}, nil, false
			}
			fv.SetBool(true)
			continue
		}
		if !inline {
			if i+1 == len(args) {
				return runCmd{}, nil, false
			}
			i++
			val = args[i]
		}
		if val == "" || strings.HasPrefix(val, "-") || strings.Contains(val, `\`) {
			return runCmd{}, nil, false
		}
		if !setRunFlag(f, fv, val) {
			return runCmd{}, nil, false
		}
	}
	// The variables, each checked; then the profile they or the command
	// line name.
	fromEnv := map[string]reflect.Value{}
	for name, f := range long {
		raw, set := def.lookupEnv(envVar(name))
		if !set || raw == "" {
			continue // an empty variable counts as unset
		}
		val := reflect.New(v.Field(f.field).Type()).Elem()
		if !envValue(f, val, raw) {
			return runCmd{}, nil, false
		}
		fromEnv[name] = val
	}
	path := r.Profile
	if !given["profile"] {
		if val, ok := fromEnv["profile"]; ok {
			path = val.String()
		}
	}
	var prof *profile
	var fromProfile map[string]reflect.Value
	if path != "" {
		if prof, fromProfile, ok = fastProfile(path, long, v); !ok {
			return runCmd{}, nil, false
		}
	}
	if len(r.Command) == 0 && (prof == nil || len(prof.command) == 0) {
		return runCmd{}, nil, false
	}
	sources := map[string]string{}
	for name, f := range long {
		if given[name] {
			continue
		}
		if val, ok := fromProfile[name]; ok {
			v.Field(f.field).Set(val)
			given[name], sources[name] = true, prof.where(name)
		} else if val, ok := fromEnv[name]; ok {
			v.Field(f.field).Set(val)
			given[name], sources[name] = true, envVar(name)
		}
	}
	for _, f := range long {
		if f.def != "" && !given[f.name] && !setRunFlag(f, v.Field(f.field), f.def) {
			return runCmd{}, nil, false
		}
	}
	def.profile, def.sources = prof, sources
	return r, given, true
}

// fastProfile reads the profile at path as defaults.load would: every key
// a flag of run (v's fields) or the command, every value one kong takes
// for it (profileValue); ok false where kong would refuse the profile or
// read it otherwise.
func fastProfile(path string, long map[string]*runFlag, v reflect.Value) (p *profile, values map[string]reflect.Value, ok bool) {
	p, raw, keys, err := readProfile(path)
	if err != nil {
		return nil, nil, false
	}
	values = map[string]reflect.Value{}
	for _, k := range keys {
		val := raw[k]
		if hasNUL(val) || k == "profile" {
			return nil, nil, false
		}
		if k == profileCommandKey {
			list, ok := val.([]any)
			if !ok || len(list) == 0 {
				return nil, nil, false
			}
			for _, e := range list {
				s, ok := e.(string)
				if !ok {
					return nil, nil, false
				}
				p.command = append(p.command, s)
			}
			continue
		}
		f := long[k]
		if f == nil {
			return nil, nil, false
		}
		fv := reflect.New(v.Field(f.field).Type()).Elem()
		if !profileValue(f, fv, val) {
			return nil, nil, false
		}
		values[k] = fv
	}
	return p, values, true
}

// profileValue sets fv from v, a profile's decoded value for flag f, as
// kong's resolver would (checkValue): a bool only from a boolean, a list
// from a non-empty list of strings and numbers, each element as written
// (kong neither splits a list's elements from a profile nor expands their
// paths), any other from a string or a number read as on the command line.
func profileValue(f *runFlag, fv reflect.Value, v any) bool {
	switch f.kind {
	case reflect.Bool:
		b, ok := v.(bool)
		fv.SetBool(b)
		return ok
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return false
		}
		for _, e := range list {
			s, ok := scalarText(e)
			if !ok || s == "" || strings.Contains(s, `\`) {
				return false
			}
			fv.Set(reflect.Append(fv, reflect.ValueOf(s)))
		}
		return true
	}
	s, ok := scalarText(v)
	return ok && s != "" && !strings.Contains(s, `\`) && setRunFlag(f, fv, s)
}

// envValue sets fv from raw, the text of flag f's variable, as kong's
// resolver would (defaults.load): a bool as kong's mapper reads one, a
// list split at the flag's separator with its empty elements dropped and
// each element as written (as a profile's); false where it would refuse
// it or read it otherwise (an escape).
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
		var list []any
		for _, e := range strings.Split(raw, sep) {
			if e != "" {
				list = append(list, e)
			}
		}
		return profileValue(f, fv, list)
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
