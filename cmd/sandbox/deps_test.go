package main

import (
	"os/exec"
	"strings"
	"testing"
)

// typesOnly are the go-containerregistry packages sandbox may link: the
// image types the tarball import reads; they have no package
// initialisation (GODEBUG=inittrace=1 lists none of them).
var typesOnly = map[string]bool{
	"github.com/google/go-containerregistry/pkg/v1":       true,
	"github.com/google/go-containerregistry/pkg/v1/types": true,
}

// TestRegistryKeptOut: the registry client lives in sandbox-pull, so that
// its package initialisation (~2 ms) is not paid by every `sandbox run`.
func TestRegistryKeptOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "sandbox/cmd/sandbox").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "go-containerregistry") && !typesOnly[p] || p == "sandbox/image/registry" {
			t.Errorf("sandbox links %s: the registry code belongs in cmd/sandbox-pull", p)
		}
	}
}

// keptOut are packages every start would initialise for the sake of a rare
// path: net/http and crypto/tls (~1 ms, with x509, asn1, hpack, mime…)
// came with rootlesskit's port drivers, of which sandbox needs none
// (slirp4netns' API is spoken in netns/driver; rootlesskit's builtin port
// driver runs in sandbox-netstack).
// So are klauspost/compress (zstd's and its tables' initialisation) and
// the decompressors: layers are unpacked by sandbox-pull's helper, also
// for `sandbox image import` (image/decompress). So are the YAML and TOML
// parsers (yaml's regular expressions, toml's local time zone: ~0.8 ms of
// every start): profiles are decoded by sandbox-profile (profiledoc).
var keptOut = []string{"net/http", "crypto/tls", "crypto/x509", "encoding/asn1", "github.com/rootless-containers/rootlesskit",
	"github.com/klauspost/compress", "compress/gzip", "sandbox/image/decompress",
	"go.yaml.in/yaml", "gopkg.in/yaml", "github.com/BurntSushi/toml", "sandbox/internal/profiledoc"}

// TestNetHTTPKeptOut guards keptOut.
func TestNetHTTPKeptOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "sandbox/cmd/sandbox").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, k := range keptOut {
			if p == k || strings.HasPrefix(p, k+"/") {
				t.Errorf("sandbox links %s (go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/sandbox shows who imports it)", p)
			}
		}
	}
}

// TestGopacketKeptOut: sandbox-netstack, started by every --net=builtin
// run (every run with an egress policy), links no gopacket: its layers
// package initialised tables of every EtherType and IP protocol number,
// 29 of the helper's 31 ms of package initialisation on the CI machine.
// It came with gvisor-tap-vsock's tap package (switch and link endpoint),
// which netns/netstack replaced by gvisor's fd-based endpoint.
func TestGopacketKeptOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "sandbox/cmd/sandbox-netstack").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/google/gopacket") || p == "github.com/containers/gvisor-tap-vsock/pkg/tap" {
			t.Errorf("sandbox-netstack links %s (go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/sandbox-netstack shows who imports it)", p)
		}
	}
}
