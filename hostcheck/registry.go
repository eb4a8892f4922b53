package hostcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"sandbox/internal/userfile"
)

// RegistryFacts are what image pulls (`image pull`, `run --image REF`)
// take from the caller's setup: the one credentials file they read and
// the proxy variables.
type RegistryFacts struct {
	// AuthFile is the file pulls read credentials from ("": none exists),
	// chosen as go-containerregistry's default keychain does: the docker
	// config (~/.docker/config.json, $DOCKER_CONFIG/config.json), else
	// $REGISTRY_AUTH_FILE, else podman's containers/auth.json.
	AuthFile string
	Auth     AuthConfig
	AuthErr  error    // AuthFile unreadable or malformed
	Shadowed []string // other credentials files that exist, not read
	// Proxy: the proxy variables set, as NAME → value (values are
	// redacted when judged, never shown with their credentials).
	Proxy map[string]string
}

// AuthConfig is what a credentials file names: registry names only, never
// a secret.
type AuthConfig struct {
	Registries []string          // auths entries that hold a credential
	Helpers    map[string]string // credHelpers: registry → helper
	Store      string            // credsStore: the helper of every other registry
}

// proxyVars are read by Go's http.ProxyFromEnvironment, upper case first.
var proxyVars = []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"}

// GatherRegistry reads the credentials file and proxy variables pulls use.
func GatherRegistry(getenv func(string) string) RegistryFacts {
	var f RegistryFacts
	home, _ := os.UserHomeDir()
	dockerDefault := ""
	if home != "" {
		dockerDefault = filepath.Join(home, ".docker", "config.json")
	}
	docker := dockerDefault
	if d := getenv("DOCKER_CONFIG"); d != "" {
		docker = filepath.Join(d, "config.json") // what docker's config.Load reads then, even when absent
	}
	if dockerDefault != "" && isFile(dockerDefault) || docker != "" && isFile(docker) {
		f.AuthFile = docker
	}
	cands := []string{dockerDefault}
	if p := getenv("REGISTRY_AUTH_FILE"); p != "" {
		cands = append(cands, filepath.Clean(p))
	}
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
		cands = append(cands, filepath.Join(rt, "containers", "auth.json"))
	}
	if cfg := getenv("XDG_CONFIG_HOME"); cfg != "" {
		cands = append(cands, filepath.Join(cfg, "containers", "auth.json"))
	} else if home != "" {
		cands = append(cands, filepath.Join(home, ".config", "containers", "auth.json"))
	}
	for _, c := range cands {
		switch {
		case c == "" || c == f.AuthFile || !isFile(c) || slices.Contains(f.Shadowed, c):
		case f.AuthFile == "":
			f.AuthFile = c
		default:
			f.Shadowed = append(f.Shadowed, c)
		}
	}
	if f.AuthFile != "" {
		f.Auth, f.AuthErr = readAuthFile(f.AuthFile)
	}
	for _, v := range proxyVars {
		if val := getenv(v); val != "" {
			if f.Proxy == nil {
				f.Proxy = map[string]string{}
			}
			f.Proxy[v] = val
		}
	}
	return f
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// readAuthFile reads the registry names of a docker config or podman
// auth file (bounded; the secrets are never kept).
func readAuthFile(p string) (AuthConfig, error) {
	var a AuthConfig
	b, err := userfile.Read(p, userfile.MaxConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return a, err
	}
	var doc struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		} `json:"auths"`
		CredHelpers map[string]string `json:"credHelpers"`
		CredsStore  string            `json:"credsStore"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return a, fmt.Errorf("not a valid credentials file: %v", err)
	}
	for reg, e := range doc.Auths {
		if e.Auth != "" || e.Password != "" || e.IdentityToken != "" || e.RegistryToken != "" {
			a.Registries = append(a.Registries, registryHost(reg))
		}
	}
	slices.Sort(a.Registries)
	a.Registries = slices.Compact(a.Registries)
	if len(doc.CredHelpers) > 0 {
		a.Helpers = map[string]string{}
		for reg, h := range doc.CredHelpers {
			a.Helpers[registryHost(reg)] = h
		}
	}
	a.Store = doc.CredsStore
	return a, nil
}

// registryHost is an auths key as a registry name: docker's old keys are
// URLs (https://index.docker.io/v1/).
func registryHost(k string) string {
	if _, rest, ok := strings.Cut(k, "://"); ok {
		k = rest
	}
	k, _, _ = strings.Cut(k, "/")
	if k == "index.docker.io" {
		k = "docker.io"
	}
	return k
}

// shown is a name from a file or variable made safe for a terminal line.
func shown(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// list joins names, at most 12 of them.
func list(names []string) string {
	var out []string
	for i, n := range names {
		if i == 12 {
			out = append(out, fmt.Sprintf("and %d more", len(names)-i))
			break
		}
		out = append(out, shown(n))
	}
	return strings.Join(out, ", ")
}

// judgeRegistryAuth says which registries pulls have credentials for.
func judgeRegistryAuth(f RegistryFacts) Result {
	const id = "registry-auth"
	if f.AuthFile == "" {
		return ok(id, "no registry credentials (~/.docker/config.json, $DOCKER_CONFIG, $REGISTRY_AUTH_FILE, containers/auth.json): pulls are anonymous")
	}
	if f.AuthErr != nil {
		return warn(id, fmt.Sprintf("%s, the credentials file pulls read: %v", shown(f.AuthFile), f.AuthErr),
			"fix or remove the file (docker login or podman login write it)")
	}
	a := f.Auth
	var parts []string
	if len(a.Registries) > 0 {
		parts = append(parts, "credentials for "+list(a.Registries))
	}
	if len(a.Helpers) > 0 {
		var hs []string
		for reg, h := range a.Helpers {
			hs = append(hs, reg+" (docker-credential-"+h+")")
		}
		slices.Sort(hs)
		parts = append(parts, "credential helpers for "+list(hs))
	}
	if a.Store != "" {
		parts = append(parts, "docker-credential-"+shown(a.Store)+" for the others")
	}
	msg := strings.Join(parts, "; ")
	if msg == "" {
		msg = "no registry credentials"
	}
	msg += " (" + shown(f.AuthFile) + ")"
	if len(f.Shadowed) > 0 {
		msg += "; not read: " + list(f.Shadowed)
	}
	return ok(id, msg)
}

// judgeProxy says whether pulls go through a proxy, its credentials
// redacted; a value Go cannot use as a proxy is a WARN.
func judgeProxy(f RegistryFacts) Result {
	const id = "registry-proxy"
	var set []string
	for _, v := range proxyVars {
		val, present := f.Proxy[v]
		if !present {
			continue
		}
		if !strings.HasPrefix(strings.ToUpper(v), "NO_") {
			if err := proxyURL(val); err != nil {
				return warn(id, fmt.Sprintf("%s=%s: %v: pulls through it fail", v, shown(redactProxy(val)), err),
					"set it to http://HOST:PORT (or unset it)")
			}
		}
		set = append(set, v+"="+shown(redactProxy(val)))
	}
	if len(set) == 0 {
		return ok(id, "no proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY unset): pulls connect to registries directly")
	}
	return ok(id, "proxy configured: "+strings.Join(set, ", ")+" (pulls go through it; a registry on loopback never does)")
}

// proxyURL checks a proxy value as Go's http.ProxyFromEnvironment reads it.
func proxyURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		if u2, err2 := url.Parse("http://" + v); err2 == nil && u2.Host != "" {
			u, err = u2, nil
		}
	}
	if err != nil || u.Host == "" {
		return errors.New("not a proxy URL")
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
		return nil
	}
	return fmt.Errorf("unsupported proxy scheme %q", u.Scheme)
}

// redactProxy hides the user information of a proxy value (USER:PASS@),
// whether or not it parses as a URL.
func redactProxy(v string) string {
	start := 0
	if i := strings.Index(v, "://"); i >= 0 {
		start = i + 3
	}
	end := len(v)
	if i := strings.IndexAny(v[start:], "/?#"); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndex(v[start:end], "@"); at >= 0 {
		return v[:start] + "***" + v[start+at:]
	}
	return v
}
