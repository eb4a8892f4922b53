package hostcheck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactProxy(t *testing.T) {
	for in, want := range map[string]string{
		"http://proxy:3128":                  "http://proxy:3128",
		"http://user:s3cret@proxy:3128":      "http://***@proxy:3128",
		"http://user:p@ss@proxy:3128/x?a=b@": "http://***@proxy:3128/x?a=b@",
		"user:s3cret@proxy:3128":             "***@proxy:3128",
		"socks5://u@h:1080":                  "socks5://***@h:1080",
		"":                                   "",
	} {
		if got := redactProxy(in); got != want {
			t.Errorf("redactProxy(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJudgeProxy(t *testing.T) {
	r := judgeProxy(RegistryFacts{})
	if r.Status != OK || !strings.Contains(r.Message, "no proxy") {
		t.Errorf("no proxy: %+v", r)
	}
	r = judgeProxy(RegistryFacts{Proxy: map[string]string{"HTTPS_PROXY": "http://alice:hunter2@proxy.corp:3128", "no_proxy": "localhost,.corp"}})
	if r.Status != OK || strings.Contains(r.Message, "hunter2") || strings.Contains(r.Message, "alice") ||
		!strings.Contains(r.Message, "HTTPS_PROXY=http://***@proxy.corp:3128") || !strings.Contains(r.Message, "no_proxy=localhost,.corp") {
		t.Errorf("a proxy with credentials: %+v", r)
	}
	r = judgeProxy(RegistryFacts{Proxy: map[string]string{"HTTP_PROXY": "ftp://bob:pw@proxy:21"}})
	if r.Status != Warn || strings.Contains(r.Message, "pw@") || !strings.Contains(r.Message, "unsupported proxy scheme") || r.Fix == "" {
		t.Errorf("a proxy Go cannot use: %+v", r)
	}
	if r := judgeProxy(RegistryFacts{Proxy: map[string]string{"HTTPS_PROXY": "proxy.corp:3128"}}); r.Status != OK {
		t.Errorf("a proxy without a scheme (Go takes http://): %+v", r)
	}
}

func TestJudgeRegistryAuth(t *testing.T) {
	r := judgeRegistryAuth(RegistryFacts{})
	if r.Status != OK || !strings.Contains(r.Message, "anonymous") {
		t.Errorf("no credentials: %+v", r)
	}
	r = judgeRegistryAuth(RegistryFacts{AuthFile: "/home/a/.docker/config.json", Shadowed: []string{"/run/user/1/containers/auth.json"},
		Auth: AuthConfig{Registries: []string{"docker.io", "ghcr.io"}, Helpers: map[string]string{"1.dkr.ecr.aws": "ecr-login"}, Store: "desktop"}})
	for _, want := range []string{"credentials for docker.io, ghcr.io", "1.dkr.ecr.aws (docker-credential-ecr-login)",
		"docker-credential-desktop for the others", "(/home/a/.docker/config.json)", "not read: /run/user/1/containers/auth.json"} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("credentials: want %q in %q", want, r.Message)
		}
	}
	r = judgeRegistryAuth(RegistryFacts{AuthFile: "/a.json", AuthErr: errors.New("not a valid credentials file: x")})
	if r.Status != Warn || r.Fix == "" {
		t.Errorf("a malformed file: %+v", r)
	}
	r = judgeRegistryAuth(RegistryFacts{AuthFile: "/a.json", Auth: AuthConfig{Registries: []string{"evil\x1b[2J"}}})
	if strings.Contains(r.Message, "\x1b") {
		t.Errorf("a control character reached the line: %q", r.Message)
	}
}

// TestGatherRegistry: the file pulls read is chosen as go-containerregistry's
// default keychain chooses it; only registry names are kept.
func TestGatherRegistry(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	write := func(p, body string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if f := GatherRegistry(getenv); f.AuthFile != "" || f.Proxy != nil {
		t.Errorf("nothing set up: %+v", f)
	}
	rt := t.TempDir()
	env["XDG_RUNTIME_DIR"] = rt
	podman := write(filepath.Join(rt, "containers", "auth.json"), `{"auths":{"quay.io":{"auth":"c2VjcmV0OnNlY3JldA=="},"empty.io":{}}}`)
	f := GatherRegistry(getenv)
	if f.AuthFile != podman || len(f.Auth.Registries) != 1 || f.Auth.Registries[0] != "quay.io" || f.AuthErr != nil {
		t.Errorf("podman's auth.json: %+v", f)
	}
	docker := write(filepath.Join(home, ".docker", "config.json"),
		`{"auths":{"https://index.docker.io/v1/":{"auth":"c2VjcmV0OnNlY3JldA=="}},"credHelpers":{"gcr.io":"gcloud"},"credsStore":"pass"}`)
	f = GatherRegistry(getenv)
	if f.AuthFile != docker || strings.Join(f.Auth.Registries, ",") != "docker.io" || f.Auth.Helpers["gcr.io"] != "gcloud" ||
		f.Auth.Store != "pass" || len(f.Shadowed) != 1 || f.Shadowed[0] != podman {
		t.Errorf("docker's config first, podman's not read: %+v", f)
	}
	// DOCKER_CONFIG names the directory docker reads, even without a file there.
	env["DOCKER_CONFIG"] = t.TempDir()
	f = GatherRegistry(getenv)
	if f.AuthFile != filepath.Join(env["DOCKER_CONFIG"], "config.json") || len(f.Auth.Registries) != 0 || f.AuthErr != nil {
		t.Errorf("DOCKER_CONFIG without a file: %+v", f)
	}
	delete(env, "DOCKER_CONFIG")
	write(docker, `{"auths": [`)
	if f = GatherRegistry(getenv); f.AuthErr == nil || strings.Contains(f.AuthErr.Error(), "c2Vj") {
		t.Errorf("a malformed file: %+v", f)
	}
	os.Remove(docker)
	env["REGISTRY_AUTH_FILE"] = write(filepath.Join(home, "auth.json"), `{"auths":{"reg.example:5000":{"identitytoken":"t"}}}`)
	if f = GatherRegistry(getenv); f.AuthFile != env["REGISTRY_AUTH_FILE"] || f.Auth.Registries[0] != "reg.example:5000" {
		t.Errorf("REGISTRY_AUTH_FILE before containers/auth.json: %+v", f)
	}
	env["https_proxy"], env["NO_PROXY"] = "http://u:p@h:1", "localhost"
	if f = GatherRegistry(getenv); len(f.Proxy) != 2 || f.Proxy["https_proxy"] != "http://u:p@h:1" {
		t.Errorf("proxy variables: %+v", f.Proxy)
	}
}
