package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFileRefusesConfigFileKey: a config file's config-file key was refused as an
// unknown key whose keys "are the names of serve's flags", which config-file is.
func TestConfigFileRefusesConfigFileKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("config-file: other.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, t.Context(), "serve", "--config-file", cfg)
	if code != 1 || !strings.Contains(errOut, `"config-file" (a file cannot name another: give --config-file on the command line)`) {
		t.Errorf("serve --config-file with a config-file key: exit %d, stderr %q; want exit 1 saying a file cannot name another", code, errOut)
	}
}
