package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// TestExampleConfigFile checks that every key of the documented example config file is a serve
// flag that a config file can set.
func TestExampleConfigFile(t *testing.T) {
	raw, err := os.ReadFile("../commitlog.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	fromFile := map[string]bool{}
	for _, f := range serveFlags() {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok {
			fromFile[f.Names()[0]] = true
		}
	}
	if len(keys) < 10 {
		t.Fatalf("the example has only %d keys", len(keys))
	}
	for k := range keys {
		if !fromFile[k] {
			t.Errorf("example key %q is not a serve flag that a config file can set", k)
		}
	}
}

// TestServeReadsConfigFile starts serve from a config file and checks that its values apply and
// that a flag overrides the file.
func TestServeReadsConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "commitlog.yaml")
	body := "node-name: from-file\ndata-dir: " + filepath.Join(dir, "data") + "\nrpc-port: -1\nbind-addr: 127.0.0.1:0\nlog-level: error\ntransport: connect\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	addr := startServeTo(t, &out, "--config-file", cfg, "--transport", "grpc")
	if !regexp.MustCompile(`node from-file serving the API on \S+ \(grpc\)`).MatchString(out.String()) {
		t.Fatalf("serve output %q: want node from-file (from the file) on grpc (the flag overrides the file)", out.String())
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "data")) || addr == "" {
		t.Fatalf("serve output %q: want the file's data dir", out.String())
	}
}
