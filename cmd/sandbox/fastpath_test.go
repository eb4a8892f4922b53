package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// kongParse parses args as runCLI's kong path does (the whole model, the
// command's words after the first cut off by splitCommand and appended
// after); ok false when kong refuses them or prints help.
func kongParse(t *testing.T, args []string) (c cli, name string, ok bool) {
	c, ctx, ok := kongContext(t, args)
	if !ok {
		return c, "", false
	}
	name, _, _ = strings.Cut(ctx.Command(), " ")
	return c, name, true
}

// kongContext parses args with kong as runCLI does, with no variables set.
func kongContext(t *testing.T, args []string) (c cli, ctx *kong.Context, ok bool) {
	t.Helper()
	c, ctx, _, ok = kongContextEnv(t, args, func(string) (string, bool) { return "", false })
	return c, ctx, ok
}

// kongContextEnv parses args with kong as runCLI does, with the variables
// lookupEnv gives; def is the resolver that read them.
func kongContextEnv(t *testing.T, args []string, lookupEnv func(string) (string, bool)) (c cli, ctx *kong.Context, def *defaults, ok bool) {
	t.Helper()
	var out strings.Builder
	code := -1
	def = newDefaults(lookupEnv)
	parser, err := kong.New(&c, kong.Name("sandbox"), kong.Writers(&out, &out), kong.Exit(func(c int) { code = c }),
		def.option(), helpOption(), decimalNumbers())
	if err != nil {
		t.Fatal(err)
	}
	kargs, rest := splitCommand(args)
	ctx, err = parser.Parse(kargs)
	if err != nil || code >= 0 || emptyValue(ctx) != nil {
		return c, nil, def, false
	}
	c.Run.Command = append(c.Run.Command, rest...)
	c.Exec.Command = append(c.Exec.Command, rest...)
	return c, ctx, def, true
}

// selected is what the program reads of c for command name: its field.
func selected(c cli, name string) string {
	f := reflect.ValueOf(c).FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, name) })
	if !f.IsValid() {
		return ""
	}
	return fmt.Sprintf("%#v", f.Interface())
}

// TestFastParseSameAsKong: every command line fastParse takes gives the
// values kong gives; the common forms are taken (else the fast path is
// dead), and what it leaves to kong includes every help, error and
// doubtful form.
func TestFastParseSameAsKong(t *testing.T) {
	taken := [][]string{
		{"version"}, {"ps"}, {"ps", "-a"}, {"ps", "--all"}, {"ps", "--json"}, {"ps", "-a", "--json"}, {"ps", "--json", "-a", "-a"},
		{"exec", "box", "--", "true"}, {"exec", "box", "--", "sh", "-c", "echo a,b; exit 3"},
		{"exec", "box", "--", "--help"}, {"exec", "box", "--", "-x", "--", "y"}, {"exec", "box", "--", ""},
		{"exec", "--tty=never", "-e", "A", "box", "--", "sh", "-c", "x"}, {"exec", "--tty", "always", "box", "--", "ls"},
		{"exec", "-e", "A=1", "--env", "B=2", "--env=C=3=4", "box", "--", "env"},
		{"exec", "--chdir", "/tmp", "box", "--", "pwd"}, {"exec", "--chdir=/", "--tty=auto", "box", "--", "pwd"},
		{"exec", "box", "-e", "A=1", "--tty", "never", "--", "true"}, {"exec", "--tty", "never", "--tty", "always", "box", "--", "x"},
		{"exec", "a=b", "--", "true"}, {"exec", "box.1_x-y", "--", "true"}, {"exec", "-e", "A= b", "box", "--", "true"},
		{"kill", "box"}, {"kill", "box", "KILL"}, {"kill", "box", "9"}, {"kill", "box", "SIGUSR1"},
		{"stop", "box"}, {"stop", "--time", "3s", "box"}, {"stop", "box", "--time=0"}, {"stop", "--time=1m30s", "box"},
		{"logs", "box"}, {"logs", "-f", "box"}, {"logs", "box", "--follow"}, {"logs", "-f", "-f", "box"}, {"rm", "box"},
	}
	left := [][]string{
		nil, {"--help"}, {"version", "extra"}, {"version", "--help"}, {"ps", "--help"}, {"ps", "-h"}, {"ps", "extra"},
		{"ps", "--json=true"}, {"ps", "-aa"}, {"ps", "--bogus"}, {"run", "--", "true"},
		{"kill"}, {"kill", "--help"}, {"kill", "box", "-9"}, {"kill", "box", "TERM", "x"}, {"kill", "", "TERM"}, {"kill", "--", "box"},
		{"stop"}, {"stop", "a", "b"}, {"stop", "--time", "5", "box"}, {"stop", "--time", "box"}, {"stop", "box", "--time"},
		{"stop", "--time=-1s", "box"}, {"stop", "--time", "1s", "--time", "2s", "box"}, {"stop", "--time=", "box"}, {"stop", "-t", "1s", "box"},
		{"logs"}, {"logs", "--follow=true", "box"}, {"logs", "-ff", "box"}, {"logs", "box", "x"}, {"rm"}, {"rm", "a", "b"},
		{"rm", "-f", "box"}, {"rm", "--help"},
		{"exec"}, {"exec", "--help"}, {"exec", "box"}, {"exec", "box", "--"}, {"exec", "--", "true"},
		{"exec", "box", "true"}, {"exec", "box", "other", "--", "true"}, {"exec", "-h", "box", "--", "true"},
		{"exec", "--bogus", "box", "--", "true"}, {"exec", "-e", "", "box", "--", "true"}, {"exec", "--env=", "box", "--", "true"},
		{"exec", "-e", "A=1,B=2", "box", "--", "true"}, {"exec", "-e", `A=\,`, "box", "--", "true"}, {"exec", "-e", "-x", "box", "--", "true"},
		{"exec", "-eA=1", "box", "--", "true"}, {"exec", "-e=A", "box", "--", "true"}, {"exec", "--tty=x", "box", "--", "true"},
		{"exec", "--tty", "box", "--", "true"}, {"exec", "--tty="}, {"exec", "--chdir", "", "box", "--", "true"},
		{"exec", "--chdir", "--", "box", "--", "true"}, {"exec", "box", "-e"}, {"exec", "-box", "--", "true"}, {"exec", "box", "--help", "--", "x"},
	}
	for _, args := range taken {
		if _, _, ok := fastParse(args); !ok {
			t.Errorf("%q: left to kong, want the fast path", args)
		}
	}
	for _, args := range left {
		if _, _, ok := fastParse(args); ok {
			t.Errorf("%q: taken by the fast path, want kong", args)
		}
	}
	for _, args := range append(taken, left...) {
		fc, fname, ok := fastParse(args)
		if !ok {
			continue
		}
		kc, kname, kok := kongParse(t, args)
		if !kok {
			t.Errorf("%q: fast path took what kong refuses", args)
			continue
		}
		if fname != kname || selected(fc, fname) != selected(kc, kname) {
			t.Errorf("%q: fast path %s %s, kong %s %s", args, fname, selected(fc, fname), kname, selected(kc, kname))
		}
	}
}

// kongRun parses a run command line as runCLI's kong path does, with no
// variables set; ok false when kong refuses it or prints help.
func kongRun(t *testing.T, args []string) (r runCmd, given string, ok bool) {
	c, ctx, ok := kongContext(t, args)
	if !ok || ctx.Command() != "run <command>" && ctx.Command() != "run" {
		return r, "", false
	}
	return c.Run, fmt.Sprint(flagGiven(ctx, "uid"), flagGiven(ctx, "gid")), true
}

// TestIntegerFlagsDecimal: --uid, --gid and --preserve-fds are read in
// base 10 only; before, kong's base 0 made --uid 010 uid 8 and 0x3e8 1000.
func TestIntegerFlagsDecimal(t *testing.T) {
	for _, v := range []string{"010", "0x3e8", "0o17", "0b11", "1_000", "+1", ""} {
		for _, flag := range []string{"--uid", "--gid", "--preserve-fds"} {
			if _, _, ok := kongContext(t, []string{"run", flag + "=" + v, "--", "x"}); ok {
				t.Errorf("%s=%s: taken, want refused", flag, v)
			}
		}
	}
	c, _, ok := kongContext(t, []string{"run", "--uid", "10", "--gid=0", "--preserve-fds", "3", "--", "x"})
	if !ok || c.Run.UID != 10 || c.Run.GID != 0 || c.Run.PreserveFds != 3 {
		t.Errorf("decimal values: %v %+v", ok, c.Run)
	}
}

// TestFastRunSameAsKong: every run command line fastRun takes gives the
// values (and the --uid/--gid given or not) kong gives, one line per flag
// of run with each value kind; the common forms are taken, and what it
// leaves to kong includes help, errors, profiles and doubtful forms.
func TestFastRunSameAsKong(t *testing.T) {
	taken := [][]string{
		{"run", "--", "true"}, {"run", "true"}, {"run", "make", "-j4", "--net=none"}, {"run", "--net=none", "--", "true"},
		{"run", "--net", "none", "--read-only", "-v", "--", "sh", "-c", "a,b; x\\y"}, {"run", "--map=single", "--", "id"},
		{"run", "-d", "--name", "box", "--", "sleep", "9"}, {"run", "--uid", "1000", "--gid=0", "--", "id"},
		{"run", "-e", "A=1", "--env=B=2=3", "-e", "C", "--", "env"}, {"run", "--bind", "/tmp:/mnt:ro", "--bind=/a", "--", "ls"},
		{"run", "-e", "NO_PROXY=a,b", "--", "x"},
		{"run", "--allow-host", "example.com:80,443", "--allow-cidr=10.0.0.0/8:22", "--", "x"}, {"run", "--upper", "rel/dir", "--", "x"},
		{"run", "--layer", "~/l1", "--layer=/l2", "--rootfs", ".", "--", "ls"}, {"run", "--net=none", "--net=host", "--", "x"},
		{"run", "--preserve-fds", "2", "--", "x"}, {"run", "--uid=0", "--", "x"}, {"run", "-p", "8080:80", "--", "x"},
		{"run", "--memory", "64M", "--pids=10", "--cpus", "0.5", "--io-max", "8:0 rbps=1,wbps=2", "--", "x"},
		{"run", "--", "--help"}, {"run", "--", "-x", "--", "y"}, {"run", "--", ""}, {"run", "--tty", "never", "--", "x"},
	}
	left := [][]string{
		{"run"}, {"run", "--"}, {"run", "--help"}, {"run", "-h", "--", "x"}, {"run", "--net=bogus", "--", "x"}, {"run", "--net"},
		{"run", "--bogus", "--", "x"}, {"run", "-dv", "--", "x"}, {"run", "-eA=1", "--", "x"}, {"run", "-e=A", "--", "x"},
		{"run", "--read-only=true", "--", "x"}, {"run", "--name=", "--", "x"}, {"run", "--name", "", "--", "x"},
		{"run", "--name", "-x", "--", "x"}, {"run", "-e", `A=\,`, "--", "x"},
		{"run", "--chdir", `a\b`, "--", "x"}, {"run", "--uid", "010", "--", "x"}, {"run", "--uid", "0x10", "--", "x"},
		{"run", "--uid", "-1", "--", "x"}, {"run", "--uid", "4294967296", "--", "x"}, {"run", "--preserve-fds", "9223372036854775808", "--", "x"},
		{"run", "--profile", "p.yaml", "--", "x"}, {"run", "--profile=p.yaml", "--", "x"}, {"exec", "box", "--", "x"}, {"version"},
	}
	// One line per flag of run: each value of an enum, a number, a path,
	// a word, a list given twice.
	long, _ := runFlags()
	for name, f := range long {
		switch {
		case name == "profile":
		case f.kind == reflect.Bool:
			taken = append(taken, []string{"run", "--" + name, "--", "x"})
		case f.enum != nil:
			for _, e := range f.enum {
				taken = append(taken, []string{"run", "--" + name + "=" + e, "--", "x"})
			}
		case f.kind == reflect.Int || f.kind == reflect.Uint32:
			taken = append(taken, []string{"run", "--" + name, "3", "--", "x"})
		case f.kind == reflect.Slice:
			taken = append(taken, []string{"run", "--" + name, "a/b", "--" + name + "=c:d", "--", "x"})
		default:
			taken = append(taken, []string{"run", "--" + name, "a/b", "--", "x"})
		}
	}
	for _, args := range taken {
		fr, fgiven, ok := fastRun(args, newDefaults(func(string) (string, bool) { return "", false }))
		if !ok {
			t.Errorf("%q: left to kong, want the fast path", args)
			continue
		}
		kr, kgiven, kok := kongRun(t, args)
		if !kok {
			t.Errorf("%q: fast path took what kong refuses", args)
			continue
		}
		if f, k := fmt.Sprintf("%#v", fr), fmt.Sprintf("%#v", kr); f != k {
			t.Errorf("%q:\nfast path %s\nkong      %s", args, f, k)
		}
		if g := fmt.Sprint(fgiven["uid"], fgiven["gid"]); g != kgiven {
			t.Errorf("%q: --uid/--gid given: fast path %s, kong %s", args, g, kgiven)
		}
	}
	for _, args := range left {
		if _, _, ok := fastRun(args, newDefaults(func(string) (string, bool) { return "", false })); ok {
			t.Errorf("%q: taken by the fast path, want kong", args)
		}
	}
}

// TestFastRunDefaultsSameAsKong: a run whose flags a profile or
// SANDBOX_<FLAG> variables set takes the fast path (before, every such run
// paid kong's model, ~1.8 ms here) with the values, the flags given, the
// sources and the profile's command kong's resolver gives, the command
// line winning over the profile and the profile over a variable; what
// kong refuses or reads otherwise (a value not in the enum, a number not
// plainly decimal, an escape, a list of separators alone, a bad value the
// command line overrides, a profile's unknown key or wrong type, an
// unreadable profile) is left to it. One variable and one profile key per
// flag of run.
func TestFastRunDefaultsSameAsKong(t *testing.T) {
	type tc struct {
		env  map[string]string
		args []string
	}
	dir := t.TempDir()
	profile := func(name, text string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := []string{"run", "--", "x"}
	toml := profile("p.toml", "hostname = \"prof\"\nread-only = true\nbind = [\"/prof\", \"rel\"]\nenv = [\"A=1,2\"]\nuid = 1000\ncpus = 0.5\nupper = \"rel/up\"\ncommand = [\"make\", \"test\"]\n")
	yaml := profile("p.yaml", "hostname: prof\nnet: none\nio-max: [\"8:0 rbps=1,wbps=2\"]\npids: 10\ndetach: false\n")
	taken := []tc{
		{map[string]string{"SANDBOX_NET": "none"}, run},
		{map[string]string{"SANDBOX_NET": "none"}, []string{"run", "--net=host", "--", "x"}},
		{map[string]string{"SANDBOX_NET": ""}, run},
		{map[string]string{"SANDBOX_READ_ONLY": "YES", "SANDBOX_DETACH": "0"}, run},
		{map[string]string{"SANDBOX_ALLOW_HOST": "a.test:80,443;;b.test", "SANDBOX_DNS": "10.0.0.1"}, run},
		{map[string]string{"SANDBOX_BIND": "/a:/b,,/c:/d:ro", "SANDBOX_ENV": "A=1,B"}, []string{"run", "--bind", "/e", "--", "x"}},
		{map[string]string{"SANDBOX_UID": "1000", "SANDBOX_GID": "0"}, run},
		{map[string]string{"SANDBOX_UID": "1000"}, []string{"run", "--uid", "5", "--", "x"}},
		{map[string]string{"SANDBOX_IO_MAX": "8:0 rbps=1,wbps=2;8:16 riops=3", "SANDBOX_MEMORY": "64M"}, run},
		{map[string]string{"SANDBOX_LAYER": "~/l1,rel", "SANDBOX_UPPER": "rel/up"}, run},
		{nil, []string{"run", "--profile", toml, "--", "x"}},
		{nil, []string{"run", "--profile", toml}}, // the profile's command
		{nil, []string{"run", "--profile=" + yaml, "--hostname", "cli", "--", "x"}},
		{map[string]string{"SANDBOX_PROFILE": yaml, "SANDBOX_HOSTNAME": "env", "SANDBOX_MEMORY": "1G"}, run},
		{map[string]string{"SANDBOX_PROFILE": "/nonexistent.toml"}, []string{"run", "--profile", yaml, "--", "x"}},
		{map[string]string{"SANDBOX_HOSTNAME": "env", "SANDBOX_READ_ONLY": "false"}, []string{"run", "--profile", toml, "--", "x"}},
	}
	long, _ := runFlags()
	for name, f := range long {
		v, pv := "a/b", `"a/b"`
		switch {
		case name == "profile":
			continue
		case f.kind == reflect.Bool:
			v, pv = "true", "true"
		case f.enum != nil:
			for _, e := range f.enum[1:] {
				taken = append(taken, tc{map[string]string{envVar(name): e}, run})
			}
			v, pv = f.enum[0], `"`+f.enum[0]+`"`
		case f.kind == reflect.Int || f.kind == reflect.Uint32:
			v, pv = "3", "3"
		case f.kind == reflect.Slice && f.sepNone:
			v, pv = "a/b;c:d", `["a/b", "c:d"]`
		case f.kind == reflect.Slice:
			v, pv = "a/b,c:d", `["a/b", "c:d"]`
		}
		taken = append(taken, tc{map[string]string{envVar(name): v}, run},
			tc{nil, []string{"run", "--profile", profile(name+".toml", name+" = "+pv+"\n"), "--", "x"}})
	}
	left := []tc{
		{map[string]string{"SANDBOX_NET": "bogus"}, run},
		{map[string]string{"SANDBOX_NET": "bogus"}, []string{"run", "--net=none", "--", "x"}},
		{map[string]string{"SANDBOX_READ_ONLY": "maybe"}, run},
		{map[string]string{"SANDBOX_ALLOW_HOST": ";;"}, run},
		{map[string]string{"SANDBOX_BIND": `/a\,b`}, run},
		{map[string]string{"SANDBOX_UID": "010"}, run},
		{map[string]string{"SANDBOX_UID": "-1"}, run},
		{map[string]string{"SANDBOX_PROFILE": "/nonexistent.toml"}, run},
		{map[string]string{"SANDBOX_PROFILE": yaml}, []string{"run", "--profile=", "--", "x"}},
		{nil, []string{"run", "--profile", profile("bad.toml", "hostnme = \"x\"\n"), "--", "x"}},
		{nil, []string{"run", "--profile", profile("type.toml", "read-only = \"yes\"\n"), "--", "x"}},
		{nil, []string{"run", "--profile", profile("enum.toml", "net = \"bogus\"\n"), "--hostname", "h", "--", "x"}},
		{nil, []string{"run", "--profile", profile("nested.toml", "profile = \"other.toml\"\n"), "--", "x"}},
		{nil, []string{"run", "--profile", profile("nocmd.toml", "hostname = \"h\"\n")}},
		{nil, []string{"run", "--profile", dir + "/p.ini", "--", "x"}},
	}
	for _, c := range taken {
		lookup := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
		fdef := newDefaults(lookup)
		fr, fgiven, ok := fastRun(c.args, fdef)
		if !ok {
			t.Errorf("%v %q: left to kong, want the fast path", c.env, c.args)
			continue
		}
		kc, ctx, kdef, kok := kongContextEnv(t, c.args, lookup)
		if !kok {
			t.Errorf("%v %q: fast path took what kong refuses", c.env, c.args)
			continue
		}
		if f, k := fmt.Sprintf("%#v", fr), fmt.Sprintf("%#v", kc.Run); f != k {
			t.Errorf("%v %q:\nfast path %s\nkong      %s", c.env, c.args, f, k)
		}
		for name := range long {
			if fgiven[name] != flagGiven(ctx, name) {
				t.Errorf("%v %q: --%s given: fast path %v, kong %v", c.env, c.args, name, fgiven[name], flagGiven(ctx, name))
			}
		}
		if f, k := fmt.Sprint(fdef.sources), fmt.Sprint(kdef.sources); f != k {
			t.Errorf("%v %q: sources: fast path %s, kong %s", c.env, c.args, f, k)
		}
		if f, k := fmt.Sprint(fdef.command()), fmt.Sprint(kdef.command()); f != k {
			t.Errorf("%v %q: the profile's command: fast path %s, kong %s", c.env, c.args, f, k)
		}
	}
	for _, c := range left {
		fdef := newDefaults(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		if _, _, ok := fastRun(c.args, fdef); ok {
			t.Errorf("%v %q: taken by the fast path, want kong", c.env, c.args)
		}
		if fdef.profile != nil || len(fdef.sources) != 0 {
			t.Errorf("%v %q: left to kong with the resolver changed", c.env, c.args)
		}
	}
}

// TestFastRunFlagsAreKongs: the flags fastRun reads from runCmd's tags are
// kong's run flags, with the same names, shorts, defaults, enums and kinds.
func TestFastRunFlagsAreKongs(t *testing.T) {
	run := runNode(t)
	long, short := runFlags()
	seen := 0
	for _, kf := range run.Flags {
		if kf.Name == "help" {
			continue
		}
		seen++
		f := long[kf.Name]
		if f == nil {
			t.Errorf("--%s: not among fastRun's flags", kf.Name)
			continue
		}
		if kf.Short != 0 && short[string(kf.Short)] != f {
			t.Errorf("--%s: short -%c not fastRun's", kf.Name, kf.Short)
		}
		if f.def != kf.Default || strings.Join(f.enum, ",") != kf.Enum || f.sepNone != (kf.Tag.Sep == -1) ||
			(f.kind == reflect.Bool) != kf.IsBool() || (f.kind == reflect.Slice) != kf.IsSlice() {
			t.Errorf("--%s: fastRun has %+v, kong default %q enum %q sep %q bool %v slice %v",
				kf.Name, *f, kf.Default, kf.Enum, kf.Tag.Sep, kf.IsBool(), kf.IsSlice())
		}
	}
	if seen != len(long) || len(short) != 4 {
		t.Errorf("fastRun has %d flags (%d short), kong's run %d", len(long), len(short), seen)
	}
}

// TestRunFlagCount: --dns given twice is counted among run's own flags
// only: a command's own words, after its first without "--", are not
// run's. Before, `run --net=none dig --dns a --dns b` was refused (125)
// as if --dns had been given twice.
func TestRunFlagCount(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"run", "--dns", "10.0.2.3", "--dns=10.0.2.4", "--", "true"}, 2},
		{[]string{"run", "--dns", "10.0.2.3", "true"}, 1},
		{[]string{"run", "--net=none", "echo", "--dns", "a", "--dns", "b"}, 0},
		{[]string{"run", "--net=none", "--", "echo", "--dns", "a", "--dns", "b"}, 0},
		{[]string{"run", "--name", "--dns", "-e", "--dns", "--dns", "1", "x"}, 1}, // values that look like the flag
		{[]string{"run", "-d", "--dns", "1", "-v", "--dns=2", "sh"}, 2},
		{[]string{"exec", "x", "--dns", "1", "--dns", "2"}, 0},
	} {
		if got := runFlagCount(tc.args, "dns"); got != tc.want {
			t.Errorf("runFlagCount(%q) = %d, want %d", tc.args, got, tc.want)
		}
	}
}
