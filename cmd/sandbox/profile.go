package main

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/alecthomas/kong"

	"sandbox/internal/profilewire"
	"sandbox/internal/userfile"
)

// Defaults for `sandbox run`'s flags come from three places below the
// command line: a profile (--profile FILE, or $SANDBOX_PROFILE), then
// SANDBOX_<FLAG> variables, then the built-in defaults. Kong applies a
// resolver's value only to flags the command line left unset, and the
// resolver below takes the profile's value before the environment's, so
// the precedence is exactly command line > profile > environment > default.
//
// A custom resolver rather than kong's env tags and kong.Configuration:
// kong's loaders ignore unknown keys, cannot name the file and key of a
// bad value, and split every list variable at the flag's own separator
// (--io-max has none: its values hold commas).

// profileCommandKey is the profile key holding the default command.
const profileCommandKey = "command"

// envPrefix starts the variable that defaults a flag: SANDBOX_<FLAG>.
const envPrefix = "SANDBOX_"

// defaults is the resolver of run's flags; one per parse.
type defaults struct {
	lookupEnv func(string) (string, bool)
	run       *kong.Node            // the run command
	flags     map[string]*kong.Flag // run's own flags by long name
	active    bool                  // run is the selected command
	loaded    bool                  // load ran (kong calls it once per element of the command line)
	profile   *profile              // nil without --profile
	env       map[string]any        // flag name -> value from its variable
	sources   map[string]string     // flag name -> where its applied value came from
	runless   bool                  // the model is another command's alone (grammarFor)
}

func newDefaults(lookupEnv func(string) (string, bool)) *defaults {
	return &defaults{lookupEnv: lookupEnv, env: map[string]any{}, sources: map[string]string{}}
}

// option installs the resolver and shows each variable in --help.
func (d *defaults) option() kong.Option {
	return kong.OptionFunc(func(k *kong.Kong) error {
		for _, o := range []kong.Option{
			kong.PostBuild(d.bind),
			kong.Resolvers(d),
			kong.WithBeforeResolve(d.load),
			kong.ValueFormatter(d.formatHelp),
		} {
			if err := o.Apply(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// bind finds the run command in the built model.
func (d *defaults) bind(k *kong.Kong) error {
	for _, n := range k.Model.Children {
		if n.Type == kong.CommandNode && n.Name == "run" {
			d.run = n
		}
	}
	if d.run == nil {
		if d.runless {
			return nil
		}
		return errors.New("no run command in the model")
	}
	d.flags = map[string]*kong.Flag{}
	for _, f := range d.run.Flags {
		d.flags[f.Name] = f
	}
	if d.flags["profile"] == nil {
		return errors.New("run has no --profile flag")
	}
	return nil
}

// envName is the variable defaulting flag f.
func envName(f *kong.Flag) string { return envVar(f.Name) }

// envVar is the variable defaulting run's flag --name.
func envVar(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// envSep separates the values of a repeatable flag in its variable: the
// flag's own separator (','), or ';' for a flag whose values hold commas
// (declared sep:"none", such as --io-max).
func envSep(f *kong.Flag) rune {
	if f.Tag.Sep == -1 {
		return ';'
	}
	return f.Tag.Sep
}

var sepNames = map[rune]string{',': "comma", ';': "semicolon"}

// formatHelp adds "($SANDBOX_FLAG)" to the help of run's flags.
func (d *defaults) formatHelp(v *kong.Value) string {
	f := v.Flag
	if f == nil || d.flags[f.Name] != f {
		return kong.DefaultHelpValueFormatter(v)
	}
	suffix := "($" + envName(f)
	if f.IsSlice() {
		name, ok := sepNames[envSep(f)]
		if !ok {
			name = strconv.QuoteRune(envSep(f))
		}
		suffix += ", " + name + "-separated"
	}
	suffix += ")"
	if h, ok := strings.CutSuffix(v.Help, "."); ok {
		return h + " " + suffix + "."
	}
	return strings.TrimSpace(v.Help + " " + suffix)
}

// load reads the environment and the profile once run is selected, before
// kong resolves: every bad value stops the run, even one the command line
// overrides, so a broken profile or CI setting is found at once.
func (d *defaults) load(ctx *kong.Context) error {
	if d.run == nil || ctx.Selected() != d.run || d.loaded {
		return nil
	}
	d.active, d.loaded = true, true
	for _, f := range d.run.Flags {
		name := envName(f)
		raw, ok := d.lookupEnv(name)
		if !ok || raw == "" {
			continue // an empty variable counts as unset
		}
		var v any = raw
		if f.IsSlice() {
			list := splitList(raw, envSep(f))
			if len(list) == 0 {
				// Separators alone: as empty as --allow-host '', which
				// is refused, and never a policy silently dropped.
				return fmt.Errorf("%s=%q: no value between the separators (unset it to give none)", name, raw)
			}
			v = list
		}
		val, err := checkValue(f, v, true)
		if err != nil {
			return fmt.Errorf("%s=%q: %w (fix the variable or unset it)", name, raw, err)
		}
		d.env[f.Name] = val
	}
	path, given := d.env["profile"].(string)
	for _, p := range ctx.Path { // the command line's --profile, even empty, wins
		if p.Flag == d.flags["profile"] && !p.Resolved {
			path, given = ctx.FlagValue(p.Flag).(string)
		}
	}
	if !given || path == "" {
		return nil
	}
	p, err := loadProfile(path, d.flags)
	if err != nil {
		return err
	}
	d.profile = p
	return nil
}

// splitList splits a list variable at sep ("\," is a literal comma);
// empty elements are dropped.
func splitList(s string, sep rune) []any {
	var out []any
	for _, e := range kong.SplitEscaped(s, sep) {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Resolve supplies an unset flag of run: the profile's value, else the
// environment's.
func (d *defaults) Resolve(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
	if !d.active || d.flags[f.Name] != f {
		return nil, nil
	}
	if d.profile != nil {
		if v, ok := d.profile.values[f.Name]; ok {
			d.sources[f.Name] = d.profile.where(f.Name)
			return v, nil
		}
	}
	if v, ok := d.env[f.Name]; ok {
		d.sources[f.Name] = envName(f)
		return v, nil
	}
	return nil, nil
}

// Validate is part of kong.Resolver; the values were checked by load.
func (d *defaults) Validate(*kong.Application) error { return nil }

// command is the profile's command, for a run given none.
func (d *defaults) command() []string {
	if d.profile == nil {
		return nil
	}
	return d.profile.command
}

// flagRe finds the flags an error message names.
var flagRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`--([a-z][a-z0-9-]*)`) }) // compiled on first use, not at every start

// explain adds to an error of the run where each flag it names got its
// value, when that was a profile or a variable rather than the command line.
func (d *defaults) explain(err error) error {
	if err == nil || len(d.sources) == 0 {
		return err
	}
	var from []string
	for _, m := range flagRe().FindAllStringSubmatch(err.Error(), -1) {
		src, ok := d.sources[m[1]]
		item := "--" + m[1] + " from " + src
		if ok && !slices.Contains(from, item) {
			from = append(from, item)
		}
	}
	if len(from) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(from, "; "))
}

// checkValue converts v (a profile's decoded value, or a variable's text
// when text is set; lists as []any) to what kong takes for flag f, and
// checks it the way the command line does: kong's own mapper, then the
// flag's enum.
func checkValue(f *kong.Flag, v any, text bool) (any, error) {
	var val any
	switch {
	case f.IsBool():
		if s, ok := v.(string); ok && text {
			val = s // kong's mapper: true, false, 1, 0, yes, no
			break
		}
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("expected true or false, not %s", describe(v))
		}
		val = b
	case f.IsSlice():
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("expected a list of strings (the flag is repeatable), not %s", describe(v))
		}
		out := make([]any, 0, len(list))
		for i, e := range list {
			s, ok := scalarText(e)
			if !ok {
				return nil, fmt.Errorf("element %d: expected a string, not %s", i+1, describe(e))
			}
			out = append(out, s)
		}
		val = out
	default:
		s, ok := scalarText(v)
		if !ok {
			return nil, fmt.Errorf("expected a string or a number, not %s", describe(v))
		}
		val = s
	}
	scratch := reflect.New(f.Target.Type()).Elem()
	if err := f.Parse(kong.ScanFromTokens(kong.Token{Type: kong.FlagValueToken, Value: val}), scratch); err != nil {
		return nil, err
	}
	if f.Enum != "" {
		if got := fmt.Sprint(scratch.Interface()); !f.EnumMap()[got] {
			return nil, fmt.Errorf("--%s=%s: use one of %s", f.Name, got, strings.Join(f.EnumSlice(), ", "))
		}
	}
	return val, nil
}

// scalarText is the text of a string or a number (numbers as written in
// decimal: cpus = 0.5 is "0.5").
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return "", false
		}
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

// describe names the kind of a decoded value, for type errors.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "an empty value"
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case string:
		return fmt.Sprintf("the string %q", v)
	case int, int64, uint64, float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		if len(v) == 0 {
			return "an empty list"
		}
		return "a list"
	case map[string]any:
		return "a table"
	case profilewire.Opaque: // of another type, named by the decoder
		return "a " + string(v)
	}
	return fmt.Sprintf("a %T", v)
}

// profile is a decoded profile file.
type profile struct {
	path    string
	values  map[string]any // flag name -> value for kong
	command []string
	lines   map[string]int // key -> line (YAML; TOML's decoder gives none)
}

// where names a key of the profile in messages.
func (p *profile) where(key string) string {
	return fmt.Sprintf("key %q in profile %s", key, p.path)
}

// at prefixes a message about key with the file and, when known, its line.
func (p *profile) at(key string) string {
	if l := p.lines[key]; l > 0 {
		return fmt.Sprintf("profile %s, line %d: key %q", p.path, l, key)
	}
	return fmt.Sprintf("profile %s: key %q", p.path, key)
}

// loadProfile reads and checks the profile at path against run's flags.
func loadProfile(path string, flags map[string]*kong.Flag) (*profile, error) {
	p, raw, keys, err := readProfile(path)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := p.set(k, raw[k], flags); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// readProfile reads and decodes the profile at path: its values by key,
// and its keys in file order; p holds its path and lines, nothing else.
func readProfile(path string) (p *profile, raw map[string]any, keys []string, err error) {
	var format string
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".toml":
		format = profilewire.TOML
	case ".yaml", ".yml":
		format = profilewire.YAML
	default:
		return nil, nil, nil, fmt.Errorf("profile %s: unknown extension %q: name it .toml, .yaml or .yml", path, ext)
	}
	data, err := userfile.Read(path, userfile.MaxConfig)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("profile %s: cannot read it: %w", path, err)
	}
	raw, lines, err := decodeProfile(format, data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("profile %s%w", path, err)
	}
	p = &profile{path: path, values: map[string]any{}, lines: lines}
	keys = make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { // report in file order
		if lines[a] != lines[b] {
			return lines[a] - lines[b]
		}
		return strings.Compare(a, b)
	})
	return p, raw, keys, nil
}

// set checks one key of the profile and keeps its value.
func (p *profile) set(key string, v any, flags map[string]*kong.Flag) error {
	if hasNUL(v) {
		// execve would refuse it as the command's (126, "invalid
		// argument"), a path would be cut at it.
		return fmt.Errorf("%s: a NUL byte, which no argument, path or variable can hold", p.at(key))
	}
	if key == profileCommandKey {
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return fmt.Errorf("%s: expected a non-empty list of strings such as [\"make\", \"test\"], not %s", p.at(key), describe(v))
		}
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s: element %d: expected a string, not %s", p.at(key), i+1, describe(e))
			}
			p.command = append(p.command, s)
		}
		return nil
	}
	f := flags[key]
	if key == "profile" {
		return fmt.Errorf("%s: a profile cannot name another profile", p.at(key))
	}
	if f == nil {
		names := []string{profileCommandKey}
		for n := range flags {
			if n != "profile" {
				names = append(names, n)
			}
		}
		hint := ""
		if s := closest(key, names); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		if _, ok := v.(map[string]any); ok {
			hint = " (a profile has no tables: its keys are flags)"
		}
		return fmt.Errorf("%s: unknown key%s; the keys are the long names of `sandbox run`'s flags, and %q",
			p.at(key), hint, profileCommandKey)
	}
	val, err := checkValue(f, v, false)
	if err != nil {
		return fmt.Errorf("%s: %w", p.at(key), err)
	}
	p.values[key] = val
	return nil
}

// hasNUL says whether v, a profile's value, is or holds a string with a
// NUL byte.
func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.IndexByte(v, 0) >= 0
	case []any:
		return slices.ContainsFunc(v, hasNUL)
	}
	return false
}

// closest is the name nearest to s by edit distance, or "" when none is
// near enough to be a likely typo.
func closest(s string, names []string) string {
	best, bestD := "", len(s)/3+2
	slices.Sort(names)
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
