package config_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/oci/config"
	"sandbox/oci/mounts"
	"sandbox/oci/process"
)

// Bounds on one document's cost. A MaxSize document is decoded in well
// under a second; slow is far above that, hang is where a loop is assumed.
const (
	slow = 5 * time.Second
	hang = 30 * time.Second
)

// allocBudget is what loading a document of n bytes may allocate: reading
// it (at most MaxSize+1 bytes, twice over while the buffer grows), the
// decoded spec, whose arrays are bounded before decoding, and 128 bytes
// per byte for the worst case of arrays of structs at their bound.
func allocBudget(n int) uint64 { return 64<<20 + 128*uint64(n) }

// fieldRe is an error that names the field: `mounts[3].destination: ...`,
// `config.json: ...`, a key the spec does not know quoted.
var fieldRe = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9_.-]*|"(?:[^"\\]|\\.)*")(?:\[[0-9]+\]|\.[A-Za-z][A-Za-z0-9_-]*|\."(?:[^"\\]|\\.)*")*: .`)

// checkError fails unless err is one line that starts with the field.
func checkError(t *testing.T, who string, err error) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("%s: error of more than one line: %q", who, msg)
	}
	if !fieldRe.MatchString(msg) {
		t.Fatalf("%s: error does not start with the field it is about: %q", who, msg)
	}
}

// bundle makes a bundle directory with a rootfs, a file and a link to the
// host's / (the fuzzer may name any of them as root.path).
func bundle(tb testing.TB) string {
	dir := tb.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(dir, "slash")); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// hostileBase is the spec e2e's TestOCIConfigHostile edits (its
// rootlessSpec, with fixed ids).
func hostileBase() *specs.Spec {
	caps := []string{"CAP_CHOWN", "CAP_KILL"}
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: "oci-test",
		Root:     &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args:            []string{"touch", "/host-was-touched"},
			Env:             []string{"PATH=/bin", "TERM=xterm"},
			Cwd:             "/",
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65535}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65535}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.UserNamespace}, {Type: specs.NetworkNamespace},
			},
		},
	}
}

type seed struct {
	name string
	doc  []byte
	want string // Load's error contains it; "" when accepted
}

func marshal(tb testing.TB, s *specs.Spec) []byte {
	data, err := json.Marshal(s)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// hostileSeeds are the documents of e2e's TestOCIConfigHostile, with the
// errors it expects.
func hostileSeeds(tb testing.TB) []seed {
	edit := func(name, want string, f func(s *specs.Spec)) seed {
		s := hostileBase()
		f(s)
		return seed{name, marshal(tb, s), want}
	}
	base := marshal(tb, hostileBase())
	return []seed{
		edit("unknown namespace", `linux.namespaces[2].type: unknown namespace type "foo"`, func(s *specs.Spec) { s.Linux.Namespaces[2].Type = "foo" }),
		edit("duplicate namespace", "linux.namespaces[6].type", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}),
		edit("mapping overlap", "linux.uidMappings[1]: overlaps [0]", func(s *specs.Spec) { s.Linux.UIDMappings[1].ContainerID = 0 }),
		edit("root leaves the bundle", "root.path", func(s *specs.Spec) { s.Root.Path = "../../../../../../" }),
		edit("no root", "root.path", func(s *specs.Spec) { s.Root.Path = "/nonexistent-rootfs" }),
		edit("relative cwd", "process.cwd", func(s *specs.Spec) { s.Process.Cwd = "tmp" }),
		edit("no args", "process.args", func(s *specs.Spec) { s.Process.Args = nil }),
		edit("version 2", "ociVersion", func(s *specs.Spec) { s.Version = "2.0.0" }),
		edit("hostname without uts", "hostname", func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.UserNamespace}, {Type: specs.MountNamespace}}
		}),
		edit("enormous mounts", "mounts: 4097 entries, more than the 4096 allowed", func(s *specs.Spec) {
			for len(s.Mounts) <= config.MaxMounts {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
			}
		}),
		edit("enormous env", "process.env", func(s *specs.Spec) {
			for len(s.Process.Env) <= config.MaxEnv {
				s.Process.Env = append(s.Process.Env, "A=b")
			}
		}),
		{"truncated", base[:len(base)/2], "config.json: truncated"},
		{"not json", []byte("\x00\x01garbage"), "config.json"},
		{"wrong type", []byte(`{"ociVersion":"1.0.2","process":{"args":"sh","cwd":"/"},"root":{"path":"rootfs"}}`), "process.args"},
		{"too big", []byte(strings.Replace(string(base), "{", `{"pad":"`+strings.Repeat("x", 5<<20)+`",`, 1)), "more than the 4194304 allowed"},
	}
}

// array is a JSON array of n copies of elem.
func array(elem string, n int) string {
	return "[" + strings.Repeat(elem+",", n-1) + elem + "]"
}

// set is the base document with the member at the dotted path (objects
// made as needed) set to raw.
func set(tb testing.TB, base []byte, dotted, raw string) []byte {
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		tb.Fatal(err)
	}
	keys := strings.Split(dotted, ".")
	obj := doc
	for _, k := range keys[:len(keys)-1] {
		next, ok := obj[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[k] = next
		}
		obj = next
	}
	obj[keys[len(keys)-1]] = json.RawMessage(raw)
	data, err := json.Marshal(doc)
	if err != nil {
		tb.Fatalf("set %s: %v", dotted, err)
	}
	return data
}

// moreSeeds are malformed and extreme documents: truncations, nulls,
// wrong types, huge and negative numbers, long arrays, duplicate keys,
// deep nesting, unicode and control characters in paths and names. want
// is the verdict of create's checks (load); "*" is either, as the
// host decides (AppArmor) or encoding/json's case folding may.
func moreSeeds(tb testing.TB, rootless []byte) []seed {
	baseDoc := marshal(tb, hostileBase())
	base := string(baseDoc)
	s := func(name, dotted, raw, want string) seed { return seed{name, set(tb, baseDoc, dotted, raw), want} }
	with := func(name, old, new, want string) seed {
		if !strings.Contains(base, old) {
			tb.Fatalf("seed %s: %q is not in the base document", name, old)
		}
		return seed{name, []byte(strings.Replace(base, old, new, 1)), want}
	}
	// last adds members at the end of the document: duplicate keys, the
	// last of which encoding/json keeps.
	last := func(name, members, want string) seed {
		return seed{name, []byte(strings.TrimSuffix(base, "}") + "," + members + "}"), want}
	}
	fill := func(elem string) int { return (config.MaxSize-len(base))/(len(elem)+1) - 10 }
	return []seed{
		{"rootless spec", rootless, ""},
		{"base", baseDoc, ""},
		{"empty", nil, "config.json: truncated"},
		{"null", []byte("null"), "ociVersion: missing"},
		{"empty object", []byte("{}"), "ociVersion: missing"},
		{"array", []byte("[]"), "config.json"},
		{"string", []byte(`"x"`), "config.json"},
		{"truncated at 1", baseDoc[:1], "config.json: truncated"},
		{"truncated in a string", baseDoc[:strings.Index(base, "rootfs")+3], "config.json: truncated"},
		{"truncated rootless", rootless[:len(rootless)/3], "config.json: truncated"},
		{"trailing garbage", []byte(base + "}"), "config.json"},
		{"two documents", []byte(base + base), "config.json"},
		last("null process", `"process":null`, ""),
		last("null linux", `"linux":null`, "hostname"),
		last("null root", `"root":null`, "root.path: missing"),
		last("null mounts", `"mounts":null`, ""),
		s("null namespaces", "linux.namespaces", "null", "linux.uidMappings"),
		s("null mappings", "linux.uidMappings", "null", "linux.uidMappings"),
		with("null in an array", `"PATH=/bin"`, `null`, "process.env[0]"),
		s("number version", "ociVersion", "1", "ociVersion"),
		s("object mounts", "mounts", "{}", "mounts"),
		s("string namespaces", "linux.namespaces", `"pid"`, "linux.namespaces"),
		s("bool cwd", "process.cwd", "true", "process.cwd"),
		s("string uid", "process.user.uid", `"0"`, "process.user.uid"),
		with("float size", `"size":65535`, `"size":1.5`, "linux.uidMappings.size"),
		with("huge size", `"size":65535`, `"size":1e400`, "linux.uidMappings.size"),
		with("size past 2^32", `"size":65535`, `"size":4294967296`, "linux.uidMappings.size"),
		with("size to 2^32", `"size":65535`, `"size":4294967295`, "linux.uidMappings[1]"),
		with("negative host id", `"hostID":1000`, `"hostID":-1`, "linux.uidMappings.hostID"),
		with("negative rlimit", `"hard":1024`, `"hard":-1`, "process.rlimits.hard"),
		with("huge rlimit", `"hard":1024`, `"hard":18446744073709551615`, ""),
		with("rlimit past 2^64", `"hard":1024`, `"hard":18446744073709551616`, "process.rlimits.hard"),
		with("soft above hard", `"soft":1024`, `"soft":2048`, "process.rlimits[0]"),
		with("unknown rlimit", `RLIMIT_NOFILE`, `RLIMIT_FOO`, "process.rlimits[0].type"),
		with("long number", `"hostID":1000`, `"hostID":1`+strings.Repeat("0", 100000), "linux.uidMappings.hostID"),
		s("oom score", "process.oomScoreAdj", "-1001", "process.oomScoreAdj"),
		s("umask", "process.user.umask", "512", "process.user.umask"),
		s("username", "process.user.username", `"root"`, "process.user.username"),
		s("additional gids", "process.user.additionalGids", `[0,4294967295]`, "process.user.additionalGids[1]: 4294967295 is outside"),
		s("uid -1", "process.user.uid", `4294967295`, "process.user.uid: 4294967295 is outside"),
		s("version 1.x", "ociVersion", `"1.99.0-rc.1+dev"`, ""),
		s("version 01", "ociVersion", `"01"`, ""),
		last("duplicate version", `"ociVersion":"2.0.0"`, "ociVersion"),
		last("duplicate root", `"root":{"path":"../x"}`, "root.path"),
		last("duplicate mounts", `"mounts":[{"destination":"rel","type":"tmpfs"}]`, "mounts[0].destination"),
		{"case folded keys", []byte(strings.NewReplacer(`"ociVersion"`, `"OCIVERSION"`, `"root"`, `"Root"`, `"path"`, `"PATH"`).Replace(base)), ""},
		{"long s key", []byte(strings.Replace(base, `"ociVersion"`, `"ociVer\u017fion"`, 1)), "*"},
		{"kelvin key", []byte(strings.Replace(base, `"namespaces"`, `"\u212aamespaces"`, 1)), "*"},
		{"escaped key", []byte(strings.Replace(base, `"mounts"`, `"\u006dounts"`, 1)), ""},
		s("unicode root", "root.path", `"rootfs/\u00fc/.."`, ""),
		s("fullwidth root", "root.path", `"ｒootfs"`, "root.path"),
		s("newline in root", "root.path", `"root\nfs"`, "root.path"),
		s("root is a file", "root.path", `"file"`, "root.path"),
		s("root is the host's by a link", "root.path", `"slash"`, "root.path"),
		s("root below a link", "root.path", `"slash/tmp"`, ""),
		s("root is /", "root.path", `"/"`, "root.path"),
		s("root is / by dots", "root.path", `"/tmp/../."`, "root.path"),
		s("root climbs and comes back", "root.path", `"rootfs/../../x/../../"`, "root.path"),
		s("root with a NUL", "root.path", `"rootfs\u0000x"`, "root.path"),
		with("unicode destination", `"destination":"/dev/shm"`, `"destination":"/dev/\u0448\u043c\u2028"`, ""),
		with("newline destination", `"destination":"/dev/shm"`, `"destination":"/dev/\nshm"`, ""),
		with("dotdot destination", `"destination":"/dev/shm"`, `"destination":"/dev/../../etc"`, "mounts[3].destination"),
		with("NUL destination", `"destination":"/dev/shm"`, `"destination":"/dev/\u0000"`, "mounts[3].destination"),
		with("newline option", `"mode=1777"`, `"mode=1777\nuid=0"`, ""),
		with("newline type", `"type":"mqueue"`, `"type":"mq\nueue"`, "mounts[4].type"),
		with("relative bind source", `"source":"/sys"`, `"source":"../sys"`, ""),
		with("newline env", `"TERM=xterm"`, `"TER\nM=x"`, ""),
		with("env without =", `"TERM=xterm"`, `"TERM"`, "process.env[1]"),
		with("NUL arg", `"/host-was-touched"`, `"/host\u0000"`, "process.args[1]"),
		with("newline capability", `"CAP_KILL"`, `"CAP_\nKILL"`, "process.capabilities.bounding[1]"),
		s("newline personality", "linux.personality", `{"domain":"LINUX","flags":["a\nb"]}`, "linux.personality.flags"),
		s("newline scheduler", "process.scheduler", `{"policy":"SCHED_\nX"}`, "process.scheduler.policy"),
		s("newline seccomp", "linux.seccomp", `{"defaultAction":"SCMP_ACT_\nX","syscalls":[{"names":["a\nb"],"action":"SCMP_ACT_\nERRNO"}]}`, "linux.seccomp"),
		s("newline syscall", "linux.seccomp", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a\nb"],"action":"SCMP_ACT_ALLOW"}]}`, "*"),
		s("seccomp", "linux.seccomp", `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}]}`, ""),
		s("newline apparmor", "process.apparmorProfile", `"a\nb"`, "*"),
		s("relative hook", "hooks", `{"prestart":[{"path":"rel\nx"}]}`, "hooks.prestart[0].path"),
		s("namespace path", "linux.namespaces", `[{"type":"user"},{"type":"mount"},{"type":"uts"},{"type":"network","path":"proc/1/ns/net"}]`, "linux.namespaces[3].path"),
		s("userns by path with maps", "linux.namespaces", `[{"type":"user","path":"/proc/1/ns/user"},{"type":"mount"},{"type":"uts"}]`, "linux.uidMappings"),
		s("maps without userns", "linux.namespaces", `[{"type":"mount"},{"type":"uts"}]`, "linux.uidMappings"),
		s("time and cgroup namespaces", "linux.namespaces", `[{"type":"user"},{"type":"mount"},{"type":"uts"},{"type":"time"},{"type":"cgroup"}]`, ""),
		s("newline namespace", "linux.namespaces", `[{"type":"us\ner"}]`, "linux.namespaces[0].type"),
		s("host id overlap", "linux.uidMappings", `[{"containerID":0,"hostID":5,"size":10},{"containerID":10,"hostID":14,"size":1}]`, "linux.uidMappings[1]: overlaps [0] (host ids)"),
		s("cgroup resources", "linux.resources", `{"memory":{"limit":-2},"unified":{"../x":"1\n2"}}`, ""),
		s("masked dotdot", "linux.maskedPaths", `["/proc/../etc"]`, "linux.maskedPaths[0]"),
		s("device", "linux.devices", `[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":8630}]`, "linux.devices[0].fileMode"),
		s("propagation", "linux.rootfsPropagation", `"every\nwhere"`, "linux.rootfsPropagation"),
		s("annotations", "annotations", `{"a\nb":"c\nd","":""}`, ""),
		s("sysctl", "linux.sysctl", `{"net.ipv4.ip_forward":"1","a\nb":"c"}`, ""),
		s("sysctl number", "linux.sysctl", `{"k\nx":1}`, "linux.sysctl"),
		// Long arrays: at the bounds, past them, and a whole MaxSize of
		// them, refused before decoding (else 800 MB and seconds).
		s("4096 mounts", "mounts", array(`{"destination":"/tmp","type":"tmpfs"}`, config.MaxMounts), ""),
		s("257 hooks", "hooks", `{"poststop":`+array(`{"path":"/bin/true"}`, config.MaxHooks+1)+`}`, "hooks.poststop: 257 entries"),
		s("341 map lines", "linux.gidMappings", array(`{"containerID":0,"hostID":0,"size":1}`, config.MaxMapLines+1), "linux.gidMappings: 341 entries"),
		s("65536 names", "linux.seccomp", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":`+array(`"read"`, config.MaxSyscalls)+`,"action":"SCMP_ACT_ERRNO"}]}`, "*"),
		s("65537 names", "linux.seccomp", `{"syscalls":[{"names":`+array(`"read"`, config.MaxSyscalls+1)+`}]}`, "linux.seccomp.syscalls[0].names: 65537 entries"),
		s("65536 mounts", "mounts", array("{}", 65536), "mounts: 65536 entries, more than the 4096 allowed"),
		s("65537 unknown", "x y", array("0", 65537), `"x y": 65537 entries`),
		{"65537 at the root", []byte(array("0", 65537)), "config.json: 65537 entries"},
		last("MaxSize of mounts", `"mounts":`+array("{}", fill("{}")), "mounts: "),
		last("MaxSize of devices", `"linux":{"devices":`+array("{}", fill("{}"))+"}", "linux.devices: "),
		last("MaxSize of env", `"process":{"env":`+array(`""`, fill(`""`))+"}", "process.env: "),
		last("MaxSize string", `"x":"`+strings.Repeat(`\n`, fill(`\n`)/2)+`"`, ""),
		last("MaxSize annotations", `"annotations":{`+strings.Repeat(`"a":"",`, fill(`"a":""`))+`"b":""}`, ""),
		// Deep nesting: encoding/json refuses more than 10000 levels.
		last("deep arrays", `"x":`+strings.Repeat("[", 9998)+strings.Repeat("]", 9998), ""),
		last("too deep arrays", `"x":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001), "config.json"),
		{"too deep objects", []byte(strings.Repeat(`{"x":`, 10001) + "1" + strings.Repeat("}", 10001)), "config.json"},
		{"unclosed deep", []byte(`{"x":` + strings.Repeat("[", 100000)), "config.json"},
	}
}

// FuzzConfig feeds arbitrary bytes as a bundle's config.json to Load, the
// entry point of create, then to what create checks next (mounts.Check,
// process.Prepare). Properties: nothing panics; every error is one line
// that starts with the field it is about (create prints it as its one
// line, exit 125); a document costs bounded time and memory whatever its
// arrays and strings (Load refuses more than MaxSize bytes, and longer
// arrays than any bound before decoding them); and a document accepted
// holds what Check promises, so that create may rely on it: a 1.x
// version, a root that is a directory, not the host's /, inside the
// bundle when relative; a process with arguments, an absolute cwd and
// NAME=value env; known namespaces, each once; id mappings within 2^32
// that do not overlap, with a new user namespace; arrays within bounds;
// absolute bind sources; then absolute mount, device and masked paths
// without "..", known, unique rlimits with soft <= hard, known
// capabilities, a numeric user with a umask and a bounded group list.
func FuzzConfig(f *testing.F) {
	dir := bundle(f)
	rootless, err := os.ReadFile("testdata/spec-rootless.json")
	if err != nil {
		f.Fatal(err)
	}
	// The seeds' own verdicts are checked when they run, so that they stay
	// what they mean.
	seeds := map[string]seed{}
	for _, s := range append(hostileSeeds(f), moreSeeds(f, rootless)...) {
		seeds[string(s.doc)] = s
		f.Add(s.doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := load(t, dir, data)
		if s, ok := seeds[string(data)]; ok {
			switch {
			case s.want == "*":
			case s.want == "" && err != nil:
				t.Errorf("seed %s: %v", s.name, err)
			case s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)):
				t.Errorf("seed %s: error %.200v, want %q", s.name, err, s.want)
			}
		}
	})
}

// load writes data as dir's config.json, checks it as create would and
// checks the outcome; it returns the first error.
func load(t *testing.T, dir string, data []byte) error {
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	timer := time.AfterFunc(hang, func() { panic(fmt.Sprintf("Load of %d bytes still running after %v", len(data), hang)) })
	start := time.Now()
	s, err := config.Load(dir)
	took := time.Since(start)
	timer.Stop()
	runtime.ReadMemStats(&after)
	if took > slow {
		t.Errorf("Load of %d bytes took %v", len(data), took)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > allocBudget(len(data)) {
		t.Errorf("Load of %d bytes allocated %d MiB, more than %d", len(data), a>>20, allocBudget(len(data))>>20)
	}
	if len(data) > config.MaxSize && (err == nil || !strings.Contains(err.Error(), "more than the "+strconv.Itoa(config.MaxSize))) {
		t.Fatalf("%d bytes, more than MaxSize: error %v", len(data), err)
	}
	if err != nil {
		if s != nil {
			t.Fatalf("Load returned a spec with the error %v", err)
		}
		checkError(t, "Load", err)
		return err
	}
	checkSpec(t, s, dir)

	// What create checks next, pure.
	start = time.Now()
	defer func() {
		if took := time.Since(start); took > slow {
			t.Errorf("mounts.Check and process.Prepare took %v", took)
		}
	}()
	if err := mounts.Check(s, config.RootPath(s, dir)); err != nil {
		checkError(t, "mounts.Check", err)
		return err
	}
	checkMounts(t, s)
	if s.Process == nil {
		return nil
	}
	plan, err := process.Prepare(s.Process, s)
	if err != nil {
		checkError(t, "process.Prepare", err)
		return err
	}
	checkPlan(t, s.Process, plan)
	return nil
}

// checkSpec checks what config.Check promises of an accepted spec.
func checkSpec(t *testing.T, s *specs.Spec, bundle string) {
	t.Helper()
	major, _, _ := strings.Cut(s.Version, ".")
	if n, err := strconv.Atoi(major); err != nil || n != 1 {
		t.Fatalf("ociVersion %q accepted", s.Version)
	}

	// The root: a directory, inside the bundle when relative, not /.
	if s.Root == nil || s.Root.Path == "" {
		t.Fatal("no root.path accepted")
	}
	root := config.RootPath(s, bundle)
	if !filepath.IsAbs(root) || filepath.Clean(root) != root {
		t.Fatalf("root.path %q: RootPath %q is not absolute and clean", s.Root.Path, root)
	}
	if !filepath.IsAbs(s.Root.Path) {
		if rel, err := filepath.Rel(bundle, root); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("root.path %q leaves the bundle (%q)", s.Root.Path, root)
		}
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("root.path %q: %q is no directory (%v)", s.Root.Path, root, err)
	}
	if r, err := filepath.EvalSymlinks(root); err == nil && r == "/" {
		t.Fatalf("root.path %q is the host's /", s.Root.Path)
	}

	if p := s.Process; p != nil {
		if len(p.Args) == 0 || len(p.Args) > config.MaxArgs || p.Args[0] == "" || p.CommandLine != "" {
			t.Fatalf("process.args %d entries, args[0] empty or commandLine accepted", len(p.Args))
		}
		if !filepath.IsAbs(p.Cwd) {
			t.Fatalf("process.cwd %q accepted", p.Cwd)
		}
		if len(p.Env) > config.MaxEnv || len(p.Rlimits) > config.MaxRlimits {
			t.Fatalf("%d env, %d rlimits accepted", len(p.Env), len(p.Rlimits))
		}
		for i, e := range p.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				t.Fatalf("process.env[%d] %q accepted", i, e)
			}
		}
	}

	if len(s.Mounts) > config.MaxMounts {
		t.Fatalf("%d mounts accepted", len(s.Mounts))
	}
	for i, m := range s.Mounts {
		bind := m.Type == "bind"
		for _, o := range m.Options {
			bind = bind || o == "bind" || o == "rbind"
		}
		if bind && m.Source != "" && !filepath.IsAbs(m.Source) {
			t.Fatalf("mounts[%d].source %q: a bind source left relative", i, m.Source)
		}
	}
	if h := s.Hooks; h != nil {
		//nolint:staticcheck // prestart is still sent by engines
		for _, hooks := range [][]specs.Hook{h.Prestart, h.CreateRuntime, h.CreateContainer, h.StartContainer, h.Poststart, h.Poststop} {
			if len(hooks) > config.MaxHooks {
				t.Fatalf("%d hooks of a kind accepted", len(hooks))
			}
			for _, hk := range hooks {
				if !filepath.IsAbs(hk.Path) || len(hk.Args) > config.MaxArgs || len(hk.Env) > config.MaxEnv {
					t.Fatalf("hook %q with %d args, %d env accepted", hk.Path, len(hk.Args), len(hk.Env))
				}
			}
		}
	}

	l := s.Linux
	if l == nil {
		l = &specs.Linux{}
	}
	if len(l.Devices) > config.MaxDevices || len(l.MaskedPaths) > config.MaxPaths || len(l.ReadonlyPaths) > config.MaxPaths ||
		len(l.Sysctl) > config.MaxSysctl || len(l.UIDMappings) > config.MaxMapLines || len(l.GIDMappings) > config.MaxMapLines {
		t.Fatal("a linux array past its bound accepted")
	}
	if l.Seccomp != nil {
		n := 0
		for _, c := range l.Seccomp.Syscalls {
			n += len(c.Names)
		}
		if len(l.Seccomp.Syscalls) > config.MaxSyscalls || n > config.MaxSyscalls {
			t.Fatalf("%d syscalls, %d names accepted", len(l.Seccomp.Syscalls), n)
		}
	}
	if l.Resources != nil && len(l.Resources.Devices) > config.MaxDevices {
		t.Fatalf("%d device rules accepted", len(l.Resources.Devices))
	}

	// Namespaces: known, each once; id mappings only with a new user
	// namespace, which needs both.
	seen := map[specs.LinuxNamespaceType]bool{}
	newUser, uts := false, false
	for i, ns := range l.Namespaces {
		if !config.Namespaces[ns.Type] || seen[ns.Type] {
			t.Fatalf("linux.namespaces[%d] %q unknown or repeated, accepted", i, ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			t.Fatalf("linux.namespaces[%d].path %q accepted", i, ns.Path)
		}
		newUser = newUser || ns.Type == specs.UserNamespace && ns.Path == ""
		uts = uts || ns.Type == specs.UTSNamespace
	}
	if (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) != newUser || newUser && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
		t.Fatalf("%d uid and %d gid mappings with a new user namespace %v accepted", len(l.UIDMappings), len(l.GIDMappings), newUser)
	}
	for _, maps := range [][]specs.LinuxIDMapping{l.UIDMappings, l.GIDMappings} {
		for i, m := range maps {
			if m.Size == 0 || uint64(m.ContainerID)+uint64(m.Size) > 1<<32 || uint64(m.HostID)+uint64(m.Size) > 1<<32 {
				t.Fatalf("mapping %+v accepted", m)
			}
			for _, o := range maps[:i] {
				if overlaps(m.ContainerID, m.Size, o.ContainerID, o.Size) || overlaps(m.HostID, m.Size, o.HostID, o.Size) {
					t.Fatalf("overlapping mappings %+v and %+v accepted", o, m)
				}
			}
		}
	}
	if (s.Hostname != "" || s.Domainname != "") && !uts {
		t.Fatal("hostname or domainname without a UTS namespace accepted")
	}
}

// overlaps says whether [a, a+an) and [b, b+bn) share an id.
func overlaps(a, an, b, bn uint32) bool {
	aEnd, bEnd := uint64(a)+uint64(an), uint64(b)+uint64(bn)
	return max(uint64(a), uint64(b)) < min(aEnd, bEnd)
}

// inside is a path mounts.Check accepts: absolute, no "..", no NUL.
func inside(p string) bool {
	return path.IsAbs(p) && !strings.ContainsRune(p, 0) && !strings.Contains("/"+p+"/", "/../")
}

// checkMounts checks what mounts.Check promises of an accepted spec.
func checkMounts(t *testing.T, s *specs.Spec) {
	t.Helper()
	for i, m := range s.Mounts {
		if !inside(m.Destination) {
			t.Fatalf("mounts[%d].destination %q accepted", i, m.Destination)
		}
		if len(m.UIDMappings)+len(m.GIDMappings) > 0 {
			t.Fatalf("mounts[%d]: id-mapped mount accepted", i)
		}
	}
	if l := s.Linux; l != nil {
		for _, p := range append(append([]string{}, l.MaskedPaths...), l.ReadonlyPaths...) {
			if !inside(p) {
				t.Fatalf("masked or read-only path %q accepted", p)
			}
		}
		for i, d := range l.Devices {
			if !inside(d.Path) || filepath.Clean(d.Path) == "/" || !strings.Contains("cubp", d.Type) || len(d.Type) != 1 {
				t.Fatalf("linux.devices[%d] %q type %q accepted", i, d.Path, d.Type)
			}
		}
	}
}

// checkPlan checks what process.Prepare promises of an accepted process.
func checkPlan(t *testing.T, p *specs.Process, plan *process.Plan) {
	t.Helper()
	if len(plan.Rlimits) != len(p.Rlimits) {
		t.Fatalf("%d rlimits planned of %d", len(plan.Rlimits), len(p.Rlimits))
	}
	seen := map[string]bool{}
	for i, r := range p.Rlimits {
		n, ok := process.RlimitNumber(r.Type)
		if !ok || seen[r.Type] || r.Soft > r.Hard {
			t.Fatalf("process.rlimits[%d] %+v accepted", i, r)
		}
		seen[r.Type] = true
		if got := plan.Rlimits[i]; got.Resource != n || got.Soft != r.Soft || got.Hard != r.Hard {
			t.Fatalf("process.rlimits[%d] %+v planned as %+v", i, r, got)
		}
	}
	for i, a := range p.Args {
		if strings.ContainsRune(a, 0) {
			t.Fatalf("process.args[%d] with a NUL accepted", i)
		}
	}
	for i, e := range p.Env {
		if strings.ContainsRune(e, 0) {
			t.Fatalf("process.env[%d] with a NUL accepted", i)
		}
	}
	if c := p.Capabilities; c != nil {
		if len(plan.Caps.Bounding) != len(c.Bounding) || len(plan.Caps.Effective) != len(c.Effective) ||
			len(plan.Caps.Permitted) != len(c.Permitted) || len(plan.Caps.Inheritable) != len(c.Inheritable) ||
			len(plan.Caps.Ambient) != len(c.Ambient) {
			t.Fatalf("capabilities %+v planned as %+v", c, plan.Caps)
		}
	}
	if u := p.User; u.Username != "" || len(u.AdditionalGids) > process.MaxAdditionalGids || u.Umask != nil && *u.Umask > 0o777 {
		t.Fatalf("process.user %+v accepted", u)
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		t.Fatalf("process.oomScoreAdj %d accepted", *p.OOMScoreAdj)
	}
}
