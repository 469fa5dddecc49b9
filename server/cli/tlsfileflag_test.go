package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestClientTLSFileErrorsNameFlags: a --tls-* file that does not load was reported as "client
// TLS: client: bad TLS files: CA file: open …", naming no flag.
func TestClientTLSFileErrorsNameFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-ca-file", missing}, "--tls-ca-file " + missing + ":"},
		{[]string{"--tls-cert-file", missing, "--tls-key-file", missing}, "--tls-cert-file " + missing + ", --tls-key-file " + missing + ":"},
	} {
		args := append([]string{"produce", "--addr", "127.0.0.1:1"}, tc.args...)
		code, out, errOut := run(t, t.Context(), append(args, "v")...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "no such file") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(args, " "), code, out, errOut, tc.want)
		}
	}
}
