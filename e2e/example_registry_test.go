//go:build linux

package e2e

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExampleRegistryOnly: examples/registry-only against the test world,
// as issue 13's worked example: the build, allowed only allowed.test (the
// registry), fetches its dependency from the world's HTTP server; the
// compromised install script's five phone-home attempts (other.test by
// name, a hex label under exfil.test, the address literal 198.18.1.11,
// allowed.test's own address with Host: and SNI other.test) all fail, none
// reaches the world (no DNS query for those names, no connection to
// 198.18.1.11, no request or handshake for other.test), and sandbox's exit
// summary and --report list each one.
func TestExampleRegistryOnly(t *testing.T) {
	t.Parallel()
	requireWorld(t)
	requireExampleTools(t, "python3", "curl")
	requireUserNetwork(t)
	since := bootTicks()
	path := "/pool/dependency-" + randHex(8) + ".txt"
	otherQueries := worldQueries(t, "other.test")
	toOther := len(worldConns(t, worldToAddr(worldOther)...))
	fronted := len(worldConns(t, "=other.test"))
	r := runExample(t, "registry-only", "REGISTRY_HOST=allowed.test", "REGISTRY_PATH="+path,
		"DNS="+worldIP, "EVIL_HOST=other.test", "EVIL_DOMAIN=exfil.test", "EVIL_ADDR="+worldOther)
	wantCode(t, r.result, 0)
	project := filepath.Join(r.work, "project")

	// The allowed fetch: the world's server answered it, once.
	if got, want := readText(t, filepath.Join(project, "deps", "dependency")), "world "+worldAllowed+" host=allowed.test\n"; got != want {
		t.Errorf("deps/dependency = %q, want the world's answer %q", got, want)
	}
	if got := worldConns(t, "http ", "host=allowed.test", "path="+path); len(got) != 1 {
		t.Errorf("the world served %s %d times, want once: %q", path, len(got), got)
	}

	// The attempts ran, and each failed inside.
	secret := strings.TrimSpace(readText(t, filepath.Join(project, "src", "secret.txt")))
	if !regexp.MustCompile(`^s3cr3t-[0-9a-f]{16}$`).MatchString(secret) {
		t.Fatalf("src/secret.txt = %q, want s3cr3t-<16 hex digits>", secret)
	}
	// The label install.sh makes: the file's first 24 bytes as hex.
	exfil := hex.EncodeToString([]byte(secret+"\n")) + ".exfil.test"
	for _, want := range []string{
		"[attack] phone home to other.test failed: ",
		"[attack] DNS exfiltration: resolve " + exfil + " failed",
		"[attack] phone home to the address " + worldOther + " failed: ",
		"[attack] domain fronting: " + worldAllowed + ":80 with Host: other.test failed: ",
		"[attack] domain fronting: " + worldAllowed + ":443 with TLS SNI other.test failed: ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q: %s", want, r)
		}
	}
	if strings.Contains(r.stdout, "GOT THROUGH") {
		t.Errorf("LEAK: a phone-home attempt got through: %s", r)
	}

	// Nothing of it reached the world: the resolver asked no one about the
	// names, and no packet went to the attacker's address or asked for its
	// name.
	if n := worldQueries(t, exfil); n != 0 {
		t.Errorf("LEAK: the world's DNS server was asked %d times for the exfiltration name %s", n, exfil)
	}
	if n := worldQueries(t, "other.test"); n != otherQueries {
		t.Errorf("LEAK: the world's DNS server was asked for other.test %d more times", n-otherQueries)
	}
	if got := worldNew(worldConns(t, worldToAddr(worldOther)...), toOther); len(got) != 0 {
		t.Errorf("LEAK: %s was reached: %q", worldOther, got)
	}
	if got := worldNew(worldConns(t, "=other.test"), fronted); len(got) != 0 {
		t.Errorf("LEAK: a fronted request or handshake for other.test reached the world: %q", got)
	}

	// Reported: the exit summary (run.sh prints sandbox's stderr) and
	// network.blocked in the report.
	summary := regexp.MustCompile(`(?m)^sandbox: blocked \d+ attempts: .*$`).FindString(r.stdout)
	for _, item := range []string{"other.test (dns)", exfil + " (dns)", worldOther + ":80", "other.test:80", "other.test:443"} {
		if !strings.Contains(summary, item) {
			t.Errorf("the exit summary %q lacks %q", summary, item)
		}
	}
	var rep struct {
		Network struct {
			Blocked struct {
				Count   int `json:"count"`
				Records []struct {
					Proto  string `json:"proto"`
					Dst    string `json:"dst"`
					Port   int    `json:"port"`
					Name   string `json:"name"`
					Reason string `json:"reason"`
				} `json:"records"`
			} `json:"blocked"`
		} `json:"network"`
	}
	b, err := os.ReadFile(filepath.Join(r.work, "report.json"))
	if err != nil {
		t.Fatalf("the report: %v", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the report: %v\n%s", err, b)
	}
	for _, w := range []struct{ proto, dst, name, reason string }{
		{"dns", "", "other.test", "no rule"},
		{"dns", "", exfil, "no rule"},
		{"tcp", worldOther, "", "no rule"},
		{"tcp", worldAllowed, "other.test", "Host"},
		{"tcp", worldAllowed, "other.test", "SNI"},
	} {
		found := false
		for _, rec := range rep.Network.Blocked.Records {
			if rec.Proto == w.proto && (w.dst == "" || rec.Dst == w.dst) && (w.name == "" || rec.Name == w.name) &&
				strings.Contains(rec.Reason, w.reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("the report has no %s record for %s%s with %q: %+v", w.proto, w.dst, w.name, w.reason, rep.Network.Blocked)
		}
	}
	for _, rec := range rep.Network.Blocked.Records {
		if rec.Name == "allowed.test" {
			t.Errorf("the report blocked something of the allowed registry: %+v", rec)
		}
	}
	requireNoLeftovers(t, since, true, 5*time.Second)
}
