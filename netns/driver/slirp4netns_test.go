package driver

import (
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"sandbox/netns"
)

// fakeAPI serves one request on a unix socket as slirp4netns' API does:
// it reads the request until the client shuts its writing side, then
// answers reply.
func fakeAPI(t *testing.T, reply string) (string, <-chan map[string]any) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan map[string]any, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		var req map[string]any
		json.Unmarshal(b, &req)
		got <- req
		c.Write([]byte(reply))
	}()
	return path, got
}

// TestAddHostFwd: -p with slirp4netns is one add_hostfwd request to its
// API socket, to the sandbox's address; its error reply is the error.
func TestAddHostFwd(t *testing.T) {
	pub := netns.Publish{HostIP: "127.0.0.1", HostPort: 8080, SandboxPort: 80, Proto: "udp"}
	api, got := fakeAPI(t, `{"return": {"id": 1}}`)
	if err := addHostFwd(api, pub); err != nil {
		t.Fatal(err)
	}
	req := <-got
	want := map[string]any{"execute": "add_hostfwd", "arguments": map[string]any{"proto": "udp", "host_addr": "127.0.0.1",
		"host_port": 8080.0, "guest_addr": netns.SandboxIP, "guest_port": 80.0}}
	if a, b := jsonText(t, req), jsonText(t, want); a != b {
		t.Errorf("request %s, want %s", a, b)
	}
	api, _ = fakeAPI(t, `{"error": {"desc": "bad request: add_hostfwd: slirp_add_hostfwd failed"}}`)
	err := addHostFwd(api, pub)
	if err == nil || !strings.Contains(err.Error(), "slirp_add_hostfwd failed") ||
		!strings.Contains(PortAdvice(pub, err), "is the host port in use") {
		t.Errorf("error reply: got %v", err)
	}
	for _, bad := range []string{`{}`, `not json`, `{"return": {}}`} {
		api, _ = fakeAPI(t, bad)
		if err := addHostFwd(api, pub); err == nil {
			t.Errorf("reply %s: no error", bad)
		}
	}
	if err := addHostFwd(filepath.Join(t.TempDir(), "none.sock"), pub); err == nil {
		t.Error("no API socket: no error")
	}
}

func jsonText(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
